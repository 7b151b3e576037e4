"""Activities: validation, who organises, sign-up placement, the attendance windows and credited time."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from shequtong_volunteers.domain import text

NEIGHBOURHOOD = "neighbourhood"
ORGANISATION = "organisation"

OPEN = "open"
CANCELLED = "cancelled"

CONFIRMED = "confirmed"
WAITLISTED = "waitlisted"
SIGNUP_CANCELLED = "cancelled"
ACTIVITY_CANCELLED = "activity_cancelled"
ACTIVE_SIGNUP = frozenset({CONFIRMED, WAITLISTED})

ORGANISER = "organiser"
QR = "qr"

# A scanner may check in from half an hour before the start until the end, and check out until two hours
# after the end. An organiser recording attendance by hand gets a day after the end to catch up.
CHECK_IN_OPENS_BEFORE = timedelta(minutes=30)
QR_CHECK_OUT_GRACE = timedelta(hours=2)
ORGANISER_GRACE = timedelta(hours=24)
MAX_DURATION = timedelta(days=14)
MAX_CAPACITY = 10_000


@dataclass(frozen=True)
class Draft:
    title: str
    description: str
    place: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    required_skills: list[str]


def validate(
    title: str,
    description: str,
    place: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    capacity: int,
    required_skills: list[str],
    now: datetime,
) -> Draft:
    if starts_at is None or ends_at is None:
        raise InvalidArgument("starts_at and ends_at are required", code="activity_time_invalid")
    if ends_at <= starts_at:
        raise InvalidArgument("an activity ends after it starts", code="activity_time_invalid")
    if ends_at - starts_at > MAX_DURATION:
        raise InvalidArgument("an activity lasts at most 14 days", code="activity_time_invalid")
    if starts_at <= now:
        raise InvalidArgument("an activity is published before it starts", code="activity_in_past")
    if not 1 <= capacity <= MAX_CAPACITY:
        raise InvalidArgument(f"capacity is between 1 and {MAX_CAPACITY}", code="capacity_invalid")
    return Draft(
        title=text.required(title, "title", 200),
        description=text.optional(description, "description", 4000),
        place=text.required(place, "place", 200),
        starts_at=starts_at,
        ends_at=ends_at,
        capacity=capacity,
        required_skills=text.tags(required_skills, "required_skills"),
    )


# --- who organises ---------------------------------------------------------------------------------------


def ensure_may_host(principal: Principal, host: Lineage, leads_team: bool) -> None:
    """A neighbourhood activity: the committee (or staff above), or a leader of the named team."""
    if principal.oversees(host) or leads_team:
        return
    raise PermissionDenied(
        "only the committee or a team leader organises the neighbourhood's activities", code="not_organiser"
    )


def neighbourhood_audience(principal: Principal, host: Lineage, requested: list[Lineage]) -> list[str]:
    """The host is always in the audience; other neighbourhoods only when the organiser oversees them."""
    audience = [host.neighbourhood_id]
    for lineage in requested:
        if lineage.neighbourhood_id == host.neighbourhood_id:
            continue
        if not principal.oversees(lineage):
            raise PermissionDenied("you may only invite neighbourhoods you oversee", code="audience_not_allowed")
        audience.append(lineage.neighbourhood_id)
    return audience


def organisation_audience(district_id: str, requested: list[Lineage]) -> list[str]:
    if not requested:
        raise InvalidArgument("name the neighbourhoods whose residents may sign up", code="audience_required")
    for lineage in requested:
        if lineage.district_id != district_id:
            raise InvalidArgument(
                "an organisation serves neighbourhoods of its own district", code="neighbourhood_outside_district"
            )
    return [lineage.neighbourhood_id for lineage in requested]


def is_organiser(
    principal: Principal,
    *,
    organiser_kind: str,
    created_by: str,
    host: Lineage | None,
    leads_team: bool,
    org_admin: bool,
) -> bool:
    if organiser_kind == ORGANISATION:
        return org_admin or principal.is_operator
    return principal.subject == created_by or leads_team or (host is not None and principal.oversees(host))


def ensure_organiser(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied("only the activity's organiser may do this", code="not_organiser")


# --- sign-ups --------------------------------------------------------------------------------------------


def ensure_open_for_signup(state: str, starts_at: datetime, now: datetime) -> None:
    if state == CANCELLED:
        raise FailedPrecondition("the activity was cancelled", code="activity_cancelled")
    if now >= starts_at:
        raise FailedPrecondition("sign-up closes when the activity starts", code="activity_started")


def placement(confirmed_count: int, capacity: int) -> str:
    """A place while there is one; the waitlist after. Called under the activity's row lock."""
    return CONFIRMED if confirmed_count < capacity else WAITLISTED


def choose_neighbourhood(principal: Principal, audience: list[str], requested: str) -> str:
    """Which audience neighbourhood the person signs up through (their hours count there)."""
    if requested:
        if requested not in audience:
            raise PermissionDenied("this activity is not open to that neighbourhood", code="not_in_audience")
        if not principal.is_member(requested):
            raise PermissionDenied("you are not a member of that neighbourhood", code="not_a_member")
        return requested
    for neighbourhood_id in audience:
        if principal.is_member(neighbourhood_id):
            return neighbourhood_id
    raise PermissionDenied("this activity is for residents of other neighbourhoods", code="not_in_audience")


def ensure_may_cancel_signup(state: str, checked_in_at: datetime | None, ends_at: datetime, now: datetime) -> None:
    if state not in ACTIVE_SIGNUP:
        raise FailedPrecondition("this sign-up is no longer active", code="signup_not_active")
    if checked_in_at is not None:
        raise FailedPrecondition("you have already checked in", code="already_checked_in")
    if now >= ends_at:
        raise FailedPrecondition("the activity is over", code="activity_over")


def ensure_may_cancel_activity(state: str, ends_at: datetime, now: datetime, reason: str) -> str:
    if state == CANCELLED:
        raise FailedPrecondition("the activity was already cancelled", code="activity_cancelled")
    if now >= ends_at:
        raise FailedPrecondition("the activity is over", code="activity_over")
    return text.required(reason, "reason", 500, code="reason_required")


# --- attendance ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Windows:
    check_in_opens: datetime
    check_in_closes: datetime
    check_out_closes: datetime


def windows(starts_at: datetime, ends_at: datetime, method: str) -> Windows:
    grace = ORGANISER_GRACE if method == ORGANISER else QR_CHECK_OUT_GRACE
    return Windows(
        check_in_opens=starts_at - CHECK_IN_OPENS_BEFORE,
        check_in_closes=ends_at if method == QR else ends_at + ORGANISER_GRACE,
        check_out_closes=ends_at + grace,
    )


def ensure_code(given: str, expected: str) -> None:
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PermissionDenied("that is not this activity's check-in code", code="checkin_code_invalid")


def ensure_may_check_in(
    activity_state: str,
    signup_state: str | None,
    checked_in_at: datetime | None,
    starts_at: datetime,
    ends_at: datetime,
    method: str,
    now: datetime,
) -> None:
    if activity_state == CANCELLED:
        raise FailedPrecondition("the activity was cancelled", code="activity_cancelled")
    if signup_state != CONFIRMED:
        raise FailedPrecondition("only confirmed participants check in", code="not_confirmed")
    if checked_in_at is not None:
        raise FailedPrecondition("already checked in", code="already_checked_in")
    window = windows(starts_at, ends_at, method)
    if not window.check_in_opens <= now <= window.check_in_closes:
        raise FailedPrecondition(
            "check-in is open from 30 minutes before the start until the end",
            code="outside_check_in_window",
            opens_at=window.check_in_opens.isoformat(),
            closes_at=window.check_in_closes.isoformat(),
        )


def ensure_may_check_out(
    checked_in_at: datetime | None,
    checked_out_at: datetime | None,
    starts_at: datetime,
    ends_at: datetime,
    method: str,
    now: datetime,
) -> None:
    if checked_in_at is None:
        raise FailedPrecondition("check in first", code="not_checked_in")
    if checked_out_at is not None:
        raise FailedPrecondition("already checked out", code="already_checked_out")
    window = windows(starts_at, ends_at, method)
    if now > window.check_out_closes:
        raise FailedPrecondition(
            "check-out has closed for this activity",
            code="outside_check_out_window",
            closes_at=window.check_out_closes.isoformat(),
        )


def credited_minutes(checked_in_at: datetime, checked_out_at: datetime, starts_at: datetime, ends_at: datetime) -> int:
    """Attended time (check-out − check-in) in whole minutes, capped by the activity's span."""
    attended = max(checked_out_at - checked_in_at, timedelta(0))
    span = ends_at - starts_at
    return int(min(attended, span).total_seconds() // 60)
