"""Mutual-aid links: an issue resolved by an activity or a storefront booking."""

from __future__ import annotations

import re

from shequtong_kit.errors import InvalidArgument
from shequtong_volunteers.domain import text

ACTIVITY = "activity"
BOOKING = "booking"
TARGETS = (ACTIVITY, BOOKING)

_ISSUE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def validate_link(issue_id: str, target: str, target_id: str, note: str) -> tuple[str, str]:
    cleaned = issue_id.strip()
    if not _ISSUE_ID.match(cleaned):
        raise InvalidArgument("issue_id is an issue's id", code="issue_id_invalid")
    if target not in TARGETS:
        raise InvalidArgument("link an activity or a booking", code="target_invalid")
    if not target_id.strip():
        raise InvalidArgument("target_id is required", code="target_invalid")
    return cleaned, text.optional(note, "note", 500)
