from datetime import UTC, datetime, timedelta

import pytest
from shequtong_identity.domain.joincodes import ensure_usable, new_code, terms
from shequtong_identity.domain.memberships import (
    LEFT,
    PENDING,
    REJECTED,
    VERIFIED,
    ensure_may_leave,
    ensure_reviewable,
    rejection_reason,
)
from shequtong_identity.domain.sessions import (
    REVOKE_FAMILY,
    ROTATE,
    RefreshState,
    after_failure,
    ensure_not_locked,
    hash_refresh_token,
    new_refresh_token,
    refresh_decision,
)

from shequtong_kit.errors import DomainError, FailedPrecondition, InvalidArgument, ResourceExhausted, Unauthenticated

NOW = datetime(2026, 3, 1, 8, tzinfo=UTC)
LATER = NOW + timedelta(days=1)


def test_a_live_refresh_token_rotates() -> None:
    assert refresh_decision(RefreshState(False, False, LATER), NOW) == ROTATE


def test_a_reused_refresh_token_revokes_the_family() -> None:
    assert refresh_decision(RefreshState(True, False, LATER), NOW) == REVOKE_FAMILY


@pytest.mark.parametrize(
    ("state", "code"),
    [
        (None, "refresh_token_invalid"),
        (RefreshState(False, True, LATER), "session_revoked"),
        (RefreshState(True, True, LATER), "session_revoked"),
        (RefreshState(False, False, NOW), "refresh_token_expired"),
    ],
)
def test_refresh_refusals(state: RefreshState | None, code: str) -> None:
    with pytest.raises(Unauthenticated) as err:
        refresh_decision(state, NOW)
    assert err.value.code == code


def test_refresh_tokens_are_random_and_stored_hashed() -> None:
    a, b = new_refresh_token(), new_refresh_token()
    assert a != b and len(a) >= 40
    assert hash_refresh_token(a) == hash_refresh_token(a) != a


def test_sixth_attempt_after_five_wrong_passwords_is_refused_until_the_window_passes() -> None:
    state = None
    for minute in range(5):
        ensure_not_locked(state, NOW + timedelta(minutes=minute))
        state = after_failure(state, NOW + timedelta(minutes=minute))
    assert state is not None and state.failures == 5
    with pytest.raises(ResourceExhausted) as err:
        ensure_not_locked(state, NOW + timedelta(minutes=5))
    assert err.value.code == "too_many_attempts"
    ensure_not_locked(state, NOW + timedelta(minutes=4 + 15))


def test_failures_spread_beyond_the_window_do_not_lock() -> None:
    state = None
    for step in range(10):
        when = NOW + timedelta(minutes=4 * step)
        ensure_not_locked(state, when)
        state = after_failure(state, when)
    assert state is not None and state.locked_until is None


def test_join_code_terms_and_usability() -> None:
    assert terms(0, 0)[1] == 500
    with pytest.raises(InvalidArgument):
        terms(10, 1)
    with pytest.raises(InvalidArgument):
        terms(3600, 200_000)
    assert len(new_code()) == 12 and new_code() != new_code()
    ensure_usable(False, LATER, 0, 1, NOW)
    for revoked, expires, used, code in (
        (True, LATER, 0, "join_code_revoked"),
        (False, NOW, 0, "join_code_expired"),
        (False, LATER, 1, "join_code_used_up"),
    ):
        with pytest.raises(FailedPrecondition) as err:
            ensure_usable(revoked, expires, used, 1, NOW)
        assert err.value.code == code


def test_membership_transitions() -> None:
    ensure_reviewable(PENDING)
    for state in (VERIFIED, REJECTED, LEFT):
        with pytest.raises(DomainError):
            ensure_reviewable(state)
    ensure_may_leave(PENDING)
    ensure_may_leave(VERIFIED)
    with pytest.raises(DomainError):
        ensure_may_leave(LEFT)
    with pytest.raises(InvalidArgument) as err:
        rejection_reason("  ")
    assert err.value.code == "reason_required"
