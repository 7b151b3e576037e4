"""Volunteer activities: publishing, sign-up with a waitlist, check-in and check-out."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, Field

from shequtong.volunteers.v1 import volunteers_pb2 as pb
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.volunteers import HoursEntryOut, entry_out, name_of, page
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts, ts

router = gateway_router(tags=["activities"])

OrganiserKind = Literal["neighbourhood", "organisation"]
ORGANISER_KINDS: dict[str, int] = {
    "neighbourhood": pb.ORGANISER_KIND_NEIGHBOURHOOD,
    "organisation": pb.ORGANISER_KIND_ORGANISATION,
}
ActivityState = Literal["open", "cancelled"]
ACTIVITY_STATES: dict[str, int] = {"open": pb.ACTIVITY_STATE_OPEN, "cancelled": pb.ACTIVITY_STATE_CANCELLED}
SignupState = Literal["confirmed", "waitlisted", "cancelled", "activity_cancelled"]
SIGNUP_STATES: dict[str, int] = {
    "confirmed": pb.SIGNUP_STATE_CONFIRMED,
    "waitlisted": pb.SIGNUP_STATE_WAITLISTED,
    "cancelled": pb.SIGNUP_STATE_CANCELLED,
    "activity_cancelled": pb.SIGNUP_STATE_ACTIVITY_CANCELLED,
}
METHODS: dict[str, int] = {"organiser": pb.ATTENDANCE_METHOD_ORGANISER, "qr": pb.ATTENDANCE_METHOD_QR}


class ActivityIn(BaseModel):
    organiser_kind: OrganiserKind = Field(default="neighbourhood")
    neighbourhood_id: str | None = Field(default=None, max_length=36, description="Host (neighbourhood activities)")
    organisation_id: str | None = Field(default=None, max_length=36, description="Organiser (organisation activities)")
    team_id: str | None = Field(default=None, max_length=36, description="The volunteer team running it")
    title: str = Field(min_length=1, max_length=200, examples=["重阳节敬老理发"])
    description: str = Field(default="", max_length=4000)
    place: str = Field(min_length=1, max_length=200, examples=["居委会活动室"])
    starts_at: AwareDatetime = Field(examples=["2026-10-29T09:00:00+08:00"])
    ends_at: AwareDatetime = Field(examples=["2026-10-29T11:00:00+08:00"])
    capacity: int = Field(ge=1, le=10_000, examples=[20])
    required_skills: list[str] = Field(default_factory=list, max_length=20, examples=[["理发"]])
    audience_neighbourhood_ids: list[str] = Field(
        default_factory=list, max_length=200, description="Whose residents may sign up (default: the host)"
    )


class ActivityOut(BaseModel):
    id: str
    organiser_kind: OrganiserKind
    neighbourhood_id: str | None
    organisation_id: str | None
    team_id: str | None
    title: str
    description: str
    place: str
    starts_at: datetime | None
    ends_at: datetime | None
    capacity: int
    required_skills: list[str]
    audience_neighbourhood_ids: list[str]
    state: ActivityState
    confirmed_count: int
    waitlist_count: int
    places_left: int
    created_by: str
    created_at: datetime | None
    cancel_reason: str
    cancelled_at: datetime | None


class SignupOut(BaseModel):
    id: str
    activity_id: str
    person_id: str
    display_name: str
    neighbourhood_id: str
    state: SignupState
    waitlist_position: int | None
    signed_up_at: datetime | None
    confirmed_at: datetime | None
    cancelled_at: datetime | None
    checked_in_at: datetime | None
    checked_out_at: datetime | None
    check_in_method: str | None
    check_out_method: str | None
    credited_minutes: int
    promoted_from_waitlist: bool


class ActivityDetail(ActivityOut):
    my_signup: SignupOut | None


class ActivityPage(BaseModel):
    items: list[ActivityOut]
    next_cursor: str | None


class SignupPage(BaseModel):
    items: list[SignupOut]
    next_cursor: str | None


class SignUpIn(BaseModel):
    neighbourhood_id: str | None = Field(
        default=None, max_length=36, description="Which of your neighbourhoods (must be in the audience)"
    )


class CancelIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["台风预警，活动取消"])


class CancelOut(BaseModel):
    activity: ActivityOut
    notified_count: int


class CancelSignupOut(BaseModel):
    signup: SignupOut
    promoted: SignupOut | None


class AttendanceIn(BaseModel):
    person_id: str | None = Field(default=None, max_length=64, description="Organiser: whom to check in or out")
    code: str | None = Field(default=None, max_length=64, description="The scanned QR code (for yourself)")


class CheckOutOut(BaseModel):
    signup: SignupOut
    entry: HoursEntryOut | None


class CheckinCodeOut(BaseModel):
    code: str
    check_in_opens_at: datetime | None
    check_in_closes_at: datetime | None
    check_out_closes_at: datetime | None


def activity_fields(a: pb.Activity) -> dict[str, object]:
    return {
        "id": a.id,
        "organiser_kind": name_of(ORGANISER_KINDS, a.organiser_kind),
        "neighbourhood_id": a.neighbourhood_id or None,
        "organisation_id": a.organisation_id or None,
        "team_id": a.team_id or None,
        "title": a.title,
        "description": a.description,
        "place": a.place,
        "starts_at": from_ts(a.starts_at),
        "ends_at": from_ts(a.ends_at),
        "capacity": a.capacity,
        "required_skills": list(a.required_skills),
        "audience_neighbourhood_ids": list(a.audience_neighbourhood_ids),
        "state": name_of(ACTIVITY_STATES, a.state),
        "confirmed_count": a.confirmed_count,
        "waitlist_count": a.waitlist_count,
        "places_left": max(a.capacity - a.confirmed_count, 0) if a.state == pb.ACTIVITY_STATE_OPEN else 0,
        "created_by": a.created_by,
        "created_at": from_ts(a.created_at),
        "cancel_reason": a.cancel_reason,
        "cancelled_at": from_ts(a.cancelled_at),
    }


def activity_out(a: pb.Activity) -> ActivityOut:
    return ActivityOut.model_validate(activity_fields(a))


def signup_out(s: pb.Signup) -> SignupOut:
    return SignupOut(
        id=s.id,
        activity_id=s.activity_id,
        person_id=s.person_id,
        display_name=s.display_name,
        neighbourhood_id=s.neighbourhood_id,
        state=name_of(SIGNUP_STATES, s.state),  # type: ignore[arg-type]
        waitlist_position=s.waitlist_position or None,
        signed_up_at=from_ts(s.signed_up_at),
        confirmed_at=from_ts(s.confirmed_at),
        cancelled_at=from_ts(s.cancelled_at),
        checked_in_at=from_ts(s.checked_in_at),
        checked_out_at=from_ts(s.checked_out_at),
        check_in_method=name_of(METHODS, s.check_in_method) if s.check_in_method else None,
        check_out_method=name_of(METHODS, s.check_out_method) if s.check_out_method else None,
        credited_minutes=s.credited_minutes,
        promoted_from_waitlist=s.promoted_from_waitlist,
    )


@router.post("/v1/activities", status_code=201, response_model=ActivityOut, summary="Publish an activity")
async def create_activity(body: ActivityIn, caller: SignedIn) -> ActivityOut:
    reply = await caller.call(
        caller.clients.volunteers.CreateActivity,
        pb.CreateActivityRequest(
            organiser_kind=ORGANISER_KINDS[body.organiser_kind],  # type: ignore[arg-type]
            neighbourhood_id=body.neighbourhood_id or "",
            organisation_id=body.organisation_id or "",
            team_id=body.team_id or "",
            title=body.title,
            description=body.description,
            place=body.place,
            starts_at=ts(body.starts_at),
            ends_at=ts(body.ends_at),
            capacity=body.capacity,
            required_skills=body.required_skills,
            audience_neighbourhood_ids=body.audience_neighbourhood_ids,
        ),
    )
    return activity_out(reply.activity)


@router.get(
    "/v1/activities",
    response_model=ActivityPage,
    summary="Activities open to a neighbourhood's residents, or an organisation's own, by start time",
)
async def list_activities(
    caller: SignedIn,
    neighbourhood_id: str | None = None,
    organisation_id: str | None = None,
    ends_after: AwareDatetime | None = None,
    include_cancelled: bool = False,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> ActivityPage:
    reply = await caller.call(
        caller.clients.volunteers.ListActivities,
        pb.ListActivitiesRequest(
            neighbourhood_id=neighbourhood_id or "",
            organisation_id=organisation_id or "",
            ends_after=ts(ends_after) if ends_after else None,
            include_cancelled=include_cancelled,
            page=page(cursor, page_size),
        ),
    )
    return ActivityPage(items=[activity_out(a) for a in reply.activities], next_cursor=reply.page.next_cursor or None)


@router.get("/v1/activities/{activity_id}", response_model=ActivityDetail, summary="One activity and your sign-up")
async def get_activity(activity_id: str, caller: SignedIn) -> ActivityDetail:
    reply = await caller.call(caller.clients.volunteers.GetActivity, pb.GetActivityRequest(id=activity_id))
    return ActivityDetail.model_validate(
        {
            **activity_fields(reply.activity),
            "my_signup": signup_out(reply.my_signup) if reply.HasField("my_signup") else None,
        }
    )


@router.post(
    "/v1/activities/{activity_id}/cancel",
    response_model=CancelOut,
    summary="Cancel the activity (organiser); everyone signed up is notified",
)
async def cancel_activity(activity_id: str, body: CancelIn, caller: SignedIn) -> CancelOut:
    reply = await caller.call(
        caller.clients.volunteers.CancelActivity, pb.CancelActivityRequest(id=activity_id, reason=body.reason)
    )
    return CancelOut(activity=activity_out(reply.activity), notified_count=reply.notified_count)


@router.post(
    "/v1/activities/{activity_id}/signups",
    status_code=201,
    response_model=SignupOut,
    summary="Sign up: a place while there is one, else the waitlist",
)
async def sign_up(activity_id: str, body: SignUpIn, caller: SignedIn) -> SignupOut:
    reply = await caller.call(
        caller.clients.volunteers.SignUp,
        pb.SignUpRequest(activity_id=activity_id, neighbourhood_id=body.neighbourhood_id or ""),
    )
    return signup_out(reply.signup)


@router.post(
    "/v1/activities/{activity_id}/signups/mine/cancel",
    response_model=CancelSignupOut,
    summary="Withdraw your sign-up; the first waitlisted person gets the place",
)
async def cancel_signup(activity_id: str, caller: SignedIn) -> CancelSignupOut:
    reply = await caller.call(caller.clients.volunteers.CancelSignup, pb.CancelSignupRequest(activity_id=activity_id))
    return CancelSignupOut(
        signup=signup_out(reply.signup),
        promoted=signup_out(reply.promoted) if reply.HasField("promoted") else None,
    )


@router.get(
    "/v1/activities/{activity_id}/signups",
    response_model=SignupPage,
    summary="The activity's sign-ups (organiser)",
)
async def list_signups(
    activity_id: str,
    caller: SignedIn,
    state: SignupState | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> SignupPage:
    reply = await caller.call(
        caller.clients.volunteers.ListSignups,
        pb.ListSignupsRequest(
            activity_id=activity_id,
            state=SIGNUP_STATES.get(state or "", pb.SIGNUP_STATE_UNSPECIFIED),  # type: ignore[arg-type]
            page=page(cursor, page_size),
        ),
    )
    return SignupPage(items=[signup_out(s) for s in reply.signups], next_cursor=reply.page.next_cursor or None)


@router.get("/v1/signups", response_model=SignupPage, summary="Your own sign-ups")
async def my_signups(
    caller: SignedIn,
    state: SignupState | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> SignupPage:
    reply = await caller.call(
        caller.clients.volunteers.ListSignups,
        pb.ListSignupsRequest(
            mine=True,
            state=SIGNUP_STATES.get(state or "", pb.SIGNUP_STATE_UNSPECIFIED),  # type: ignore[arg-type]
            page=page(cursor, page_size),
        ),
    )
    return SignupPage(items=[signup_out(s) for s in reply.signups], next_cursor=reply.page.next_cursor or None)


@router.get(
    "/v1/activities/{activity_id}/checkin-code",
    response_model=CheckinCodeOut,
    summary="The activity's QR code content and its windows (organiser)",
)
async def checkin_code(activity_id: str, caller: SignedIn) -> CheckinCodeOut:
    reply = await caller.call(
        caller.clients.volunteers.GetCheckinCode, pb.GetCheckinCodeRequest(activity_id=activity_id)
    )
    return CheckinCodeOut(
        code=reply.code,
        check_in_opens_at=from_ts(reply.check_in_opens_at),
        check_in_closes_at=from_ts(reply.check_in_closes_at),
        check_out_closes_at=from_ts(reply.check_out_closes_at),
    )


@router.post(
    "/v1/activities/{activity_id}/check-in",
    response_model=SignupOut,
    summary="Check in by scanning the code (from 30 minutes before the start to the end) or by the organiser",
)
async def check_in(activity_id: str, body: AttendanceIn, caller: SignedIn) -> SignupOut:
    reply = await caller.call(
        caller.clients.volunteers.CheckIn,
        pb.CheckInRequest(activity_id=activity_id, person_id=body.person_id or "", code=body.code or ""),
    )
    return signup_out(reply.signup)


@router.post(
    "/v1/activities/{activity_id}/check-out",
    response_model=CheckOutOut,
    summary="Check out; the attended time is credited to the service-hours ledger",
)
async def check_out(activity_id: str, body: AttendanceIn, caller: SignedIn) -> CheckOutOut:
    reply = await caller.call(
        caller.clients.volunteers.CheckOut,
        pb.CheckOutRequest(activity_id=activity_id, person_id=body.person_id or "", code=body.code or ""),
    )
    return CheckOutOut(
        signup=signup_out(reply.signup), entry=entry_out(reply.entry) if reply.HasField("entry") else None
    )
