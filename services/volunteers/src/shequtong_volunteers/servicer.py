"""gRPC ⇄ domain translation for volunteers: unpack the request, find who is asking, run the use case
(writes inside `idempotency.run_once`: one transaction, at most once per Idempotency-Key), pack the reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.common.v1 import common_pb2
from shequtong.volunteers.v1 import volunteers_pb2 as pb
from shequtong.volunteers.v1 import volunteers_pb2_grpc
from shequtong_kit import auth
from shequtong_kit.auth import Principal
from shequtong_kit.errors import InvalidArgument
from shequtong_kit.grpc_server import metadata_value
from shequtong_kit.idempotency import IDEMPOTENCY_METADATA, run_once
from shequtong_kit.pagination import encode_cursor, page_size
from shequtong_kit.proto import from_ts, ts
from shequtong_volunteers.domain import activities as activity_rules
from shequtong_volunteers.domain import bookings as booking_rules
from shequtong_volunteers.domain import imports
from shequtong_volunteers.domain import ledger as ledger_rules
from shequtong_volunteers.domain import mutual_aid as aid_rules
from shequtong_volunteers.domain import organisations as org_rules
from shequtong_volunteers.domain import volunteers as volunteer_rules
from shequtong_volunteers.models import (
    Activity,
    Booking,
    HoursEntry,
    MutualAidLink,
    Offering,
    Organisation,
    Signup,
    Slot,
    Storefront,
    Team,
    Volunteer,
)
from shequtong_volunteers.service import ImportedRecord, VolunteersService

R = TypeVar("R", bound=Message)
Work = Callable[[AsyncSession, Principal], Awaitable[R]]

VOLUNTEER_STATES = {
    volunteer_rules.PENDING: pb.VOLUNTEER_STATE_PENDING,
    volunteer_rules.APPROVED: pb.VOLUNTEER_STATE_APPROVED,
    volunteer_rules.REJECTED: pb.VOLUNTEER_STATE_REJECTED,
    volunteer_rules.LEFT: pb.VOLUNTEER_STATE_LEFT,
    volunteer_rules.REMOVED: pb.VOLUNTEER_STATE_REMOVED,
}
ORGANISER_KINDS = {
    activity_rules.NEIGHBOURHOOD: pb.ORGANISER_KIND_NEIGHBOURHOOD,
    activity_rules.ORGANISATION: pb.ORGANISER_KIND_ORGANISATION,
}
ACTIVITY_STATES = {activity_rules.OPEN: pb.ACTIVITY_STATE_OPEN, activity_rules.CANCELLED: pb.ACTIVITY_STATE_CANCELLED}
SIGNUP_STATES = {
    activity_rules.CONFIRMED: pb.SIGNUP_STATE_CONFIRMED,
    activity_rules.WAITLISTED: pb.SIGNUP_STATE_WAITLISTED,
    activity_rules.SIGNUP_CANCELLED: pb.SIGNUP_STATE_CANCELLED,
    activity_rules.ACTIVITY_CANCELLED: pb.SIGNUP_STATE_ACTIVITY_CANCELLED,
}
METHODS = {activity_rules.ORGANISER: pb.ATTENDANCE_METHOD_ORGANISER, activity_rules.QR: pb.ATTENDANCE_METHOD_QR}
ENTRY_KINDS = {
    ledger_rules.CREDIT: pb.HOURS_ENTRY_KIND_CREDIT,
    ledger_rules.REVERSAL: pb.HOURS_ENTRY_KIND_REVERSAL,
    ledger_rules.ADJUSTMENT: pb.HOURS_ENTRY_KIND_ADJUSTMENT,
}
HOURS_SCOPES = {
    "person": pb.HOURS_SCOPE_PERSON,
    "team": pb.HOURS_SCOPE_TEAM,
    "neighbourhood": pb.HOURS_SCOPE_NEIGHBOURHOOD,
}
ORGANISATION_STATES = {
    org_rules.PENDING: pb.ORGANISATION_STATE_PENDING,
    org_rules.APPROVED: pb.ORGANISATION_STATE_APPROVED,
    org_rules.REJECTED: pb.ORGANISATION_STATE_REJECTED,
}
STOREFRONT_STATES = {org_rules.OPEN: pb.STOREFRONT_STATE_OPEN, org_rules.CLOSED: pb.STOREFRONT_STATE_CLOSED}
BOOKING_STATES = {
    booking_rules.REQUESTED: pb.BOOKING_STATE_REQUESTED,
    booking_rules.ACCEPTED: pb.BOOKING_STATE_ACCEPTED,
    booking_rules.DECLINED: pb.BOOKING_STATE_DECLINED,
    booking_rules.FULFILLED: pb.BOOKING_STATE_FULFILLED,
    booking_rules.CANCELLED: pb.BOOKING_STATE_CANCELLED,
}
MUTUAL_AID_TARGETS = {
    aid_rules.ACTIVITY: pb.MUTUAL_AID_TARGET_ACTIVITY,
    aid_rules.BOOKING: pb.MUTUAL_AID_TARGET_BOOKING,
}


def _name_of(mapping: Mapping[str, Any], value: int, field: str, allow_unspecified: bool = True) -> str:
    """The domain's string for a proto enum value ("" for UNSPECIFIED when allowed)."""
    if value == 0 and allow_unspecified:
        return ""
    for name, number in mapping.items():
        if number == value:
            return name
    raise InvalidArgument(f"{field} is not a known value", code=f"{field}_invalid")


def _page(rows: Sequence[Any], limit: int, key: Callable[[Any], str]) -> tuple[list[Any], common_pb2.PageInfo]:
    more = len(rows) > limit
    shown = list(rows[:limit])
    return shown, common_pb2.PageInfo(next_cursor=key(shown[-1]) if more else "", has_more=more)


def _by_id(row: Any) -> str:
    return encode_cursor(row.id)


# --- model -> proto ------------------------------------------------------------------------------------------


def team_pb(team: Team, figures: tuple[int, list[str]]) -> pb.Team:
    return pb.Team(
        id=team.id,
        neighbourhood_id=team.neighbourhood_id,
        name=team.name,
        description=team.description,
        is_default=team.is_default,
        member_count=figures[0],
        leader_person_ids=figures[1],
        created_at=ts(team.created_at),
    )


def volunteer_pb(v: Volunteer, names: dict[str, str]) -> pb.Volunteer:
    return pb.Volunteer(
        id=v.id,
        person_id=v.person_id,
        neighbourhood_id=v.neighbourhood_id,
        team_id=v.team_id,
        state=VOLUNTEER_STATES[v.state],  # type: ignore[arg-type]
        skills=v.skills,
        availability=v.availability,
        motivation=v.motivation,
        is_leader=v.is_leader,
        display_name=names.get(v.person_id, ""),
        applied_at=ts(v.applied_at),
        decided_at=ts(v.decided_at),
        decided_by=v.decided_by or "",
        reason=v.reason,
        ended_at=ts(v.ended_at),
    )


def activity_pb(a: Activity) -> pb.Activity:
    return pb.Activity(
        id=a.id,
        organiser_kind=ORGANISER_KINDS[a.organiser_kind],  # type: ignore[arg-type]
        neighbourhood_id=a.neighbourhood_id or "",
        organisation_id=a.organisation_id or "",
        team_id=a.team_id or "",
        title=a.title,
        description=a.description,
        place=a.place,
        starts_at=ts(a.starts_at),
        ends_at=ts(a.ends_at),
        capacity=a.capacity,
        required_skills=a.required_skills,
        audience_neighbourhood_ids=a.audience,
        state=ACTIVITY_STATES[a.state],  # type: ignore[arg-type]
        confirmed_count=a.confirmed_count,
        waitlist_count=a.waitlist_count,
        created_by=a.created_by,
        created_at=ts(a.created_at),
        cancel_reason=a.cancel_reason,
        cancelled_at=ts(a.cancelled_at),
    )


def signup_pb(s: Signup, position: int = 0, names: dict[str, str] | None = None) -> pb.Signup:
    return pb.Signup(
        id=s.id,
        activity_id=s.activity_id,
        person_id=s.person_id,
        neighbourhood_id=s.neighbourhood_id,
        state=SIGNUP_STATES[s.state],  # type: ignore[arg-type]
        waitlist_position=position if s.state == activity_rules.WAITLISTED else 0,
        signed_up_at=ts(s.signed_up_at),
        confirmed_at=ts(s.confirmed_at),
        cancelled_at=ts(s.cancelled_at),
        checked_in_at=ts(s.checked_in_at),
        checked_out_at=ts(s.checked_out_at),
        check_in_method=METHODS.get(s.check_in_method or "", 0),  # type: ignore[arg-type]
        check_out_method=METHODS.get(s.check_out_method or "", 0),  # type: ignore[arg-type]
        credited_minutes=s.credited_minutes,
        promoted_from_waitlist=s.promoted,
        display_name=(names or {}).get(s.person_id, ""),
    )


def entry_pb(e: HoursEntry, reversed_ids: set[str] | None = None) -> pb.HoursEntry:
    return pb.HoursEntry(
        id=e.id,
        person_id=e.person_id,
        neighbourhood_id=e.neighbourhood_id,
        team_id=e.team_id or "",
        activity_id=e.activity_id or "",
        signup_id=e.signup_id or "",
        kind=ENTRY_KINDS[e.kind],  # type: ignore[arg-type]
        minutes=e.minutes,
        reason=e.reason,
        corrects_entry_id=e.corrects_entry_id or "",
        recorded_by=e.recorded_by,
        served_at=ts(e.served_at),
        recorded_at=ts(e.recorded_at),
        activity_title=e.activity_title,
        reversed=e.id in (reversed_ids or set()),
    )


def organisation_pb(o: Organisation, admins: list[str]) -> pb.Organisation:
    return pb.Organisation(
        id=o.id,
        name=o.name,
        credit_code=o.credit_code,
        district_id=o.district_id,
        description=o.description,
        state=ORGANISATION_STATES[o.state],  # type: ignore[arg-type]
        registered_by=o.registered_by,
        registered_at=ts(o.registered_at),
        decided_by=o.decided_by or "",
        decided_at=ts(o.decided_at),
        reason=o.reason,
        admin_person_ids=admins,
    )


def storefront_pb(
    s: Storefront, served: list[str], stats: booking_rules.Stats, organisation_name: str
) -> pb.Storefront:
    return pb.Storefront(
        id=s.id,
        organisation_id=s.organisation_id,
        name=s.name,
        description=s.description,
        address=s.address,
        neighbourhood_ids=served,
        state=STOREFRONT_STATES[s.state],  # type: ignore[arg-type]
        stats=pb.StorefrontStats(
            rating_count=stats.rating_count,
            average_rating=stats.average_rating,
            fulfilled_count=stats.fulfilled_count,
            declined_count=stats.declined_count,
            fulfilment_rate=stats.fulfilment_rate,
            booking_count=stats.booking_count,
        ),
        opened_at=ts(s.opened_at),
        organisation_name=organisation_name,
    )


def offering_pb(o: Offering) -> pb.Offering:
    return pb.Offering(
        id=o.id,
        storefront_id=o.storefront_id,
        title=o.title,
        description=o.description,
        category=o.category,
        price_cents=o.price_cents,
        neighbourhood_ids=o.neighbourhood_ids,
        eligibility_note=o.eligibility_note,
        created_at=ts(o.created_at),
    )


def slot_pb(s: Slot) -> pb.Slot:
    return pb.Slot(
        id=s.id,
        offering_id=s.offering_id,
        starts_at=ts(s.starts_at),
        ends_at=ts(s.ends_at),
        capacity=s.capacity,
        booked_count=s.booked_count,
    )


def booking_pb(b: Booking, offerings: dict[str, Offering], slots: dict[str, Slot], names: dict[str, str]) -> pb.Booking:
    offering = offerings.get(b.offering_id)
    slot = slots.get(b.slot_id or "")
    return pb.Booking(
        id=b.id,
        storefront_id=b.storefront_id,
        offering_id=b.offering_id,
        slot_id=b.slot_id or "",
        organisation_id=b.organisation_id,
        person_id=b.person_id,
        neighbourhood_id=b.neighbourhood_id,
        state=BOOKING_STATES[b.state],  # type: ignore[arg-type]
        note=b.note,
        reason=b.reason,
        rating=b.rating or 0,
        rating_comment=b.rating_comment,
        requested_at=ts(b.requested_at),
        decided_at=ts(b.decided_at),
        fulfilled_at=ts(b.fulfilled_at),
        rated_at=ts(b.rated_at),
        offering_title=offering.title if offering else "",
        price_cents=offering.price_cents if offering else 0,
        slot_starts_at=ts(slot.starts_at) if slot else None,
        display_name=names.get(b.person_id, ""),
    )


def link_pb(link: MutualAidLink) -> pb.MutualAidLink:
    return pb.MutualAidLink(
        id=link.id,
        issue_id=link.issue_id,
        target=MUTUAL_AID_TARGETS[link.target],  # type: ignore[arg-type]
        target_id=link.target_id,
        neighbourhood_id=link.neighbourhood_id,
        organisation_id=link.organisation_id or "",
        note=link.note,
        linked_by=link.linked_by,
        linked_at=ts(link.linked_at),
    )


class VolunteersServicer(volunteers_pb2_grpc.VolunteersServiceServicer):
    def __init__(self, service: VolunteersService) -> None:
        self.service = service

    # --- plumbing ----------------------------------------------------------------------------------------
    async def _write(
        self, context: grpc.aio.ServicerContext, method: str, request: Message, response_type: type[R], work: Work[R]
    ) -> R:
        """One transaction; with an Idempotency-Key, at most once per caller and key (a retry gets the
        first reply)."""
        principal = auth.current()
        return await run_once(
            self.service.sessions,
            metadata_value(context, IDEMPOTENCY_METADATA),
            f"{method}:{principal.subject}",
            request,
            response_type,
            lambda session: work(session, principal),
            clock=self.service.clock,
        )

    async def _read(self, work: Work[R]) -> R:
        principal = auth.current()
        async with self.service.sessions() as session:
            return await work(session, principal)

    async def _volunteer_reply(self, session: AsyncSession, volunteer: Volunteer) -> pb.Volunteer:
        return volunteer_pb(volunteer, await self.service.names(session, [volunteer.person_id]))

    async def _storefronts(self, session: AsyncSession, rows: Sequence[Storefront]) -> list[pb.Storefront]:
        served, stats, org_names = await self.service.storefront_details(session, rows)
        return [storefront_pb(s, served[s.id], stats[s.id], org_names.get(s.organisation_id, "")) for s in rows]

    async def _bookings(self, session: AsyncSession, rows: Sequence[Booking]) -> list[pb.Booking]:
        offerings, slots, names = await self.service.booking_details(session, rows)
        return [booking_pb(b, offerings, slots, names) for b in rows]

    # =============================================================================================
    # teams and volunteers
    # =============================================================================================

    async def ListTeams(self, request: pb.ListTeamsRequest, context: grpc.aio.ServicerContext) -> pb.ListTeamsResponse:
        limit = page_size(request.page.page_size)

        async def work(session: AsyncSession, principal: Principal) -> pb.ListTeamsResponse:
            rows = await self.service.list_teams(
                session, principal, request.neighbourhood_id, request.page.cursor, limit + 1
            )
            rows, page = _page(rows, limit, _by_id)
            figures = await self.service.team_figures(session, rows)
            return pb.ListTeamsResponse(teams=[team_pb(t, figures[t.id]) for t in rows], page=page)

        return await self._read(work)

    async def CreateTeam(
        self, request: pb.CreateTeamRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTeamResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.CreateTeamResponse:
            team = await self.service.create_team(
                session, principal, request.neighbourhood_id, request.name, request.description
            )
            return pb.CreateTeamResponse(team=team_pb(team, (0, [])))

        return await self._write(context, "CreateTeam", request, pb.CreateTeamResponse, work)

    async def GetTeam(self, request: pb.GetTeamRequest, context: grpc.aio.ServicerContext) -> pb.GetTeamResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetTeamResponse:
            team = await self.service.get_team(session, principal, request.id)
            figures = await self.service.team_figures(session, [team])
            return pb.GetTeamResponse(team=team_pb(team, figures[team.id]))

        return await self._read(work)

    async def SetTeamLeader(
        self, request: pb.SetTeamLeaderRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetTeamLeaderResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.SetTeamLeaderResponse:
            volunteer = await self.service.set_leader(session, principal, request.volunteer_id, request.leader)
            return pb.SetTeamLeaderResponse(volunteer=await self._volunteer_reply(session, volunteer))

        return await self._write(context, "SetTeamLeader", request, pb.SetTeamLeaderResponse, work)

    async def ApplyToVolunteer(
        self, request: pb.ApplyToVolunteerRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyToVolunteerResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.ApplyToVolunteerResponse:
            volunteer = await self.service.apply(
                session,
                principal,
                request.neighbourhood_id,
                request.team_id,
                list(request.skills),
                request.availability,
                request.motivation,
            )
            return pb.ApplyToVolunteerResponse(volunteer=await self._volunteer_reply(session, volunteer))

        return await self._write(context, "ApplyToVolunteer", request, pb.ApplyToVolunteerResponse, work)

    async def GetVolunteer(
        self, request: pb.GetVolunteerRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetVolunteerResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetVolunteerResponse:
            volunteer = await self.service.get_volunteer(session, principal, request.id)
            return pb.GetVolunteerResponse(volunteer=await self._volunteer_reply(session, volunteer))

        return await self._read(work)

    async def ListVolunteers(
        self, request: pb.ListVolunteersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListVolunteersResponse:
        limit = page_size(request.page.page_size)
        state = _name_of(VOLUNTEER_STATES, request.state, "state")

        async def work(session: AsyncSession, principal: Principal) -> pb.ListVolunteersResponse:
            rows = await self.service.list_volunteers(
                session,
                principal,
                neighbourhood_id=request.neighbourhood_id,
                team_id=request.team_id,
                state=state,
                mine=request.mine,
                cursor=request.page.cursor,
                limit=limit + 1,
            )
            rows, page = _page(rows, limit, _by_id)
            names = await self.service.names(session, [v.person_id for v in rows])
            return pb.ListVolunteersResponse(volunteers=[volunteer_pb(v, names) for v in rows], page=page)

        return await self._read(work)

    async def ApproveVolunteer(
        self, request: pb.ApproveVolunteerRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApproveVolunteerResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.ApproveVolunteerResponse:
            volunteer = await self.service.approve(session, principal, request.volunteer_id)
            return pb.ApproveVolunteerResponse(volunteer=await self._volunteer_reply(session, volunteer))

        return await self._write(context, "ApproveVolunteer", request, pb.ApproveVolunteerResponse, work)

    async def RejectVolunteer(
        self, request: pb.RejectVolunteerRequest, context: grpc.aio.ServicerContext
    ) -> pb.RejectVolunteerResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.RejectVolunteerResponse:
            volunteer = await self.service.reject(session, principal, request.volunteer_id, request.reason)
            return pb.RejectVolunteerResponse(volunteer=await self._volunteer_reply(session, volunteer))

        return await self._write(context, "RejectVolunteer", request, pb.RejectVolunteerResponse, work)

    async def LeaveTeam(self, request: pb.LeaveTeamRequest, context: grpc.aio.ServicerContext) -> pb.LeaveTeamResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.LeaveTeamResponse:
            volunteer = await self.service.leave(session, principal, request.volunteer_id, request.reason)
            return pb.LeaveTeamResponse(volunteer=await self._volunteer_reply(session, volunteer))

        return await self._write(context, "LeaveTeam", request, pb.LeaveTeamResponse, work)

    async def RemoveVolunteer(
        self, request: pb.RemoveVolunteerRequest, context: grpc.aio.ServicerContext
    ) -> pb.RemoveVolunteerResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.RemoveVolunteerResponse:
            volunteer = await self.service.remove(session, principal, request.volunteer_id, request.reason)
            return pb.RemoveVolunteerResponse(volunteer=await self._volunteer_reply(session, volunteer))

        return await self._write(context, "RemoveVolunteer", request, pb.RemoveVolunteerResponse, work)

    # =============================================================================================
    # activities
    # =============================================================================================

    async def CreateActivity(
        self, request: pb.CreateActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateActivityResponse:
        kind = _name_of(ORGANISER_KINDS, request.organiser_kind, "organiser_kind")

        async def work(session: AsyncSession, principal: Principal) -> pb.CreateActivityResponse:
            activity = await self.service.create_activity(
                session,
                principal,
                organiser_kind=kind,
                neighbourhood_id=request.neighbourhood_id,
                organisation_id=request.organisation_id,
                team_id=request.team_id,
                title=request.title,
                description=request.description,
                place=request.place,
                starts_at=from_ts(request.starts_at) if request.HasField("starts_at") else None,
                ends_at=from_ts(request.ends_at) if request.HasField("ends_at") else None,
                capacity=request.capacity,
                required_skills=list(request.required_skills),
                audience_neighbourhood_ids=list(request.audience_neighbourhood_ids),
            )
            return pb.CreateActivityResponse(activity=activity_pb(activity))

        return await self._write(context, "CreateActivity", request, pb.CreateActivityResponse, work)

    async def GetActivity(
        self, request: pb.GetActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetActivityResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetActivityResponse:
            activity, mine, position = await self.service.get_activity(session, principal, request.id)
            return pb.GetActivityResponse(
                activity=activity_pb(activity), my_signup=signup_pb(mine, position) if mine else None
            )

        return await self._read(work)

    async def ListActivities(
        self, request: pb.ListActivitiesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListActivitiesResponse:
        limit = page_size(request.page.page_size)

        async def work(session: AsyncSession, principal: Principal) -> pb.ListActivitiesResponse:
            rows = await self.service.list_activities(
                session,
                principal,
                neighbourhood_id=request.neighbourhood_id,
                organisation_id=request.organisation_id,
                ends_after=from_ts(request.ends_after) if request.HasField("ends_after") else None,
                include_cancelled=request.include_cancelled,
                cursor=request.page.cursor,
                limit=limit + 1,
            )
            rows, page = _page(rows, limit, lambda a: encode_cursor(a.starts_at.isoformat(), a.id))
            return pb.ListActivitiesResponse(activities=[activity_pb(a) for a in rows], page=page)

        return await self._read(work)

    async def CancelActivity(
        self, request: pb.CancelActivityRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelActivityResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.CancelActivityResponse:
            activity, notified = await self.service.cancel_activity(session, principal, request.id, request.reason)
            return pb.CancelActivityResponse(activity=activity_pb(activity), notified_count=notified)

        return await self._write(context, "CancelActivity", request, pb.CancelActivityResponse, work)

    async def SignUp(self, request: pb.SignUpRequest, context: grpc.aio.ServicerContext) -> pb.SignUpResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.SignUpResponse:
            signup, position = await self.service.sign_up(
                session, principal, request.activity_id, request.neighbourhood_id
            )
            return pb.SignUpResponse(signup=signup_pb(signup, position))

        return await self._write(context, "SignUp", request, pb.SignUpResponse, work)

    async def CancelSignup(
        self, request: pb.CancelSignupRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelSignupResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.CancelSignupResponse:
            signup, promoted = await self.service.cancel_signup(session, principal, request.activity_id)
            return pb.CancelSignupResponse(signup=signup_pb(signup), promoted=signup_pb(promoted) if promoted else None)

        return await self._write(context, "CancelSignup", request, pb.CancelSignupResponse, work)

    async def ListSignups(
        self, request: pb.ListSignupsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListSignupsResponse:
        limit = page_size(request.page.page_size)
        state = _name_of(SIGNUP_STATES, request.state, "state")

        async def work(session: AsyncSession, principal: Principal) -> pb.ListSignupsResponse:
            rows, positions = await self.service.list_signups(
                session,
                principal,
                activity_id=request.activity_id,
                state=state,
                mine=request.mine,
                cursor=request.page.cursor,
                limit=limit + 1,
            )
            rows, page = _page(rows, limit, lambda s: encode_cursor(s.signed_up_at.isoformat(), s.id))
            names = await self.service.names(session, [s.person_id for s in rows])
            return pb.ListSignupsResponse(
                signups=[signup_pb(s, positions.get(s.id, 0), names) for s in rows], page=page
            )

        return await self._read(work)

    async def GetCheckinCode(
        self, request: pb.GetCheckinCodeRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCheckinCodeResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetCheckinCodeResponse:
            code, window = await self.service.checkin_code(session, principal, request.activity_id)
            return pb.GetCheckinCodeResponse(
                code=code,
                check_in_opens_at=ts(window.check_in_opens),
                check_in_closes_at=ts(window.check_in_closes),
                check_out_closes_at=ts(window.check_out_closes),
            )

        return await self._read(work)

    async def CheckIn(self, request: pb.CheckInRequest, context: grpc.aio.ServicerContext) -> pb.CheckInResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.CheckInResponse:
            signup = await self.service.check_in(
                session, principal, request.activity_id, request.person_id, request.code
            )
            return pb.CheckInResponse(signup=signup_pb(signup))

        return await self._write(context, "CheckIn", request, pb.CheckInResponse, work)

    async def CheckOut(self, request: pb.CheckOutRequest, context: grpc.aio.ServicerContext) -> pb.CheckOutResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.CheckOutResponse:
            signup, entry = await self.service.check_out(
                session, principal, request.activity_id, request.person_id, request.code
            )
            return pb.CheckOutResponse(signup=signup_pb(signup), entry=entry_pb(entry) if entry else None)

        return await self._write(context, "CheckOut", request, pb.CheckOutResponse, work)

    # =============================================================================================
    # service hours
    # =============================================================================================

    async def ListHoursEntries(
        self, request: pb.ListHoursEntriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListHoursEntriesResponse:
        limit = page_size(request.page.page_size)

        async def work(session: AsyncSession, principal: Principal) -> pb.ListHoursEntriesResponse:
            rows, reversed_ids, next_cursor = await self.service.list_entries(
                session, principal, request.person_id, request.page.cursor, limit
            )
            return pb.ListHoursEntriesResponse(
                entries=[entry_pb(e, reversed_ids) for e in rows],
                page=common_pb2.PageInfo(next_cursor=next_cursor, has_more=bool(next_cursor)),
            )

        return await self._read(work)

    async def ReverseHoursEntry(
        self, request: pb.ReverseHoursEntryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReverseHoursEntryResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.ReverseHoursEntryResponse:
            reversal, adjustment = await self.service.reverse_entry(
                session, principal, request.entry_id, request.reason, request.corrected_minutes
            )
            return pb.ReverseHoursEntryResponse(
                reversal=entry_pb(reversal), adjustment=entry_pb(adjustment) if adjustment else None
            )

        return await self._write(context, "ReverseHoursEntry", request, pb.ReverseHoursEntryResponse, work)

    async def GetHoursTotals(
        self, request: pb.GetHoursTotalsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetHoursTotalsResponse:
        scope = _name_of(HOURS_SCOPES, request.scope, "scope") or "person"

        async def work(session: AsyncSession, principal: Principal) -> pb.GetHoursTotalsResponse:
            totals = await self.service.totals(
                session,
                principal,
                scope,
                request.id,
                from_ts(request.period_start) if request.HasField("period_start") else None,
                from_ts(request.period_end) if request.HasField("period_end") else None,
            )
            return pb.GetHoursTotalsResponse(
                scope=HOURS_SCOPES[totals.scope],  # type: ignore[arg-type]
                id=totals.id,
                total_minutes=totals.total_minutes,
                total_hours=ledger_rules.hours(totals.total_minutes),
                entry_count=totals.entry_count,
                volunteer_count=totals.volunteer_count,
                activity_count=totals.activity_count,
            )

        return await self._read(work)

    async def GetServiceCertificate(
        self, request: pb.GetServiceCertificateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetServiceCertificateResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetServiceCertificateResponse:
            cert = await self.service.certificate(
                session,
                principal,
                request.person_id,
                from_ts(request.period_start) if request.HasField("period_start") else None,
                from_ts(request.period_end) if request.HasField("period_end") else None,
            )
            return pb.GetServiceCertificateResponse(
                certificate_number=cert.number,
                person_id=cert.person_id,
                display_name=cert.display_name,
                team_names=cert.team_names,
                period_start=ts(cert.start),
                period_end=ts(cert.end),
                total_minutes=cert.total_minutes,
                total_hours=ledger_rules.hours(cert.total_minutes),
                activity_count=len(cert.lines),
                lines=[
                    pb.CertificateLine(
                        activity_id=line.activity_id,
                        activity_title=line.activity_title,
                        served_at=ts(line.served_at),
                        minutes=line.minutes,
                    )
                    for line in cert.lines
                ],
                issued_at=ts(cert.issued_at),
            )

        return await self._read(work)

    # =============================================================================================
    # organisations and storefronts
    # =============================================================================================

    async def RegisterOrganisation(
        self, request: pb.RegisterOrganisationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterOrganisationResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.RegisterOrganisationResponse:
            org, admins = await self.service.register_organisation(
                session, principal, request.name, request.credit_code, request.district_id, request.description
            )
            return pb.RegisterOrganisationResponse(organisation=organisation_pb(org, admins))

        return await self._write(context, "RegisterOrganisation", request, pb.RegisterOrganisationResponse, work)

    async def GetOrganisation(
        self, request: pb.GetOrganisationRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetOrganisationResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetOrganisationResponse:
            org, admins = await self.service.get_organisation(session, principal, request.id)
            return pb.GetOrganisationResponse(organisation=organisation_pb(org, admins))

        return await self._read(work)

    async def ListOrganisations(
        self, request: pb.ListOrganisationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOrganisationsResponse:
        limit = page_size(request.page.page_size)
        state = _name_of(ORGANISATION_STATES, request.state, "state")

        async def work(session: AsyncSession, principal: Principal) -> pb.ListOrganisationsResponse:
            rows, admins = await self.service.list_organisations(
                session,
                principal,
                district_id=request.district_id,
                state=state,
                mine=request.mine,
                cursor=request.page.cursor,
                limit=limit + 1,
            )
            rows, page = _page(rows, limit, _by_id)
            return pb.ListOrganisationsResponse(
                organisations=[organisation_pb(o, admins.get(o.id, [])) for o in rows], page=page
            )

        return await self._read(work)

    async def ApproveOrganisation(
        self, request: pb.ApproveOrganisationRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApproveOrganisationResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.ApproveOrganisationResponse:
            org, admins = await self.service.decide_organisation(session, principal, request.id, True, "")
            return pb.ApproveOrganisationResponse(organisation=organisation_pb(org, admins))

        return await self._write(context, "ApproveOrganisation", request, pb.ApproveOrganisationResponse, work)

    async def RejectOrganisation(
        self, request: pb.RejectOrganisationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RejectOrganisationResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.RejectOrganisationResponse:
            org, admins = await self.service.decide_organisation(session, principal, request.id, False, request.reason)
            return pb.RejectOrganisationResponse(organisation=organisation_pb(org, admins))

        return await self._write(context, "RejectOrganisation", request, pb.RejectOrganisationResponse, work)

    async def OpenStorefront(
        self, request: pb.OpenStorefrontRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenStorefrontResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.OpenStorefrontResponse:
            storefront, _ = await self.service.open_storefront(
                session,
                principal,
                request.organisation_id,
                request.name,
                request.description,
                request.address,
                list(request.neighbourhood_ids),
            )
            return pb.OpenStorefrontResponse(storefront=(await self._storefronts(session, [storefront]))[0])

        return await self._write(context, "OpenStorefront", request, pb.OpenStorefrontResponse, work)

    async def GetStorefront(
        self, request: pb.GetStorefrontRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetStorefrontResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetStorefrontResponse:
            storefront = await self.service.get_storefront(session, principal, request.id)
            return pb.GetStorefrontResponse(storefront=(await self._storefronts(session, [storefront]))[0])

        return await self._read(work)

    async def ListStorefronts(
        self, request: pb.ListStorefrontsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListStorefrontsResponse:
        limit = page_size(request.page.page_size)

        async def work(session: AsyncSession, principal: Principal) -> pb.ListStorefrontsResponse:
            rows = await self.service.list_storefronts(
                session, principal, request.neighbourhood_id, request.organisation_id, request.page.cursor, limit + 1
            )
            rows, page = _page(rows, limit, _by_id)
            return pb.ListStorefrontsResponse(storefronts=await self._storefronts(session, rows), page=page)

        return await self._read(work)

    async def CloseStorefront(
        self, request: pb.CloseStorefrontRequest, context: grpc.aio.ServicerContext
    ) -> pb.CloseStorefrontResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.CloseStorefrontResponse:
            storefront = await self.service.close_storefront(session, principal, request.id)
            return pb.CloseStorefrontResponse(storefront=(await self._storefronts(session, [storefront]))[0])

        return await self._write(context, "CloseStorefront", request, pb.CloseStorefrontResponse, work)

    async def AddOffering(
        self, request: pb.AddOfferingRequest, context: grpc.aio.ServicerContext
    ) -> pb.AddOfferingResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.AddOfferingResponse:
            offering = await self.service.add_offering(
                session,
                principal,
                request.storefront_id,
                title=request.title,
                description=request.description,
                category=request.category,
                price_cents=request.price_cents,
                neighbourhood_ids=list(request.neighbourhood_ids),
                eligibility_note=request.eligibility_note,
            )
            return pb.AddOfferingResponse(offering=offering_pb(offering))

        return await self._write(context, "AddOffering", request, pb.AddOfferingResponse, work)

    async def ListOfferings(
        self, request: pb.ListOfferingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListOfferingsResponse:
        limit = page_size(request.page.page_size)

        async def work(session: AsyncSession, principal: Principal) -> pb.ListOfferingsResponse:
            rows = await self.service.list_offerings(
                session, principal, request.storefront_id, request.page.cursor, limit + 1
            )
            rows, page = _page(rows, limit, _by_id)
            return pb.ListOfferingsResponse(offerings=[offering_pb(o) for o in rows], page=page)

        return await self._read(work)

    async def AddSlot(self, request: pb.AddSlotRequest, context: grpc.aio.ServicerContext) -> pb.AddSlotResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.AddSlotResponse:
            slot = await self.service.add_slot(
                session,
                principal,
                request.offering_id,
                from_ts(request.starts_at) if request.HasField("starts_at") else None,
                from_ts(request.ends_at) if request.HasField("ends_at") else None,
                request.capacity,
            )
            return pb.AddSlotResponse(slot=slot_pb(slot))

        return await self._write(context, "AddSlot", request, pb.AddSlotResponse, work)

    async def ListSlots(self, request: pb.ListSlotsRequest, context: grpc.aio.ServicerContext) -> pb.ListSlotsResponse:
        limit = page_size(request.page.page_size)

        async def work(session: AsyncSession, principal: Principal) -> pb.ListSlotsResponse:
            rows = await self.service.list_slots(
                session,
                principal,
                request.offering_id,
                from_ts(request.starts_after) if request.HasField("starts_after") else None,
                request.page.cursor,
                limit + 1,
            )
            rows, page = _page(rows, limit, lambda s: encode_cursor(s.starts_at.isoformat(), s.id))
            return pb.ListSlotsResponse(slots=[slot_pb(s) for s in rows], page=page)

        return await self._read(work)

    async def RequestBooking(
        self, request: pb.RequestBookingRequest, context: grpc.aio.ServicerContext
    ) -> pb.RequestBookingResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.RequestBookingResponse:
            booking = await self.service.request_booking(
                session, principal, request.offering_id, request.slot_id, request.neighbourhood_id, request.note
            )
            return pb.RequestBookingResponse(booking=(await self._bookings(session, [booking]))[0])

        return await self._write(context, "RequestBooking", request, pb.RequestBookingResponse, work)

    async def GetBooking(
        self, request: pb.GetBookingRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBookingResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.GetBookingResponse:
            booking = await self.service.get_booking(session, principal, request.id)
            return pb.GetBookingResponse(booking=(await self._bookings(session, [booking]))[0])

        return await self._read(work)

    async def ListBookings(
        self, request: pb.ListBookingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListBookingsResponse:
        limit = page_size(request.page.page_size)
        state = _name_of(BOOKING_STATES, request.state, "state")

        async def work(session: AsyncSession, principal: Principal) -> pb.ListBookingsResponse:
            rows = await self.service.list_bookings(
                session,
                principal,
                storefront_id=request.storefront_id,
                state=state,
                mine=request.mine,
                cursor=request.page.cursor,
                limit=limit + 1,
            )
            rows, page = _page(rows, limit, _by_id)
            return pb.ListBookingsResponse(bookings=await self._bookings(session, rows), page=page)

        return await self._read(work)

    async def _decide(
        self, context: grpc.aio.ServicerContext, method: str, request: Any, response_type: type[R], target: str
    ) -> R:
        async def work(session: AsyncSession, principal: Principal) -> R:
            booking = await self.service.decide_booking(
                session, principal, request.id, target, getattr(request, "reason", "")
            )
            return response_type(booking=(await self._bookings(session, [booking]))[0])

        return await self._write(context, method, request, response_type, work)

    async def AcceptBooking(
        self, request: pb.AcceptBookingRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcceptBookingResponse:
        return await self._decide(context, "AcceptBooking", request, pb.AcceptBookingResponse, booking_rules.ACCEPTED)

    async def DeclineBooking(
        self, request: pb.DeclineBookingRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeclineBookingResponse:
        return await self._decide(context, "DeclineBooking", request, pb.DeclineBookingResponse, booking_rules.DECLINED)

    async def FulfilBooking(
        self, request: pb.FulfilBookingRequest, context: grpc.aio.ServicerContext
    ) -> pb.FulfilBookingResponse:
        return await self._decide(context, "FulfilBooking", request, pb.FulfilBookingResponse, booking_rules.FULFILLED)

    async def CancelBooking(
        self, request: pb.CancelBookingRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelBookingResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.CancelBookingResponse:
            booking = await self.service.cancel_booking(session, principal, request.id, request.reason)
            return pb.CancelBookingResponse(booking=(await self._bookings(session, [booking]))[0])

        return await self._write(context, "CancelBooking", request, pb.CancelBookingResponse, work)

    async def RateBooking(
        self, request: pb.RateBookingRequest, context: grpc.aio.ServicerContext
    ) -> pb.RateBookingResponse:
        async def work(session: AsyncSession, principal: Principal) -> pb.RateBookingResponse:
            booking = await self.service.rate_booking(session, principal, request.id, request.rating, request.comment)
            return pb.RateBookingResponse(booking=(await self._bookings(session, [booking]))[0])

        return await self._write(context, "RateBooking", request, pb.RateBookingResponse, work)

    # =============================================================================================
    # mutual aid
    # =============================================================================================

    async def LinkMutualAid(
        self, request: pb.LinkMutualAidRequest, context: grpc.aio.ServicerContext
    ) -> pb.LinkMutualAidResponse:
        target = _name_of(MUTUAL_AID_TARGETS, request.target, "target", allow_unspecified=False)

        async def work(session: AsyncSession, principal: Principal) -> pb.LinkMutualAidResponse:
            link = await self.service.link_mutual_aid(
                session, principal, request.issue_id, target, request.target_id, request.note
            )
            return pb.LinkMutualAidResponse(link=link_pb(link))

        return await self._write(context, "LinkMutualAid", request, pb.LinkMutualAidResponse, work)

    async def ListMutualAidLinks(
        self, request: pb.ListMutualAidLinksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListMutualAidLinksResponse:
        limit = page_size(request.page.page_size)

        async def work(session: AsyncSession, principal: Principal) -> pb.ListMutualAidLinksResponse:
            rows, next_cursor = await self.service.list_mutual_aid(
                session, principal, request.issue_id, request.neighbourhood_id, request.page.cursor, limit
            )
            return pb.ListMutualAidLinksResponse(
                links=[link_pb(link) for link in rows],
                page=common_pb2.PageInfo(next_cursor=next_cursor, has_more=bool(next_cursor)),
            )

        return await self._read(work)

    # =============================================================================================
    # bulk import
    # =============================================================================================

    async def ImportVolunteers(
        self, request: pb.ImportVolunteersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportVolunteersResponse:
        records = [
            imports.RawVolunteer(
                external_ref=r.external_ref,
                person_id=r.person_id,
                neighbourhood_id=r.neighbourhood_id,
                team_id=r.team_id,
                skills=list(r.skills),
                availability=r.availability,
                motivation=r.motivation,
            )
            for r in request.volunteers
        ]

        async def work(session: AsyncSession, principal: Principal) -> pb.ImportVolunteersResponse:
            outcome, made = await self.service.import_volunteers(session, principal, records, request.dry_run)
            return pb.ImportVolunteersResponse(report=import_report_pb(outcome), volunteers=imported_pb(made))

        return await self._write(context, "ImportVolunteers", request, pb.ImportVolunteersResponse, work)

    async def ImportStorefronts(
        self, request: pb.ImportStorefrontsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportStorefrontsResponse:
        records = [
            imports.RawStorefront(
                external_ref=r.external_ref,
                organisation_name=r.organisation_name,
                credit_code=r.credit_code,
                district_id=r.district_id,
                organisation_description=r.organisation_description,
                admin_person_ids=list(r.admin_person_ids),
                name=r.name,
                description=r.description,
                address=r.address,
                neighbourhood_ids=list(r.neighbourhood_ids),
            )
            for r in request.storefronts
        ]

        async def work(session: AsyncSession, principal: Principal) -> pb.ImportStorefrontsResponse:
            outcome, made = await self.service.import_storefronts(session, principal, records, request.dry_run)
            return pb.ImportStorefrontsResponse(report=import_report_pb(outcome), storefronts=imported_pb(made))

        return await self._write(context, "ImportStorefronts", request, pb.ImportStorefrontsResponse, work)


def import_report_pb(outcome: imports.Outcome) -> pb.ImportReport:
    return pb.ImportReport(
        rows=outcome.rows,
        created=outcome.created,
        skipped=outcome.skipped,
        errors=[
            pb.ImportRecordError(row=e.row, column=e.column, code=e.code, message=e.message)
            for e in outcome.errors.items
        ],
        error_count=outcome.errors.count,
        applied=outcome.applied,
    )


def imported_pb(made: Sequence[ImportedRecord]) -> list[pb.ImportedRecord]:
    return [
        pb.ImportedRecord(external_ref=m.external_ref, id=m.id, organisation_id=m.organisation_id, created=m.created)
        for m in made
    ]
