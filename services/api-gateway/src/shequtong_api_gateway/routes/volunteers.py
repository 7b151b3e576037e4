"""Volunteer teams and volunteers (志愿者), the service-hours ledger and mutual-aid links."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, Field

from shequtong.common.v1 import common_pb2
from shequtong.volunteers.v1 import volunteers_pb2 as pb
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts, ts

router = gateway_router(tags=["volunteers"])

VolunteerState = Literal["pending", "approved", "rejected", "left", "removed"]
VOLUNTEER_STATES: dict[str, int] = {
    "pending": pb.VOLUNTEER_STATE_PENDING,
    "approved": pb.VOLUNTEER_STATE_APPROVED,
    "rejected": pb.VOLUNTEER_STATE_REJECTED,
    "left": pb.VOLUNTEER_STATE_LEFT,
    "removed": pb.VOLUNTEER_STATE_REMOVED,
}
EntryKind = Literal["credit", "reversal", "adjustment"]
ENTRY_KINDS: dict[str, int] = {
    "credit": pb.HOURS_ENTRY_KIND_CREDIT,
    "reversal": pb.HOURS_ENTRY_KIND_REVERSAL,
    "adjustment": pb.HOURS_ENTRY_KIND_ADJUSTMENT,
}
Scope = Literal["person", "team", "neighbourhood"]
SCOPES: dict[str, int] = {
    "person": pb.HOURS_SCOPE_PERSON,
    "team": pb.HOURS_SCOPE_TEAM,
    "neighbourhood": pb.HOURS_SCOPE_NEIGHBOURHOOD,
}
Target = Literal["activity", "booking"]
TARGETS: dict[str, int] = {"activity": pb.MUTUAL_AID_TARGET_ACTIVITY, "booking": pb.MUTUAL_AID_TARGET_BOOKING}


def name_of(mapping: dict[str, int], value: int) -> str:
    return next((name for name, number in mapping.items() if number == value), "unspecified")


def page(cursor: str | None, page_size: int) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(cursor=cursor or "", page_size=page_size)


# --- teams ------------------------------------------------------------------------------------------------


class TeamIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["助老服务队"])
    description: str = Field(default="", max_length=1000, examples=["陪伴独居老人、代购代办"])


class TeamOut(BaseModel):
    id: str
    neighbourhood_id: str
    name: str
    description: str
    is_default: bool
    member_count: int
    leader_person_ids: list[str]
    created_at: datetime | None


class TeamPage(BaseModel):
    items: list[TeamOut]
    next_cursor: str | None


def team_out(t: pb.Team) -> TeamOut:
    return TeamOut(
        id=t.id,
        neighbourhood_id=t.neighbourhood_id,
        name=t.name,
        description=t.description,
        is_default=t.is_default,
        member_count=t.member_count,
        leader_person_ids=list(t.leader_person_ids),
        created_at=from_ts(t.created_at),
    )


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/volunteer-teams",
    response_model=TeamPage,
    summary="The neighbourhood's volunteer teams",
)
async def list_teams(
    neighbourhood_id: str,
    caller: SignedIn,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> TeamPage:
    reply = await caller.call(
        caller.clients.volunteers.ListTeams,
        pb.ListTeamsRequest(neighbourhood_id=neighbourhood_id, page=page(cursor, page_size)),
    )
    return TeamPage(items=[team_out(t) for t in reply.teams], next_cursor=reply.page.next_cursor or None)


@router.post(
    "/v1/neighbourhoods/{neighbourhood_id}/volunteer-teams",
    status_code=201,
    response_model=TeamOut,
    summary="Add a volunteer team (committee)",
)
async def create_team(neighbourhood_id: str, body: TeamIn, caller: SignedIn) -> TeamOut:
    reply = await caller.call(
        caller.clients.volunteers.CreateTeam,
        pb.CreateTeamRequest(neighbourhood_id=neighbourhood_id, name=body.name, description=body.description),
    )
    return team_out(reply.team)


@router.get("/v1/volunteer-teams/{team_id}", response_model=TeamOut, summary="One volunteer team")
async def get_team(team_id: str, caller: SignedIn) -> TeamOut:
    reply = await caller.call(caller.clients.volunteers.GetTeam, pb.GetTeamRequest(id=team_id))
    return team_out(reply.team)


# --- volunteers -------------------------------------------------------------------------------------------


class ApplicationIn(BaseModel):
    team_id: str | None = Field(default=None, max_length=36, description="Empty: the neighbourhood's default team")
    skills: list[str] = Field(default_factory=list, max_length=20, examples=[["理发", "急救"]])
    availability: str = Field(default="", max_length=200, examples=["周末上午"])
    motivation: str = Field(default="", max_length=1000, examples=["退休了，想为邻居做点事"])


class VolunteerOut(BaseModel):
    id: str
    person_id: str
    display_name: str
    neighbourhood_id: str
    team_id: str
    state: VolunteerState
    skills: list[str]
    availability: str
    motivation: str
    is_leader: bool
    applied_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    reason: str
    ended_at: datetime | None


class VolunteerPage(BaseModel):
    items: list[VolunteerOut]
    next_cursor: str | None


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=500, examples=["长期未参加活动"])


class LeaderIn(BaseModel):
    leader: bool = Field(examples=[True])


def volunteer_out(v: pb.Volunteer) -> VolunteerOut:
    return VolunteerOut(
        id=v.id,
        person_id=v.person_id,
        display_name=v.display_name,
        neighbourhood_id=v.neighbourhood_id,
        team_id=v.team_id,
        state=name_of(VOLUNTEER_STATES, v.state),  # type: ignore[arg-type]
        skills=list(v.skills),
        availability=v.availability,
        motivation=v.motivation,
        is_leader=v.is_leader,
        applied_at=from_ts(v.applied_at),
        decided_at=from_ts(v.decided_at),
        decided_by=v.decided_by or None,
        reason=v.reason,
        ended_at=from_ts(v.ended_at),
    )


@router.post(
    "/v1/neighbourhoods/{neighbourhood_id}/volunteer-applications",
    status_code=201,
    response_model=VolunteerOut,
    summary="Apply to volunteer in the neighbourhood (verified residents)",
)
async def apply(neighbourhood_id: str, body: ApplicationIn, caller: SignedIn) -> VolunteerOut:
    reply = await caller.call(
        caller.clients.volunteers.ApplyToVolunteer,
        pb.ApplyToVolunteerRequest(
            neighbourhood_id=neighbourhood_id,
            team_id=body.team_id or "",
            skills=body.skills,
            availability=body.availability,
            motivation=body.motivation,
        ),
    )
    return volunteer_out(reply.volunteer)


@router.get(
    "/v1/volunteers",
    response_model=VolunteerPage,
    summary="Applications and volunteers of a team or a neighbourhood, or your own (mine=true)",
)
async def list_volunteers(
    caller: SignedIn,
    neighbourhood_id: str | None = None,
    team_id: str | None = None,
    state: VolunteerState | None = None,
    mine: bool = False,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> VolunteerPage:
    reply = await caller.call(
        caller.clients.volunteers.ListVolunteers,
        pb.ListVolunteersRequest(
            neighbourhood_id=neighbourhood_id or "",
            team_id=team_id or "",
            state=VOLUNTEER_STATES.get(state or "", pb.VOLUNTEER_STATE_UNSPECIFIED),  # type: ignore[arg-type]
            mine=mine,
            page=page(cursor, page_size),
        ),
    )
    return VolunteerPage(items=[volunteer_out(v) for v in reply.volunteers], next_cursor=reply.page.next_cursor or None)


@router.get("/v1/volunteers/{volunteer_id}", response_model=VolunteerOut, summary="One application or volunteer")
async def get_volunteer(volunteer_id: str, caller: SignedIn) -> VolunteerOut:
    reply = await caller.call(caller.clients.volunteers.GetVolunteer, pb.GetVolunteerRequest(id=volunteer_id))
    return volunteer_out(reply.volunteer)


@router.post(
    "/v1/volunteers/{volunteer_id}/approve",
    response_model=VolunteerOut,
    summary="Approve an application (committee); the volunteer badge follows by event",
)
async def approve(volunteer_id: str, caller: SignedIn) -> VolunteerOut:
    reply = await caller.call(
        caller.clients.volunteers.ApproveVolunteer, pb.ApproveVolunteerRequest(volunteer_id=volunteer_id)
    )
    return volunteer_out(reply.volunteer)


@router.post("/v1/volunteers/{volunteer_id}/reject", response_model=VolunteerOut, summary="Reject with a reason")
async def reject(volunteer_id: str, body: ReasonIn, caller: SignedIn) -> VolunteerOut:
    reply = await caller.call(
        caller.clients.volunteers.RejectVolunteer,
        pb.RejectVolunteerRequest(volunteer_id=volunteer_id, reason=body.reason),
    )
    return volunteer_out(reply.volunteer)


@router.post(
    "/v1/volunteers/{volunteer_id}/leave",
    response_model=VolunteerOut,
    summary="Leave the team (or withdraw the application)",
)
async def leave(volunteer_id: str, body: ReasonIn, caller: SignedIn) -> VolunteerOut:
    reply = await caller.call(
        caller.clients.volunteers.LeaveTeam, pb.LeaveTeamRequest(volunteer_id=volunteer_id, reason=body.reason)
    )
    return volunteer_out(reply.volunteer)


@router.post(
    "/v1/volunteers/{volunteer_id}/remove",
    response_model=VolunteerOut,
    summary="Remove a volunteer (committee or team leader), with a reason",
)
async def remove(volunteer_id: str, body: ReasonIn, caller: SignedIn) -> VolunteerOut:
    reply = await caller.call(
        caller.clients.volunteers.RemoveVolunteer,
        pb.RemoveVolunteerRequest(volunteer_id=volunteer_id, reason=body.reason),
    )
    return volunteer_out(reply.volunteer)


@router.post(
    "/v1/volunteers/{volunteer_id}/leader",
    response_model=VolunteerOut,
    summary="Make an approved volunteer a team leader, or stop (committee)",
)
async def set_leader(volunteer_id: str, body: LeaderIn, caller: SignedIn) -> VolunteerOut:
    reply = await caller.call(
        caller.clients.volunteers.SetTeamLeader, pb.SetTeamLeaderRequest(volunteer_id=volunteer_id, leader=body.leader)
    )
    return volunteer_out(reply.volunteer)


# --- service hours ----------------------------------------------------------------------------------------


class HoursEntryOut(BaseModel):
    id: str
    person_id: str
    neighbourhood_id: str
    team_id: str | None
    activity_id: str | None
    activity_title: str
    signup_id: str | None
    kind: EntryKind
    minutes: int = Field(description="Signed: reversals are negative")
    hours: float
    reason: str
    corrects_entry_id: str | None
    recorded_by: str
    served_at: datetime | None
    recorded_at: datetime | None
    reversed: bool


class HoursPage(BaseModel):
    items: list[HoursEntryOut]
    next_cursor: str | None


class ReverseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["签退时间录入错误"])
    corrected_minutes: int = Field(
        default=0, ge=0, le=20160, description="When > 0, the amount that replaces the reversed entry"
    )


class CorrectionOut(BaseModel):
    reversal: HoursEntryOut
    adjustment: HoursEntryOut | None


class TotalsOut(BaseModel):
    scope: Scope
    id: str
    total_minutes: int
    total_hours: float
    entry_count: int
    volunteer_count: int
    activity_count: int


class CertificateLineOut(BaseModel):
    activity_id: str | None
    activity_title: str
    served_at: datetime | None
    minutes: int
    hours: float


class CertificateOut(BaseModel):
    certificate_number: str
    person_id: str
    display_name: str
    team_names: list[str]
    period_start: datetime | None
    period_end: datetime | None
    total_minutes: int
    total_hours: float
    activity_count: int
    lines: list[CertificateLineOut]
    issued_at: datetime | None


def entry_out(e: pb.HoursEntry) -> HoursEntryOut:
    return HoursEntryOut(
        id=e.id,
        person_id=e.person_id,
        neighbourhood_id=e.neighbourhood_id,
        team_id=e.team_id or None,
        activity_id=e.activity_id or None,
        activity_title=e.activity_title,
        signup_id=e.signup_id or None,
        kind=name_of(ENTRY_KINDS, e.kind),  # type: ignore[arg-type]
        minutes=e.minutes,
        hours=round(e.minutes / 60, 2),
        reason=e.reason,
        corrects_entry_id=e.corrects_entry_id or None,
        recorded_by=e.recorded_by,
        served_at=from_ts(e.served_at),
        recorded_at=from_ts(e.recorded_at),
        reversed=e.reversed,
    )


@router.get(
    "/v1/service-hours/entries",
    response_model=HoursPage,
    summary="Ledger entries of a volunteer (yourself when no person_id)",
)
async def list_entries(
    caller: SignedIn,
    person_id: str | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> HoursPage:
    reply = await caller.call(
        caller.clients.volunteers.ListHoursEntries,
        pb.ListHoursEntriesRequest(person_id=person_id or "", page=page(cursor, page_size)),
    )
    return HoursPage(items=[entry_out(e) for e in reply.entries], next_cursor=reply.page.next_cursor or None)


@router.post(
    "/v1/service-hours/entries/{entry_id}/reversal",
    status_code=201,
    response_model=CorrectionOut,
    summary="Correct an entry: a reversal with a reason (and the corrected amount), never an edit",
)
async def reverse_entry(entry_id: str, body: ReverseIn, caller: SignedIn) -> CorrectionOut:
    reply = await caller.call(
        caller.clients.volunteers.ReverseHoursEntry,
        pb.ReverseHoursEntryRequest(entry_id=entry_id, reason=body.reason, corrected_minutes=body.corrected_minutes),
    )
    return CorrectionOut(
        reversal=entry_out(reply.reversal),
        adjustment=entry_out(reply.adjustment) if reply.HasField("adjustment") else None,
    )


def _period(start: datetime | None, end: datetime | None) -> dict[str, object]:
    values: dict[str, object] = {}
    if start is not None:
        values["period_start"] = ts(start)
    if end is not None:
        values["period_end"] = ts(end)
    return values


@router.get(
    "/v1/service-hours/totals",
    response_model=TotalsOut,
    summary="Total service hours of a volunteer, a team or a neighbourhood over [from, to)",
)
async def totals(
    caller: SignedIn,
    scope: Scope = "person",
    id: str | None = Query(default=None, max_length=64, description="Person, team or neighbourhood id"),
    from_: AwareDatetime | None = Query(default=None, alias="from"),
    to: AwareDatetime | None = None,
) -> TotalsOut:
    reply = await caller.call(
        caller.clients.volunteers.GetHoursTotals,
        pb.GetHoursTotalsRequest(scope=SCOPES[scope], id=id or "", **_period(from_, to)),  # type: ignore[arg-type]
    )
    return TotalsOut(
        scope=name_of(SCOPES, reply.scope),  # type: ignore[arg-type]
        id=reply.id,
        total_minutes=reply.total_minutes,
        total_hours=reply.total_hours,
        entry_count=reply.entry_count,
        volunteer_count=reply.volunteer_count,
        activity_count=reply.activity_count,
    )


@router.get(
    "/v1/service-hours/certificate",
    response_model=CertificateOut,
    summary="A certificate-style summary of a volunteer's hours (yourself when no person_id)",
)
async def certificate(
    caller: SignedIn,
    person_id: str | None = None,
    from_: AwareDatetime | None = Query(default=None, alias="from"),
    to: AwareDatetime | None = None,
) -> CertificateOut:
    reply = await caller.call(
        caller.clients.volunteers.GetServiceCertificate,
        pb.GetServiceCertificateRequest(person_id=person_id or "", **_period(from_, to)),  # type: ignore[arg-type]
    )
    return CertificateOut(
        certificate_number=reply.certificate_number,
        person_id=reply.person_id,
        display_name=reply.display_name,
        team_names=list(reply.team_names),
        period_start=from_ts(reply.period_start),
        period_end=from_ts(reply.period_end),
        total_minutes=reply.total_minutes,
        total_hours=reply.total_hours,
        activity_count=reply.activity_count,
        lines=[
            CertificateLineOut(
                activity_id=line.activity_id or None,
                activity_title=line.activity_title,
                served_at=from_ts(line.served_at),
                minutes=line.minutes,
                hours=round(line.minutes / 60, 2),
            )
            for line in reply.lines
        ],
        issued_at=from_ts(reply.issued_at),
    )


# --- mutual aid ---------------------------------------------------------------------------------------------


class MutualAidIn(BaseModel):
    issue_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    target: Target = Field(examples=["activity"])
    target_id: str = Field(min_length=1, max_length=36)
    note: str = Field(default="", max_length=500, examples=["志愿者帮独居老人修好了漏水的水龙头"])


class MutualAidOut(BaseModel):
    id: str
    issue_id: str
    target: Target
    target_id: str
    neighbourhood_id: str
    organisation_id: str | None
    note: str
    linked_by: str
    linked_at: datetime | None


class MutualAidPage(BaseModel):
    items: list[MutualAidOut]
    next_cursor: str | None


def link_out(link: pb.MutualAidLink) -> MutualAidOut:
    return MutualAidOut(
        id=link.id,
        issue_id=link.issue_id,
        target=name_of(TARGETS, link.target),  # type: ignore[arg-type]
        target_id=link.target_id,
        neighbourhood_id=link.neighbourhood_id,
        organisation_id=link.organisation_id or None,
        note=link.note,
        linked_by=link.linked_by,
        linked_at=from_ts(link.linked_at),
    )


@router.post(
    "/v1/mutual-aid-links",
    status_code=201,
    response_model=MutualAidOut,
    summary="Record that an issue was resolved by an activity or a storefront booking",
)
async def link_mutual_aid(body: MutualAidIn, caller: SignedIn) -> MutualAidOut:
    reply = await caller.call(
        caller.clients.volunteers.LinkMutualAid,
        pb.LinkMutualAidRequest(
            issue_id=body.issue_id,
            target=TARGETS[body.target],
            target_id=body.target_id,
            note=body.note,  # type: ignore[arg-type]
        ),
    )
    return link_out(reply.link)


@router.get(
    "/v1/mutual-aid-links",
    response_model=MutualAidPage,
    summary="Mutual-aid links of an issue or of a neighbourhood",
)
async def list_mutual_aid(
    caller: SignedIn,
    issue_id: str | None = None,
    neighbourhood_id: str | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> MutualAidPage:
    reply = await caller.call(
        caller.clients.volunteers.ListMutualAidLinks,
        pb.ListMutualAidLinksRequest(
            issue_id=issue_id or "", neighbourhood_id=neighbourhood_id or "", page=page(cursor, page_size)
        ),
    )
    return MutualAidPage(items=[link_out(link) for link in reply.links], next_cursor=reply.page.next_cursor or None)
