"""Moderation rules: reasons for reports, which actions apply to content in which state, mute periods."""

from __future__ import annotations

from datetime import datetime, timedelta

from shequtong_boards.domain.content import DELETED, HIDDEN, VISIBLE
from shequtong_kit.errors import FailedPrecondition, InvalidArgument

REPORT_REASONS = ("spam", "abuse", "rumour", "privacy", "illegal", "other")
NOTE_MAX = 500

OPEN = "open"
ACTIONED = "actioned"
DISMISSED = "dismissed"

HIDE = "hide"
RESTORE = "restore"
LOCK = "lock"
UNLOCK = "unlock"
MUTE = "mute"
UNMUTE = "unmute"
PIN = "pin"
UNPIN = "unpin"
DELETE = "delete"
ACTIONS = (HIDE, RESTORE, LOCK, UNLOCK, MUTE, UNMUTE, PIN, UNPIN, DELETE)

MUTE_MIN = timedelta(minutes=1)
MUTE_MAX = timedelta(days=30)


def validate_report(reason: str, note: str) -> tuple[str, str]:
    if reason not in REPORT_REASONS:
        raise InvalidArgument("choose a reason for the report", code="report_reason_invalid")
    note = note.strip()
    if reason == "other" and not note:
        raise InvalidArgument("say what is wrong when the reason is 'other'", code="report_note_required")
    if len(note) > NOTE_MAX:
        raise InvalidArgument(f"the note must be at most {NOTE_MAX} characters", code="report_note_too_long")
    return reason, note


def status_after(action: str, status: str) -> str:
    """The content's status after hide/restore; refuses actions that do not apply."""
    if status == DELETED:
        raise FailedPrecondition("the content was deleted", code="content_deleted")
    if action == HIDE:
        if status != VISIBLE:
            raise FailedPrecondition("the content is already hidden", code="content_already_hidden")
        return HIDDEN
    if action == RESTORE:
        if status != HIDDEN:
            raise FailedPrecondition("the content is not hidden", code="content_not_hidden")
        return VISIBLE
    raise InvalidArgument("the action must be hide or restore", code="moderation_action_invalid")


def mute_until(now: datetime, minutes: int) -> datetime:
    period = timedelta(minutes=minutes)
    if not MUTE_MIN <= period <= MUTE_MAX:
        raise InvalidArgument("a mute lasts from one minute to thirty days", code="mute_duration_invalid")
    return now + period


def is_muted(until: datetime | None, now: datetime) -> bool:
    return until is not None and until > now
