"""Duty roster: who answers for a neighbourhood at a given time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_kit.errors import InvalidArgument, NotFound

MAX_SHIFT = timedelta(days=7)


@dataclass(frozen=True)
class ShiftSlot:
    id: str
    person_id: str
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class OnDuty:
    person_id: str
    fallback_to_secretary: bool
    shift_id: str = ""


def validate_shift(starts_at: datetime | None, ends_at: datetime | None) -> None:
    if starts_at is None or ends_at is None:
        raise InvalidArgument("a shift has a start and an end", code="shift_times_required")
    if ends_at <= starts_at:
        raise InvalidArgument("a shift ends after it starts", code="shift_times_invalid")
    if ends_at - starts_at > MAX_SHIFT:
        raise InvalidArgument("a shift lasts at most 7 days", code="shift_too_long")


def resolve_on_duty(shifts: list[ShiftSlot], committee: set[str], secretaries: list[str], at: datetime) -> OnDuty:
    """The committee member whose shift covers `at` (start inclusive, end exclusive; the earliest start
    wins, then the earliest created id); else the first secretary; else NotFound `nobody_on_duty`.
    Shifts of people no longer on the committee do not count."""
    covering = [s for s in shifts if s.starts_at <= at < s.ends_at and s.person_id in committee]
    if covering:
        chosen = min(covering, key=lambda s: (s.starts_at, s.id))
        return OnDuty(chosen.person_id, False, chosen.id)
    if secretaries:
        return OnDuty(secretaries[0], True)
    raise NotFound("nobody is on duty and the neighbourhood has no secretary", code="nobody_on_duty")
