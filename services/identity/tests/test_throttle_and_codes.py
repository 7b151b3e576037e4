"""Throttling (rates and lock-outs) and one-time login codes."""

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_identity.domain import logincodes
from shequtong_identity.domain.throttle import Counter, Limit, blocked_until, record

from shequtong_kit.errors import InvalidArgument, ResourceExhausted, Unauthenticated

NOW = datetime(2026, 3, 1, 8, tzinfo=UTC)
HOUR = Limit(3, timedelta(hours=1))
LOCKOUT = Limit(3, timedelta(minutes=15), lock=timedelta(minutes=15))


def events(limit: Limit, times: list[datetime]) -> Counter | None:
    counter: Counter | None = None
    for at in times:
        counter = record(counter, limit, at)
    return counter


def test_a_rate_blocks_until_its_window_ends() -> None:
    counter = events(HOUR, [NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=2)])
    assert blocked_until(counter, HOUR, NOW + timedelta(minutes=3)) == NOW + timedelta(hours=1)
    assert blocked_until(counter, HOUR, NOW + timedelta(hours=1)) is None
    # Below the limit nothing is blocked.
    assert blocked_until(events(HOUR, [NOW, NOW]), HOUR, NOW) is None
    assert blocked_until(None, HOUR, NOW) is None


def test_a_new_window_starts_the_count_again() -> None:
    counter = events(HOUR, [NOW, NOW, NOW + timedelta(hours=2)])
    assert counter == Counter(1, NOW + timedelta(hours=2), None)


def test_a_lockout_locks_for_its_length_once_reached() -> None:
    counter = events(LOCKOUT, [NOW, NOW + timedelta(minutes=1), NOW + timedelta(minutes=14)])
    assert counter is not None and counter.locked_until == NOW + timedelta(minutes=29)
    # Locked even after the counting window is over, until the lock ends.
    assert blocked_until(counter, LOCKOUT, NOW + timedelta(minutes=20)) == NOW + timedelta(minutes=29)
    assert blocked_until(counter, LOCKOUT, NOW + timedelta(minutes=29)) is None
    # Two failures then a quiet window: no lock.
    assert events(LOCKOUT, [NOW, NOW, NOW + timedelta(minutes=16)]).locked_until is None  # type: ignore[union-attr]


def test_limits_must_allow_something() -> None:
    with pytest.raises(ValueError):
        Limit(0, timedelta(minutes=1))
    with pytest.raises(ValueError):
        Limit(1, timedelta(0))


def test_codes_have_six_digits_and_vary() -> None:
    codes = {logincodes.new_code() for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 150
    assert logincodes.normalize_code(" 012345 ") == "012345"
    for bad in ("12345", "1234567", "12a456", ""):
        with pytest.raises(InvalidArgument) as err:
            logincodes.normalize_code(bad)
        assert err.value.code == "code_invalid"


def test_the_sms_text_carries_the_code_and_its_lifetime() -> None:
    text = logincodes.sms_text("042042")
    assert "042042" in text and "5分钟" in text


@pytest.mark.parametrize(
    ("state", "at", "code"),
    [
        (None, NOW, "code_invalid"),
        (logincodes.CodeState(True, NOW + timedelta(minutes=5), 0), NOW, "code_invalid"),
        (logincodes.CodeState(False, NOW + timedelta(minutes=5), 0), NOW + timedelta(minutes=5), "code_expired"),
        (logincodes.CodeState(False, NOW + timedelta(minutes=5), 5), NOW, "code_attempts_exhausted"),
    ],
)
def test_unusable_codes(state: logincodes.CodeState | None, at: datetime, code: str) -> None:
    with pytest.raises((Unauthenticated, ResourceExhausted)) as err:
        logincodes.ensure_usable(state, at)
    assert err.value.code == code  # type: ignore[union-attr]


def test_a_fresh_code_with_tries_left_is_usable() -> None:
    logincodes.ensure_usable(logincodes.CodeState(False, NOW + timedelta(minutes=5), 4), NOW + timedelta(minutes=4))
    assert timedelta(minutes=5) == logincodes.CODE_TTL and logincodes.MAX_TRIES == 5
    assert logincodes.same_code("abc", "abc") and not logincodes.same_code("abc", "abd")


def test_code_requests_per_phone() -> None:
    """One a minute, five an hour."""
    counter = events(logincodes.RESEND_INTERVAL, [NOW])
    assert blocked_until(counter, logincodes.RESEND_INTERVAL, NOW + timedelta(seconds=59)) is not None
    assert blocked_until(counter, logincodes.RESEND_INTERVAL, NOW + timedelta(seconds=60)) is None
    hourly = events(logincodes.PER_PHONE_HOURLY, [NOW + timedelta(minutes=m) for m in range(5)])
    assert blocked_until(hourly, logincodes.PER_PHONE_HOURLY, NOW + timedelta(minutes=5)) == NOW + timedelta(hours=1)
