from datetime import UTC, datetime, timedelta

import pytest
from shequtong_identity.domain.roster import ShiftSlot, resolve_on_duty, validate_shift

from shequtong_kit.errors import InvalidArgument, NotFound

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def slot(ident: str, person: str, start_h: float, end_h: float) -> ShiftSlot:
    return ShiftSlot(ident, person, T0 + timedelta(hours=start_h), T0 + timedelta(hours=end_h))


def test_the_covering_shift_wins() -> None:
    shifts = [slot("1", "a", 0, 8), slot("2", "b", 8, 16)]
    assert resolve_on_duty(shifts, {"a", "b"}, ["sec"], T0 + timedelta(hours=3)).person_id == "a"
    # The end is exclusive: at 16:00 b's shift is over, at 08:00 b's has begun.
    assert resolve_on_duty(shifts, {"a", "b"}, ["sec"], T0 + timedelta(hours=8)).person_id == "b"
    late = resolve_on_duty(shifts, {"a", "b"}, ["sec"], T0 + timedelta(hours=16))
    assert (late.person_id, late.fallback_to_secretary) == ("sec", True)


def test_earliest_start_wins_on_overlap_then_earliest_id() -> None:
    shifts = [slot("3", "late", 2, 10), slot("2", "early", 1, 10), slot("1", "same", 1, 10)]
    answer = resolve_on_duty(shifts, {"late", "early", "same"}, [], T0 + timedelta(hours=5))
    assert answer.person_id == "same" and answer.shift_id == "1" and not answer.fallback_to_secretary


def test_shifts_of_former_cadres_do_not_count() -> None:
    shifts = [slot("1", "gone", 0, 8)]
    answer = resolve_on_duty(shifts, {"sec"}, ["sec"], T0 + timedelta(hours=1))
    assert answer.person_id == "sec" and answer.fallback_to_secretary


def test_nobody_on_duty_without_a_secretary() -> None:
    with pytest.raises(NotFound) as err:
        resolve_on_duty([], set(), [], T0)
    assert err.value.code == "nobody_on_duty"


def test_shift_times_are_checked() -> None:
    validate_shift(T0, T0 + timedelta(hours=8))
    for start, end, code in (
        (None, T0, "shift_times_required"),
        (T0, T0, "shift_times_invalid"),
        (T0, T0 - timedelta(hours=1), "shift_times_invalid"),
        (T0, T0 + timedelta(days=8), "shift_too_long"),
    ):
        with pytest.raises(InvalidArgument) as err:
            validate_shift(start, end)
        assert err.value.code == code
