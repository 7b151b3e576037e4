"""The volunteer badge: held while the person is an approved volunteer of at least one team of the
neighbourhood (the volunteers service says so through events). Pure."""

from __future__ import annotations

GRANT = "grant"
REVOKE = "revoke"


def badge_change(active_records: int, holds_badge: bool) -> str | None:
    """GRANT, REVOKE or None (nothing to do) given the active volunteer records in the neighbourhood."""
    if active_records > 0 and not holds_badge:
        return GRANT
    if active_records == 0 and holds_badge:
        return REVOKE
    return None
