"""The service-hours ledger: append-only entries, corrections by reversal, totals and certificates."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shequtong_kit.errors import FailedPrecondition, InvalidArgument
from shequtong_volunteers.domain import text

CREDIT = "credit"
REVERSAL = "reversal"
ADJUSTMENT = "adjustment"

MAX_CORRECTED_MINUTES = 14 * 24 * 60


@dataclass(frozen=True)
class Correction:
    reason: str
    reversal_minutes: int
    adjustment_minutes: int


def plan_correction(
    entry_kind: str, entry_minutes: int, already_reversed: bool, reason: str, corrected_minutes: int
) -> Correction:
    """A correction never edits: it reverses the entry in full and, optionally, records the right amount."""
    if entry_kind == REVERSAL:
        raise FailedPrecondition("a reversal cannot itself be reversed", code="entry_is_reversal")
    if already_reversed:
        raise FailedPrecondition("this entry was already reversed", code="entry_already_reversed")
    if not 0 <= corrected_minutes <= MAX_CORRECTED_MINUTES:
        raise InvalidArgument("corrected_minutes must be between 0 and 20160", code="corrected_minutes_invalid")
    return Correction(
        reason=text.required(reason, "reason", 500, code="reason_required"),
        reversal_minutes=-entry_minutes,
        adjustment_minutes=corrected_minutes,
    )


def hours(minutes: int) -> float:
    return round(minutes / 60, 2)


def validate_period(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidArgument("the period ends after it starts", code="period_invalid")


@dataclass(frozen=True)
class Line:
    activity_id: str
    activity_title: str
    served_at: datetime
    minutes: int


@dataclass(frozen=True)
class EntryView:
    """What the certificate needs of one ledger entry."""

    id: str
    activity_id: str | None
    activity_title: str
    served_at: datetime
    minutes: int


def certificate_lines(entries: Iterable[EntryView]) -> list[Line]:
    """Net minutes per activity (credits, reversals and adjustments together), zero lines dropped."""
    totals: dict[str, int] = {}
    meta: dict[str, tuple[str, datetime]] = {}
    for entry in entries:
        key = entry.activity_id or f"entry:{entry.id}"
        totals[key] = totals.get(key, 0) + entry.minutes
        if key not in meta or entry.served_at < meta[key][1]:
            meta[key] = (entry.activity_title, entry.served_at)
    lines = [
        Line(
            activity_id=key if not key.startswith("entry:") else "",
            activity_title=meta[key][0],
            served_at=meta[key][1],
            minutes=minutes,
        )
        for key, minutes in totals.items()
        if minutes != 0
    ]
    return sorted(lines, key=lambda line: (line.served_at, line.activity_id))


def certificate_number(
    person_id: str, start: datetime | None, end: datetime | None, total_minutes: int, entry_ids: Iterable[str]
) -> str:
    """Stable for the same person, period and ledger content; any new entry gives a new number."""
    digest = hashlib.sha256()
    for part in (person_id, start.isoformat() if start else "", end.isoformat() if end else "", str(total_minutes)):
        digest.update(part.encode())
        digest.update(b"\x00")
    for entry_id in sorted(entry_ids):
        digest.update(entry_id.encode())
    return "VH-" + digest.hexdigest()[:16].upper()
