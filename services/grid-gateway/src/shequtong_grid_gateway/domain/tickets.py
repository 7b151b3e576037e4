"""Tickets (派单): their states, what a dispatch request must carry, what we send, and how the
grid's updates move a ticket. Pure: no I/O, no clock."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

# Our side of the journey: queued, handed over, then the grid's stages, or failed.
PENDING = "pending"
SENT = "sent"
ACCEPTED = "accepted"
DISPATCHED = "dispatched"
HANDLED = "handled"
CLOSED = "closed"
REJECTED = "rejected"
RETURNED = "returned"
DEFERRED = "deferred"
REOPENED = "reopened"
FAILED = "failed"

STATES = (PENDING, SENT, ACCEPTED, DISPATCHED, HANDLED, CLOSED, REJECTED, RETURNED, DEFERRED, REOPENED, FAILED)
# States the grid has the case in (an external id or token is held).
ON_THE_GRID = frozenset({SENT, ACCEPTED, DISPATCHED, HANDLED, CLOSED, REJECTED, RETURNED, DEFERRED, REOPENED})
# The grid considers the case finished (a REOPEN may still follow a closure).
SETTLED = frozenset({CLOSED, REJECTED})

# The reference table (grid stage → Open311 / FixMyStreet extended status → our state).
EXTENDED_STATUS_TO_STATE: dict[str, str] = {
    "INVESTIGATING": ACCEPTED,  # 立案
    "ACTION_SCHEDULED": DISPATCHED,  # 派遣
    "IN_PROGRESS": HANDLED,  # 处置 / 处理反馈
    "FIXED": CLOSED,  # 核查结案
    "NOT_COUNCILS_RESPONSIBILITY": REJECTED,  # 注销 / 不予立案
    "DUPLICATE": REJECTED,  # 注销 (duplicate report)
    "INTERNAL_REFERRAL": RETURNED,  # 退回, re-dispatched inside the grid
    "NO_FURTHER_ACTION": DEFERRED,  # 挂账 / 延期
    "REOPEN": REOPENED,  # 核查未通过 → 返工
}

# Failure codes (stable; they travel in grid.ticket.failed and the operators' view).
PLATFORM_REJECTED = "platform_rejected"
SERVICE_CODE_UNKNOWN = "service_code_unknown"
LOCATION_MISSING = "location_missing"
DELIVERY_ABANDONED = "delivery_abandoned"

MAX_DESCRIPTION = 4000
MAX_REASON = 500


def map_update(status: str, external_status_code: str) -> str | None:
    """The ticket state a grid update means, or None when it carries no state (a plain note)."""
    code = (external_status_code or "").strip().upper()
    if code in EXTENDED_STATUS_TO_STATE:
        return EXTENDED_STATUS_TO_STATE[code]
    if (status or "").strip().lower() == "closed":
        return CLOSED
    return None


def _id_key(update_id: str) -> tuple[int, int, str]:
    # Decimal ids compare as numbers (a shorter one is smaller); anything else as text.
    text = update_id or ""
    return (0, len(text), text) if text.isdigit() else (1, 0, text)


def update_order(updated_at: datetime, update_id: str) -> tuple[datetime, tuple[int, int, str]]:
    """The grid's order of updates: updated_datetime first, then update_id (several updates
    can share a second)."""
    return (updated_at, _id_key(update_id))


def is_newer(candidate_at: datetime, candidate_id: str, latest_at: datetime | None, latest_id: str | None) -> bool:
    """Whether an update comes after the ticket's latest applied one, in the grid's order."""
    if latest_at is None:
        return True
    return update_order(candidate_at, candidate_id) > update_order(latest_at, latest_id or "")


# --- what goes out ------------------------------------------------------------------------------

_TAG = re.compile(r"<\s*(/?[a-zA-Z][^>]*|!--.*?--|![a-zA-Z][^>]*)>", re.DOTALL)
_SPACES = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def clean_description(text: str, limit: int = MAX_DESCRIPTION) -> str:
    """Plain text the platform accepts: entities decoded, tags removed (again, until none is
    left, so '&lt;b&gt;' cannot sneak one in), whitespace tidied, at most `limit` characters."""
    value = "".join(ch for ch in (text or "") if ch in "\n\t" or ch.isprintable())
    for _ in range(5):
        stripped = _TAG.sub(" ", html.unescape(value))
        if stripped == value:
            break
        value = "".join(ch for ch in stripped if ch in "\n\t" or ch.isprintable())
    while _TAG.search(value):  # each pass shortens the text, so this ends
        value = _TAG.sub(" ", value)
    lines = [_SPACES.sub(" ", line).strip() for line in value.replace("\r\n", "\n").split("\n")]
    value = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    if len(value) > limit:
        value = value[: limit - 1].rstrip() + "…"
    return value


@dataclass(frozen=True)
class DispatchRequest:
    """What the issues service asks us to send (issues.issue.dispatch_requested)."""

    issue_id: str
    dispatch_id: str
    neighbourhood_id: str
    category_code: str
    grid_service_code: str
    description: str
    address: str
    lat: float
    lon: float
    media_urls: Sequence[str] = ()


@dataclass(frozen=True)
class Location:
    lat: float | None
    long: float | None
    address: str | None


def location_of(address: str, lat: float, lon: float) -> Location | None:
    """Coordinates when they are real ones (0,0 is proto3's 'unset'), else the address."""
    has_point = (
        math.isfinite(lat)
        and math.isfinite(lon)
        and -90 <= lat <= 90
        and -180 <= lon <= 180
        and not (lat == 0 and lon == 0)
    )
    text = (address or "").strip()[:500]
    if not has_point and not text:
        return None
    return Location(lat if has_point else None, lon if has_point else None, text or None)


def media_links(urls: Sequence[str]) -> list[str]:
    return [u.strip() for u in urls if re.match(r"^https?://\S+$", (u or "").strip())]


@dataclass(frozen=True)
class Submission:
    """One Open311 create-request, protocol-neutral."""

    service_code: str
    description: str
    location: Location
    media_url: str | None
    attributes: dict[str, str] = field(default_factory=dict)


def build_submission(
    *,
    ticket_id: str,
    issue_id: str,
    service_code: str,
    description: str,
    address: str,
    lat: float,
    lon: float,
    media_urls: Sequence[str],
) -> Submission:
    """The platform gets one media_url; further photos are listed at the end of the text.
    Our issue and ticket ids travel as attributes so the far side can tell a retry from a
    new case."""
    location = location_of(address, lat, lon)
    if location is None:
        raise ValueError(LOCATION_MISSING)
    links = media_links(media_urls)
    text = clean_description(description)
    if len(links) > 1:
        extra = "\n附件：" + " ".join(links[1:])
        text = clean_description(text, MAX_DESCRIPTION - len(extra)) + extra
    return Submission(
        service_code=service_code,
        description=text,
        location=location,
        media_url=links[0] if links else None,
        attributes={"issue_id": issue_id, "ticket_id": ticket_id},
    )


def short_reason(text: str) -> str:
    """A failure reason fit for an event and a log line: one line, bounded."""
    one_line = " ".join((text or "").split())
    return one_line[:MAX_REASON]
