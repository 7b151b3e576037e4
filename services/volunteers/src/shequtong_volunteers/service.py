"""Use cases of the volunteers service. Each runs inside the one transaction it is given (the servicer
opens it through `idempotency.run_once`), so a state change and its outbox events commit together."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong.events.v1 import volunteers_events_pb2 as volunteers_ev
from shequtong_kit import regions
from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.clock import Clock
from shequtong_kit.db import PlannerStatistics
from shequtong_kit.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox
from shequtong_kit.pagination import encode_cursor
from shequtong_volunteers import events as subjects
from shequtong_volunteers.domain import activities as activity_rules
from shequtong_volunteers.domain import bookings as booking_rules
from shequtong_volunteers.domain import imports, text
from shequtong_volunteers.domain import ledger as ledger_rules
from shequtong_volunteers.domain import mutual_aid as aid_rules
from shequtong_volunteers.domain import organisations as org_rules
from shequtong_volunteers.domain import volunteers as volunteer_rules
from shequtong_volunteers.events import Events
from shequtong_volunteers.models import (
    Activity,
    ActivityAudience,
    Booking,
    HoursEntry,
    ImportRef,
    MutualAidLink,
    Offering,
    Organisation,
    OrganisationAdmin,
    Signup,
    Slot,
    Storefront,
    StorefrontNeighbourhood,
    Team,
    Volunteer,
)
from shequtong_volunteers.repository import ImportRepository, Repository
from shequtong_volunteers.residents import Residents

SYSTEM = "system"


@dataclass(frozen=True)
class Totals:
    scope: str
    id: str
    total_minutes: int
    entry_count: int
    volunteer_count: int
    activity_count: int


@dataclass(frozen=True)
class ImportedRecord:
    external_ref: str
    id: str
    organisation_id: str
    created: bool


@dataclass(frozen=True)
class Certificate:
    number: str
    person_id: str
    display_name: str
    team_names: list[str]
    start: datetime | None
    end: datetime | None
    total_minutes: int
    lines: list[ledger_rules.Line]
    issued_at: datetime


async def _insert(repo: Repository, error: Exception, *rows: object) -> None:
    """Adds rows; a unique constraint firing (a concurrent duplicate) becomes the given domain error.
    The caller's transaction is then rolled back by the raise, so nothing half-written remains."""
    try:
        await repo.add(*rows)
    except IntegrityError:
        raise error from None


class VolunteersService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        clock: Clock,
        residents: Residents | None = None,
    ) -> None:
        self.sessions = sessions
        self.import_statistics = PlannerStatistics()
        self.outbox = outbox
        self.events = Events(outbox)
        self.clock = clock
        # identity's answer to "who is a verified resident where" (bulk import); None: not configured.
        self.residents = residents

    # ================================================================================================
    # teams and volunteers
    # ================================================================================================

    async def ensure_default_team(self, session: AsyncSession, neighbourhood_id: str) -> Team:
        """The neighbourhood's default team (created when identity announces the neighbourhood)."""
        repo = Repository(session)
        team = await repo.default_team(neighbourhood_id)
        if team is not None:
            return team
        team = Team(
            id=new_id(),
            neighbourhood_id=neighbourhood_id,
            name=volunteer_rules.DEFAULT_TEAM_NAME,
            description=volunteer_rules.DEFAULT_TEAM_DESCRIPTION,
            is_default=True,
            created_by=SYSTEM,
            created_at=self.clock.now(),
        )
        await repo.add(team)
        await self.events.team_created(session, team)
        return team

    async def create_team(
        self, session: AsyncSession, principal: Principal, neighbourhood_id: str, name: str, description: str
    ) -> Team:
        lineage = await regions.lineage(session, neighbourhood_id)
        actor = volunteer_rules.ensure_may_decide(principal, lineage)
        name, description = volunteer_rules.validate_team(name, description)
        repo = Repository(session)
        taken = AlreadyExists("the neighbourhood already has a team of this name", code="team_name_taken")
        if await repo.team_by_name(neighbourhood_id, name):
            raise taken
        team = Team(
            id=new_id(),
            neighbourhood_id=neighbourhood_id,
            name=name,
            description=description,
            is_default=False,
            created_by=actor,
            created_at=self.clock.now(),
        )
        await _insert(repo, taken, team)
        await self.events.team_created(session, team)
        return team

    async def get_team(self, session: AsyncSession, principal: Principal, team_id: str) -> Team:
        team = await Repository(session).team(team_id)
        volunteer_rules.ensure_may_see_neighbourhood(principal, await regions.lineage(session, team.neighbourhood_id))
        return team

    async def list_teams(
        self, session: AsyncSession, principal: Principal, neighbourhood_id: str, cursor: str, limit: int
    ) -> list[Team]:
        volunteer_rules.ensure_may_see_neighbourhood(principal, await regions.lineage(session, neighbourhood_id))
        return await Repository(session).teams(neighbourhood_id, cursor, limit)

    async def team_figures(self, session: AsyncSession, teams: Sequence[Team]) -> dict[str, tuple[int, list[str]]]:
        return await Repository(session).team_figures([t.id for t in teams])

    async def apply(
        self,
        session: AsyncSession,
        principal: Principal,
        neighbourhood_id: str,
        team_id: str,
        skills: list[str],
        availability: str,
        motivation: str,
    ) -> Volunteer:
        repo = Repository(session)
        team = await repo.team(team_id) if team_id else None
        neighbourhood_id = neighbourhood_id or (team.neighbourhood_id if team else "")
        if not neighbourhood_id:
            raise InvalidArgument("name the neighbourhood or the team", code="neighbourhood_required")
        await regions.lineage(session, neighbourhood_id)
        person = volunteer_rules.ensure_may_apply(principal, neighbourhood_id)
        if team is None:
            team = await self.ensure_default_team(session, neighbourhood_id)
        if team.neighbourhood_id != neighbourhood_id:
            raise InvalidArgument("that team belongs to another neighbourhood", code="team_not_in_neighbourhood")
        application = volunteer_rules.validate_application(skills, availability, motivation)
        existing = await repo.active_volunteer(team.id, person)
        volunteer_rules.ensure_not_already(existing.state if existing else None)
        volunteer = Volunteer(
            id=new_id(),
            person_id=person,
            neighbourhood_id=neighbourhood_id,
            team_id=team.id,
            state=volunteer_rules.PENDING,
            skills=application.skills,
            availability=application.availability,
            motivation=application.motivation,
            is_leader=False,
            applied_at=self.clock.now(),
            reason="",
        )
        await _insert(repo, AlreadyExists("you have already applied to this team", code="already_applied"), volunteer)
        await self.events.volunteer_applied(session, volunteer)
        return volunteer

    async def approve(self, session: AsyncSession, principal: Principal, volunteer_id: str) -> Volunteer:
        volunteer = await Repository(session).lock_volunteer(volunteer_id)
        actor = volunteer_rules.ensure_may_decide(principal, await regions.lineage(session, volunteer.neighbourhood_id))
        volunteer_rules.ensure_transition(volunteer.state, volunteer_rules.APPROVED)
        volunteer.state = volunteer_rules.APPROVED
        volunteer.decided_at = self.clock.now()
        volunteer.decided_by = actor
        await session.flush()
        await self.events.volunteer_approved(session, volunteer)
        return volunteer

    async def reject(self, session: AsyncSession, principal: Principal, volunteer_id: str, reason: str) -> Volunteer:
        volunteer = await Repository(session).lock_volunteer(volunteer_id)
        actor = volunteer_rules.ensure_may_decide(principal, await regions.lineage(session, volunteer.neighbourhood_id))
        volunteer_rules.ensure_transition(volunteer.state, volunteer_rules.REJECTED)
        volunteer.reason = volunteer_rules.reason_required(reason)
        volunteer.state = volunteer_rules.REJECTED
        volunteer.decided_at = self.clock.now()
        volunteer.decided_by = actor
        await session.flush()
        await self.events.volunteer_rejected(session, volunteer)
        return volunteer

    async def leave(self, session: AsyncSession, principal: Principal, volunteer_id: str, reason: str) -> Volunteer:
        volunteer = await Repository(session).lock_volunteer(volunteer_id)
        volunteer_rules.ensure_may_leave(principal, volunteer.person_id)
        volunteer_rules.ensure_transition(volunteer.state, volunteer_rules.LEFT)
        await self._end(session, volunteer, volunteer_rules.LEFT, text.optional(reason, "reason", 500) or "left")
        return volunteer

    async def remove(self, session: AsyncSession, principal: Principal, volunteer_id: str, reason: str) -> Volunteer:
        repo = Repository(session)
        volunteer = await repo.lock_volunteer(volunteer_id)
        lineage = await regions.lineage(session, volunteer.neighbourhood_id)
        leads = await repo.leads_team(volunteer.team_id, principal.subject)
        volunteer_rules.ensure_may_remove(principal, lineage, leads, volunteer.person_id)
        volunteer_rules.ensure_transition(volunteer.state, volunteer_rules.REMOVED)
        await self._end(session, volunteer, volunteer_rules.REMOVED, volunteer_rules.reason_required(reason))
        return volunteer

    async def _end(self, session: AsyncSession, volunteer: Volunteer, state: str, reason: str) -> None:
        was_approved = volunteer.state == volunteer_rules.APPROVED
        volunteer.state = state
        volunteer.reason = reason
        volunteer.is_leader = False
        volunteer.ended_at = self.clock.now()
        await session.flush()
        if was_approved:  # identity revokes the badge when no team remains; withdrawn applications never had one
            await self.events.volunteer_left(session, volunteer)

    async def end_memberships(self, session: AsyncSession, person_id: str, neighbourhood_id: str) -> int:
        """A resident who leaves the neighbourhood leaves its volunteer teams too (identity's event)."""
        ended = 0
        for volunteer in await Repository(session).active_in_neighbourhood(person_id, neighbourhood_id):
            await self._end(session, volunteer, volunteer_rules.LEFT, "left_neighbourhood")
            ended += 1
        return ended

    async def set_leader(
        self, session: AsyncSession, principal: Principal, volunteer_id: str, leader: bool
    ) -> Volunteer:
        volunteer = await Repository(session).lock_volunteer(volunteer_id)
        actor = volunteer_rules.ensure_may_decide(principal, await regions.lineage(session, volunteer.neighbourhood_id))
        if volunteer.state != volunteer_rules.APPROVED:
            raise FailedPrecondition("only an approved volunteer can lead a team", code="volunteer_not_approved")
        if volunteer.is_leader != leader:
            volunteer.is_leader = leader
            await session.flush()
            await self.events.team_leader_changed(session, volunteer, actor)
        return volunteer

    async def get_volunteer(self, session: AsyncSession, principal: Principal, volunteer_id: str) -> Volunteer:
        repo = Repository(session)
        volunteer = await repo.volunteer(volunteer_id)
        if principal.subject == volunteer.person_id:
            return volunteer
        lineage = await regions.lineage(session, volunteer.neighbourhood_id)
        if principal.oversees(lineage) or await repo.leads_team(volunteer.team_id, principal.subject):
            return volunteer
        raise PermissionDenied("not your record", code="not_your_record")

    async def list_volunteers(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        neighbourhood_id: str,
        team_id: str,
        state: str,
        mine: bool,
        cursor: str,
        limit: int,
    ) -> list[Volunteer]:
        repo = Repository(session)
        states = [state] if state else []
        if mine:
            return await repo.volunteers(
                team_id=team_id or None,
                neighbourhood_id=neighbourhood_id or None,
                person_id=principal.person_id,
                states=states,
                cursor=cursor,
                limit=limit,
            )
        if team_id:
            team = await repo.team(team_id)
            lineage = await regions.lineage(session, team.neighbourhood_id)
            leads = await repo.leads_team(team.id, principal.subject)
            member = await repo.active_volunteer(team.id, principal.subject)
            in_team = member is not None and member.state == volunteer_rules.APPROVED
            if not volunteer_rules.ensure_may_see_team_roster(principal, lineage, leads, in_team):
                if states and states != [volunteer_rules.APPROVED]:
                    raise PermissionDenied("applications are for the committee and leaders", code="not_committee")
                states = [volunteer_rules.APPROVED]
            return await repo.volunteers(
                team_id=team.id, neighbourhood_id=None, person_id=None, states=states, cursor=cursor, limit=limit
            )
        if neighbourhood_id:
            volunteer_rules.ensure_may_decide(principal, await regions.lineage(session, neighbourhood_id))
            return await repo.volunteers(
                team_id=None,
                neighbourhood_id=neighbourhood_id,
                person_id=None,
                states=states,
                cursor=cursor,
                limit=limit,
            )
        raise InvalidArgument("name a team or a neighbourhood, or ask for your own", code="scope_required")

    async def names(self, session: AsyncSession, person_ids: Sequence[str]) -> dict[str, str]:
        return await Repository(session).display_names(person_ids)

    async def record_people(self, session: AsyncSession, people: Sequence[tuple[str, str]]) -> None:
        """Identity's display names, (person id, name) in the order its events came: a person's last one
        stands. An event without either names nobody."""
        named = [(person_id, name) for person_id, name in people if person_id and name]
        if named:
            await Repository(session).record_people(named, self.clock.now())

    # ================================================================================================
    # activities
    # ================================================================================================

    async def _lineages(self, session: AsyncSession, neighbourhood_ids: Sequence[str]) -> list[Lineage]:
        return [await regions.lineage(session, n) for n in text.ids(neighbourhood_ids, "audience_neighbourhood_ids")]

    async def is_organiser(self, session: AsyncSession, principal: Principal, activity: Activity) -> bool:
        repo = Repository(session)
        if activity.organiser_kind == activity_rules.ORGANISATION:
            admins = await repo.admin_ids(activity.organisation_id or "")
            return activity_rules.is_organiser(
                principal,
                organiser_kind=activity.organiser_kind,
                created_by=activity.created_by,
                host=None,
                leads_team=False,
                org_admin=org_rules.is_admin(principal, activity.organisation_id or "", admins),
            )
        return activity_rules.is_organiser(
            principal,
            organiser_kind=activity.organiser_kind,
            created_by=activity.created_by,
            host=await regions.lineage(session, activity.neighbourhood_id or ""),
            leads_team=await repo.leads_team(activity.team_id, principal.subject),
            org_admin=False,
        )

    async def _may_view(self, session: AsyncSession, principal: Principal, activity: Activity) -> bool:
        if any(principal.is_member(n) for n in activity.audience):
            return True
        if await self.is_organiser(session, principal, activity):
            return True
        for neighbourhood_id in activity.audience:
            lineage = await regions.find_lineage(session, neighbourhood_id)
            if lineage is not None and principal.oversees(lineage):
                return True
        return False

    async def create_activity(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        organiser_kind: str,
        neighbourhood_id: str,
        organisation_id: str,
        team_id: str,
        title: str,
        description: str,
        place: str,
        starts_at: datetime | None,
        ends_at: datetime | None,
        capacity: int,
        required_skills: list[str],
        audience_neighbourhood_ids: list[str],
    ) -> Activity:
        repo = Repository(session)
        now = self.clock.now()
        draft = activity_rules.validate(title, description, place, starts_at, ends_at, capacity, required_skills, now)
        if organiser_kind == activity_rules.NEIGHBOURHOOD:
            host = await regions.lineage(session, neighbourhood_id)
            leads = False
            if team_id:
                team = await repo.team(team_id)
                if team.neighbourhood_id != host.neighbourhood_id:
                    raise InvalidArgument(
                        "that team belongs to another neighbourhood", code="team_not_in_neighbourhood"
                    )
                leads = await repo.leads_team(team.id, principal.subject)
            activity_rules.ensure_may_host(principal, host, leads)
            audience = activity_rules.neighbourhood_audience(
                principal, host, await self._lineages(session, audience_neighbourhood_ids)
            )
            organisation: str | None = None
            host_id: str | None = host.neighbourhood_id
        elif organiser_kind == activity_rules.ORGANISATION:
            org = await repo.organisation(organisation_id)
            org_rules.ensure_admin(principal, org.id, await repo.admin_ids(org.id))
            org_rules.ensure_approved(org.state)
            audience = activity_rules.organisation_audience(
                org.district_id, await self._lineages(session, audience_neighbourhood_ids)
            )
            if team_id:
                raise InvalidArgument("an organisation's activity has no neighbourhood team", code="team_not_allowed")
            organisation, host_id = org.id, None
        else:
            raise InvalidArgument("organised by a neighbourhood or an organisation", code="organiser_kind_invalid")
        activity = Activity(
            id=new_id(),
            organiser_kind=organiser_kind,
            neighbourhood_id=host_id,
            organisation_id=organisation,
            team_id=team_id or None,
            title=draft.title,
            description=draft.description,
            place=draft.place,
            starts_at=draft.starts_at,
            ends_at=draft.ends_at,
            capacity=draft.capacity,
            required_skills=draft.required_skills,
            audience=audience,
            state=activity_rules.OPEN,
            confirmed_count=0,
            waitlist_count=0,
            checkin_code=secrets.token_urlsafe(24),
            created_by=principal.subject,
            created_at=now,
            cancel_reason="",
        )
        await repo.add(activity)
        await repo.add(
            *(
                ActivityAudience(activity_id=activity.id, neighbourhood_id=n, starts_at=activity.starts_at)
                for n in audience
            )
        )
        await self.events.activity_published(session, activity)
        return activity

    async def get_activity(
        self, session: AsyncSession, principal: Principal, activity_id: str
    ) -> tuple[Activity, Signup | None, int]:
        repo = Repository(session)
        activity = await repo.activity(activity_id)
        if not await self._may_view(session, principal, activity):
            raise PermissionDenied("this activity is for other neighbourhoods", code="not_in_audience")
        mine = await repo.latest_signup(activity.id, principal.subject)
        position = 0
        if mine is not None and mine.state == activity_rules.WAITLISTED:
            position = (await repo.waitlist_positions(activity.id)).get(mine.id, 0)
        return activity, mine, position

    async def list_activities(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        neighbourhood_id: str,
        organisation_id: str,
        ends_after: datetime | None,
        include_cancelled: bool,
        cursor: str,
        limit: int,
    ) -> list[Activity]:
        repo = Repository(session)
        if neighbourhood_id:
            volunteer_rules.ensure_may_see_neighbourhood(principal, await regions.lineage(session, neighbourhood_id))
            return await repo.activities_for_neighbourhood(
                neighbourhood_id, ends_after, include_cancelled, cursor, limit
            )
        if organisation_id:
            org = await repo.organisation(organisation_id)
            is_admin = org_rules.is_admin(principal, org.id, await repo.admin_ids(org.id))
            if not org_rules.may_see_unapproved(principal, org.district_id, is_admin):
                raise PermissionDenied("an organisation's own list is for its administrators", code="not_org_admin")
            return await repo.activities_of_organisation(org.id, ends_after, include_cancelled, cursor, limit)
        raise InvalidArgument("name a neighbourhood or an organisation", code="scope_required")

    async def cancel_activity(
        self, session: AsyncSession, principal: Principal, activity_id: str, reason: str
    ) -> tuple[Activity, int]:
        repo = Repository(session)
        activity = await repo.lock_activity(activity_id)
        activity_rules.ensure_organiser(await self.is_organiser(session, principal, activity))
        now = self.clock.now()
        activity.cancel_reason = activity_rules.ensure_may_cancel_activity(
            activity.state, activity.ends_at, now, reason
        )
        signups = await repo.active_signups(activity.id)
        for signup in signups:
            signup.state = activity_rules.ACTIVITY_CANCELLED
            signup.cancelled_at = now
        activity.state = activity_rules.CANCELLED
        activity.cancelled_by = principal.subject
        activity.cancelled_at = now
        activity.confirmed_count = 0
        activity.waitlist_count = 0
        await session.flush()
        notified = [s.person_id for s in signups]
        await self.events.activity_cancelled(session, activity, notified)
        return activity, len(notified)

    async def sign_up(
        self, session: AsyncSession, principal: Principal, activity_id: str, neighbourhood_id: str
    ) -> tuple[Signup, int]:
        person = principal.person_id
        repo = Repository(session)
        activity = await repo.lock_activity(activity_id)
        chosen = activity_rules.choose_neighbourhood(principal, activity.audience, neighbourhood_id)
        now = self.clock.now()
        activity_rules.ensure_open_for_signup(activity.state, activity.starts_at, now)
        duplicate = AlreadyExists("you have already signed up", code="already_signed_up")
        if await repo.active_signup(activity.id, person):
            raise duplicate
        state = activity_rules.placement(activity.confirmed_count, activity.capacity)
        signup = Signup(
            id=new_id(),
            activity_id=activity.id,
            person_id=person,
            neighbourhood_id=chosen,
            state=state,
            signed_up_at=now,
            confirmed_at=now if state == activity_rules.CONFIRMED else None,
            promoted=False,
            credited_minutes=0,
        )
        if state == activity_rules.CONFIRMED:
            activity.confirmed_count += 1
            position = 0
        else:
            activity.waitlist_count += 1
            position = activity.waitlist_count  # last in line: we hold the activity's lock
        await _insert(repo, duplicate, signup)
        await self.events.signup_changed(session, subjects.SIGNUP_CREATED, signup, now, position)
        return signup, position

    async def cancel_signup(
        self, session: AsyncSession, principal: Principal, activity_id: str
    ) -> tuple[Signup, Signup | None]:
        person = principal.person_id
        repo = Repository(session)
        activity = await repo.lock_activity(activity_id)
        signup = await repo.active_signup(activity.id, person)
        if signup is None:
            raise NotFound("you are not signed up for this activity", code="signup_not_found")
        now = self.clock.now()
        activity_rules.ensure_may_cancel_signup(signup.state, signup.checked_in_at, activity.ends_at, now)
        was = signup.state
        signup.state = activity_rules.SIGNUP_CANCELLED
        signup.cancelled_at = now
        promoted: Signup | None = None
        if was == activity_rules.CONFIRMED:
            activity.confirmed_count -= 1
            await session.flush()
            promoted = await repo.first_waitlisted(activity.id)
            if promoted is not None:
                promoted.state = activity_rules.CONFIRMED
                promoted.confirmed_at = now
                promoted.promoted = True
                activity.waitlist_count -= 1
                activity.confirmed_count += 1
        else:
            activity.waitlist_count -= 1
        await session.flush()
        await self.events.signup_changed(session, subjects.SIGNUP_CANCELLED, signup, now)
        if promoted is not None:
            await self.events.signup_changed(session, subjects.SIGNUP_PROMOTED, promoted, now)
        return signup, promoted

    async def list_signups(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        activity_id: str,
        state: str,
        mine: bool,
        cursor: str,
        limit: int,
    ) -> tuple[list[Signup], dict[str, int]]:
        repo = Repository(session)
        if mine:
            rows = await repo.signups(
                activity_id=activity_id or None,
                person_id=principal.person_id,
                state=state or None,
                cursor=cursor,
                limit=limit,
            )
        elif activity_id:
            activity = await repo.activity(activity_id)
            activity_rules.ensure_organiser(await self.is_organiser(session, principal, activity))
            rows = await repo.signups(
                activity_id=activity.id, person_id=None, state=state or None, cursor=cursor, limit=limit
            )
        else:
            raise InvalidArgument("name the activity, or ask for your own sign-ups", code="scope_required")
        positions: dict[str, int] = {}
        for waiting_in in sorted({s.activity_id for s in rows if s.state == activity_rules.WAITLISTED}):
            positions.update(await repo.waitlist_positions(waiting_in))
        return rows, positions

    async def checkin_code(
        self, session: AsyncSession, principal: Principal, activity_id: str
    ) -> tuple[str, activity_rules.Windows]:
        activity = await Repository(session).activity(activity_id)
        activity_rules.ensure_organiser(await self.is_organiser(session, principal, activity))
        if activity.state == activity_rules.CANCELLED:
            raise FailedPrecondition("the activity was cancelled", code="activity_cancelled")
        return activity.checkin_code, activity_rules.windows(activity.starts_at, activity.ends_at, activity_rules.QR)

    async def _attendee(
        self, session: AsyncSession, principal: Principal, activity: Activity, person_id: str, code: str
    ) -> tuple[Signup, str]:
        """Whose attendance is recorded and how: by scanning the code (the caller), or by the organiser."""
        if code and (not person_id or person_id == principal.subject):
            activity_rules.ensure_code(code, activity.checkin_code)
            target, method = principal.person_id, activity_rules.QR
        elif person_id:
            activity_rules.ensure_organiser(await self.is_organiser(session, principal, activity))
            target, method = person_id, activity_rules.ORGANISER
        else:
            raise InvalidArgument("scan the activity's code, or name the participant", code="checkin_code_required")
        signup = await Repository(session).active_signup(activity.id, target)
        if signup is None:
            raise FailedPrecondition("not signed up for this activity", code="not_signed_up")
        return signup, method

    async def check_in(
        self, session: AsyncSession, principal: Principal, activity_id: str, person_id: str, code: str
    ) -> Signup:
        activity = await Repository(session).lock_activity(activity_id)
        signup, method = await self._attendee(session, principal, activity, person_id, code)
        now = self.clock.now()
        activity_rules.ensure_may_check_in(
            activity.state, signup.state, signup.checked_in_at, activity.starts_at, activity.ends_at, method, now
        )
        signup.checked_in_at = now
        signup.checked_in_by = principal.subject
        signup.check_in_method = method
        await session.flush()
        await self.events.attendance(session, subjects.CHECKED_IN, signup, method, now, principal.subject)
        return signup

    async def check_out(
        self, session: AsyncSession, principal: Principal, activity_id: str, person_id: str, code: str
    ) -> tuple[Signup, HoursEntry | None]:
        repo = Repository(session)
        activity = await repo.lock_activity(activity_id)
        signup, method = await self._attendee(session, principal, activity, person_id, code)
        now = self.clock.now()
        activity_rules.ensure_may_check_out(
            signup.checked_in_at, signup.checked_out_at, activity.starts_at, activity.ends_at, method, now
        )
        assert signup.checked_in_at is not None
        signup.checked_out_at = now
        signup.checked_out_by = principal.subject
        signup.check_out_method = method
        minutes = activity_rules.credited_minutes(signup.checked_in_at, now, activity.starts_at, activity.ends_at)
        signup.credited_minutes = minutes
        await session.flush()
        await self.events.attendance(session, subjects.CHECKED_OUT, signup, method, now, principal.subject)
        entry = None
        if minutes > 0:
            entry = HoursEntry(
                id=new_id(),
                person_id=signup.person_id,
                neighbourhood_id=signup.neighbourhood_id,
                team_id=await self._credit_team(repo, signup, activity),
                activity_id=activity.id,
                activity_title=activity.title,
                signup_id=signup.id,
                kind=ledger_rules.CREDIT,
                minutes=minutes,
                reason="attended",
                corrects_entry_id=None,
                recorded_by=principal.subject,
                served_at=activity.starts_at,
                recorded_at=now,
            )
            await _insert(repo, FailedPrecondition("already credited", code="already_checked_out"), entry)
            await self.events.hours(session, entry)
        return signup, entry

    async def _credit_team(self, repo: Repository, signup: Signup, activity: Activity) -> str | None:
        """The team the hours count for: the activity's team if the person is in it, else their team in the
        neighbourhood they signed up through, else none (a resident who is not a registered volunteer)."""
        teams = [v.team_id for v in await repo.approved_teams_of(signup.person_id, signup.neighbourhood_id)]
        if activity.team_id and activity.team_id in teams:
            return activity.team_id
        return teams[0] if teams else None

    # ================================================================================================
    # service hours
    # ================================================================================================

    async def _may_see_person_hours(self, session: AsyncSession, principal: Principal, person_id: str) -> bool:
        if principal.subject == person_id or principal.is_operator or principal.is_service:
            return True
        repo = Repository(session)
        neighbourhoods = {v.neighbourhood_id for v in await repo.approved_teams_of(person_id)}
        for neighbourhood_id in sorted(neighbourhoods):
            lineage = await regions.find_lineage(session, neighbourhood_id)
            if lineage is not None and principal.oversees(lineage):
                return True
        return False

    async def list_entries(
        self, session: AsyncSession, principal: Principal, person_id: str, cursor: str, limit: int
    ) -> tuple[list[HoursEntry], set[str], str]:
        """The person's entries (self), or those in neighbourhoods the caller oversees. Returns
        (visible rows, ids that were reversed, the next page's cursor or "")."""
        target = person_id or principal.person_id
        repo = Repository(session)
        rows = await repo.hours_entries(target, cursor, limit + 1)
        next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else ""
        rows = rows[:limit]
        if target != principal.subject:
            visible: dict[str, bool] = {}
            for neighbourhood_id in {r.neighbourhood_id for r in rows}:
                lineage = await regions.find_lineage(session, neighbourhood_id)
                visible[neighbourhood_id] = lineage is not None and principal.oversees(lineage)
            if rows and not any(visible.values()):
                raise PermissionDenied("another person's hours are for their committee", code="not_committee")
            rows = [r for r in rows if visible[r.neighbourhood_id]]
        return rows, await repo.reversed_ids([r.id for r in rows]), next_cursor

    async def reverse_entry(
        self, session: AsyncSession, principal: Principal, entry_id: str, reason: str, corrected_minutes: int
    ) -> tuple[HoursEntry, HoursEntry | None]:
        repo = Repository(session)
        entry = await repo.hours_entry(entry_id)
        lineage = await regions.lineage(session, entry.neighbourhood_id)
        allowed = principal.oversees(lineage)
        if not allowed and entry.activity_id:
            allowed = await self.is_organiser(session, principal, await repo.activity(entry.activity_id))
        if not allowed:
            raise PermissionDenied("only the committee or the organiser corrects hours", code="not_committee")
        already = entry.id in await repo.reversed_ids([entry.id])
        plan = ledger_rules.plan_correction(entry.kind, entry.minutes, already, reason, corrected_minutes)
        now = self.clock.now()

        def follow_up(kind: str, minutes: int) -> HoursEntry:
            return HoursEntry(
                id=new_id(),
                person_id=entry.person_id,
                neighbourhood_id=entry.neighbourhood_id,
                team_id=entry.team_id,
                activity_id=entry.activity_id,
                activity_title=entry.activity_title,
                signup_id=entry.signup_id,
                kind=kind,
                minutes=minutes,
                reason=plan.reason,
                corrects_entry_id=entry.id,
                recorded_by=principal.subject,
                served_at=entry.served_at,
                recorded_at=now,
            )

        reversal = follow_up(ledger_rules.REVERSAL, plan.reversal_minutes)
        await _insert(
            repo, FailedPrecondition("this entry was already reversed", code="entry_already_reversed"), reversal
        )
        await self.events.hours(session, reversal)
        adjustment = None
        if plan.adjustment_minutes > 0:
            adjustment = follow_up(ledger_rules.ADJUSTMENT, plan.adjustment_minutes)
            await repo.add(adjustment)
            await self.events.hours(session, adjustment)
        return reversal, adjustment

    async def totals(
        self,
        session: AsyncSession,
        principal: Principal,
        scope: str,
        scope_id: str,
        start: datetime | None,
        end: datetime | None,
    ) -> Totals:
        ledger_rules.validate_period(start, end)
        repo = Repository(session)
        if scope == "person":
            scope_id = scope_id or principal.person_id
            if not await self._may_see_person_hours(session, principal, scope_id):
                raise PermissionDenied("another person's hours are for their committee", code="not_committee")
            column = HoursEntry.person_id
        elif scope == "team":
            team = await repo.team(scope_id)
            lineage = await regions.lineage(session, team.neighbourhood_id)
            member = await repo.active_volunteer(team.id, principal.subject)
            in_team = member is not None and member.state == volunteer_rules.APPROVED
            if not (principal.oversees(lineage) or in_team):
                raise PermissionDenied("a team's figures are for its members and committee", code="not_team_member")
            column = HoursEntry.team_id
        elif scope == "neighbourhood":
            volunteer_rules.ensure_may_see_neighbourhood(principal, await regions.lineage(session, scope_id))
            column = HoursEntry.neighbourhood_id
        else:
            raise InvalidArgument("totals are per person, team or neighbourhood", code="scope_invalid")
        total, entries, volunteers, activity_count = await repo.hours_totals(column, scope_id, start, end)
        return Totals(scope, scope_id, total, entries, volunteers, activity_count)

    async def certificate(
        self, session: AsyncSession, principal: Principal, person_id: str, start: datetime | None, end: datetime | None
    ) -> Certificate:
        ledger_rules.validate_period(start, end)
        target = person_id or principal.person_id
        if not await self._may_see_person_hours(session, principal, target):
            raise PermissionDenied("another person's certificate is for their committee", code="not_committee")
        repo = Repository(session)
        entries = await repo.entries_in_period(target, start, end)
        lines = ledger_rules.certificate_lines(
            ledger_rules.EntryView(e.id, e.activity_id, e.activity_title, e.served_at, e.minutes) for e in entries
        )
        total = sum(e.minutes for e in entries)
        team_names = []
        for volunteer in await repo.approved_teams_of(target):
            team_names.append((await repo.team(volunteer.team_id)).name)
        names = await repo.display_names([target])
        return Certificate(
            number=ledger_rules.certificate_number(target, start, end, total, [e.id for e in entries]),
            person_id=target,
            display_name=names.get(target, ""),
            team_names=team_names,
            start=start,
            end=end,
            total_minutes=total,
            lines=lines,
            issued_at=self.clock.now(),
        )

    # ================================================================================================
    # social organisations and storefronts
    # ================================================================================================

    async def register_organisation(
        self,
        session: AsyncSession,
        principal: Principal,
        name: str,
        credit_code: str,
        district_id: str,
        description: str,
    ) -> tuple[Organisation, list[str]]:
        person = principal.person_id
        registration = org_rules.validate_registration(name, credit_code, description)
        if not district_id or not await regions.neighbourhoods_under(session, district_id=district_id):
            raise NotFound("no such district", code="district_not_found")
        repo = Repository(session)
        taken = AlreadyExists("an organisation with this credit code is registered", code="credit_code_taken")
        if await repo.organisation_by_code(registration.credit_code):
            raise taken
        now = self.clock.now()
        org = Organisation(
            id=new_id(),
            name=registration.name,
            credit_code=registration.credit_code,
            district_id=district_id,
            description=registration.description,
            state=org_rules.PENDING,
            registered_by=person,
            registered_at=now,
            reason="",
        )
        await _insert(repo, taken, org)
        await repo.add(OrganisationAdmin(organisation_id=org.id, person_id=person, added_at=now))
        await self.events.organisation(session, "registered", org, person, [person])
        return org, [person]

    async def get_organisation(
        self, session: AsyncSession, principal: Principal, organisation_id: str
    ) -> tuple[Organisation, list[str]]:
        repo = Repository(session)
        org = await repo.organisation(organisation_id)
        admins = await repo.admin_ids(org.id)
        if org.state != org_rules.APPROVED and not org_rules.may_see_unapproved(
            principal, org.district_id, org_rules.is_admin(principal, org.id, admins)
        ):
            raise NotFound("no such organisation", code="organisation_not_found")
        return org, sorted(admins)

    async def list_organisations(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        district_id: str,
        state: str,
        mine: bool,
        cursor: str,
        limit: int,
    ) -> tuple[list[Organisation], dict[str, list[str]]]:
        repo = Repository(session)
        if mine:
            rows = await repo.organisations(
                district_id=district_id or None,
                states=[state] if state else [],
                admin_person_id=principal.person_id,
                cursor=cursor,
                limit=limit,
            )
        else:
            state = state or org_rules.APPROVED
            staff = bool(district_id) and org_rules.may_see_unapproved(principal, district_id, False)
            if state != org_rules.APPROVED and not staff:
                raise PermissionDenied("applications are for the district's staff", code="not_district_staff")
            rows = await repo.organisations(
                district_id=district_id or None, states=[state], admin_person_id=None, cursor=cursor, limit=limit
            )
        return rows, await repo.admins_of([o.id for o in rows])

    async def decide_organisation(
        self, session: AsyncSession, principal: Principal, organisation_id: str, approve: bool, reason: str
    ) -> tuple[Organisation, list[str]]:
        repo = Repository(session)
        org = await repo.lock(Organisation, organisation_id, "organisation_not_found", "organisation")
        actor = org_rules.ensure_may_decide(principal, org.district_id)
        org_rules.ensure_pending(org.state)
        if approve:
            org.state = org_rules.APPROVED
        else:
            org.reason = volunteer_rules.reason_required(reason)
            org.state = org_rules.REJECTED
        org.decided_by = actor
        org.decided_at = self.clock.now()
        await session.flush()
        admins = sorted(await repo.admin_ids(org.id))
        await self.events.organisation(session, org.state, org, actor, admins)
        return org, admins

    async def open_storefront(
        self,
        session: AsyncSession,
        principal: Principal,
        organisation_id: str,
        name: str,
        description: str,
        address: str,
        neighbourhood_ids: list[str],
    ) -> tuple[Storefront, list[str]]:
        repo = Repository(session)
        org = await repo.organisation(organisation_id)
        actor = org_rules.ensure_admin(principal, org.id, await repo.admin_ids(org.id))
        org_rules.ensure_approved(org.state)
        draft = org_rules.validate_storefront(name, description, address)
        lineages = [await regions.lineage(session, n) for n in text.ids(neighbourhood_ids, "neighbourhood_ids")]
        served = org_rules.served_neighbourhoods(org.district_id, lineages)
        storefront = Storefront(
            id=new_id(),
            organisation_id=org.id,
            name=draft.name,
            description=draft.description,
            address=draft.address,
            state=org_rules.OPEN,
            opened_by=actor,
            opened_at=self.clock.now(),
        )
        await repo.add(storefront)
        await repo.add(*(StorefrontNeighbourhood(storefront_id=storefront.id, neighbourhood_id=n) for n in served))
        await self.events.storefront(session, "opened", storefront, served, actor)
        return storefront, served

    async def close_storefront(self, session: AsyncSession, principal: Principal, storefront_id: str) -> Storefront:
        repo = Repository(session)
        storefront = await repo.lock(Storefront, storefront_id, "storefront_not_found", "storefront")
        admins = await repo.admin_ids(storefront.organisation_id)
        actor = org_rules.ensure_admin(principal, storefront.organisation_id, admins)
        org_rules.ensure_storefront_open(storefront.state)
        storefront.state = org_rules.CLOSED
        storefront.closed_at = self.clock.now()
        await session.flush()
        served = (await repo.served([storefront.id]))[storefront.id]
        await self.events.storefront(session, "closed", storefront, served, actor)
        return storefront

    async def get_storefront(self, session: AsyncSession, principal: Principal, storefront_id: str) -> Storefront:
        # Any signed-in caller (the servicer has checked there is one): storefronts are public service points.
        return await Repository(session).storefront(storefront_id)

    async def list_storefronts(
        self,
        session: AsyncSession,
        principal: Principal,
        neighbourhood_id: str,
        organisation_id: str,
        cursor: str,
        limit: int,
    ) -> list[Storefront]:
        if not (neighbourhood_id or organisation_id):
            raise InvalidArgument("name a neighbourhood or an organisation", code="scope_required")
        return await Repository(session).storefronts(
            neighbourhood_id=neighbourhood_id or None,
            organisation_id=organisation_id or None,
            open_only=bool(neighbourhood_id),
            cursor=cursor,
            limit=limit,
        )

    async def storefront_details(
        self, session: AsyncSession, storefronts: Sequence[Storefront]
    ) -> tuple[dict[str, list[str]], dict[str, booking_rules.Stats], dict[str, str]]:
        repo = Repository(session)
        ids = [s.id for s in storefronts]
        served = await repo.served(ids)
        figures = await repo.booking_figures(ids)
        stats = {sid: booking_rules.stats(*figures[sid]) for sid in ids}
        org_names = {}
        for org_id in {s.organisation_id for s in storefronts}:
            org_names[org_id] = (await repo.organisation(org_id)).name
        return served, stats, org_names

    async def add_offering(
        self,
        session: AsyncSession,
        principal: Principal,
        storefront_id: str,
        *,
        title: str,
        description: str,
        category: str,
        price_cents: int,
        neighbourhood_ids: list[str],
        eligibility_note: str,
    ) -> Offering:
        repo = Repository(session)
        storefront = await repo.storefront(storefront_id)
        org_rules.ensure_admin(principal, storefront.organisation_id, await repo.admin_ids(storefront.organisation_id))
        org_rules.ensure_storefront_open(storefront.state)
        draft = org_rules.validate_offering(
            title,
            description,
            category,
            price_cents,
            neighbourhood_ids,
            eligibility_note,
            (await repo.served([storefront.id]))[storefront.id],
        )
        offering = Offering(
            id=new_id(),
            storefront_id=storefront.id,
            title=draft.title,
            description=draft.description,
            category=draft.category,
            price_cents=draft.price_cents,
            neighbourhood_ids=draft.neighbourhood_ids,
            eligibility_note=draft.eligibility_note,
            created_at=self.clock.now(),
        )
        await repo.add(offering)
        return offering

    async def list_offerings(
        self, session: AsyncSession, principal: Principal, storefront_id: str, cursor: str, limit: int
    ) -> list[Offering]:
        # Any signed-in caller: offerings and slots are what residents browse.
        repo = Repository(session)
        storefront = await repo.storefront(storefront_id)
        return await repo.offerings(storefront.id, cursor, limit)

    async def add_slot(
        self,
        session: AsyncSession,
        principal: Principal,
        offering_id: str,
        starts_at: datetime | None,
        ends_at: datetime | None,
        capacity: int,
    ) -> Slot:
        repo = Repository(session)
        offering = await repo.offering(offering_id)
        storefront = await repo.storefront(offering.storefront_id)
        org_rules.ensure_admin(principal, storefront.organisation_id, await repo.admin_ids(storefront.organisation_id))
        org_rules.ensure_storefront_open(storefront.state)
        org_rules.validate_slot(starts_at, ends_at, capacity, self.clock.now())
        assert starts_at is not None and ends_at is not None
        slot = Slot(
            id=new_id(),
            offering_id=offering.id,
            starts_at=starts_at,
            ends_at=ends_at,
            capacity=capacity,
            booked_count=0,
        )
        await repo.add(slot)
        return slot

    async def list_slots(
        self,
        session: AsyncSession,
        principal: Principal,
        offering_id: str,
        starts_after: datetime | None,
        cursor: str,
        limit: int,
    ) -> list[Slot]:
        # Any signed-in caller: offerings and slots are what residents browse.
        repo = Repository(session)
        offering = await repo.offering(offering_id)
        return await repo.slots(offering.id, starts_after, cursor, limit)

    # --- bookings ------------------------------------------------------------------------------------

    async def request_booking(
        self,
        session: AsyncSession,
        principal: Principal,
        offering_id: str,
        slot_id: str,
        neighbourhood_id: str,
        note: str,
    ) -> Booking:
        person = principal.person_id
        repo = Repository(session)
        offering = await repo.offering(offering_id)
        storefront = await repo.storefront(offering.storefront_id)
        served = (await repo.served([storefront.id]))[storefront.id]
        eligible = org_rules.eligible_neighbourhoods(offering.neighbourhood_ids, served)
        chosen = booking_rules.choose_neighbourhood(principal, eligible, neighbourhood_id)
        org_rules.ensure_storefront_open(storefront.state)
        cleaned_note = booking_rules.note(note)
        now = self.clock.now()
        duplicate = AlreadyExists("you have already booked this slot", code="already_booked")
        if slot_id:
            slot = await repo.lock_slot(slot_id)
            if slot.offering_id != offering.id:
                raise InvalidArgument("that slot belongs to another offering", code="slot_not_of_offering")
            if await repo.active_booking(slot.id, person):
                raise duplicate
            booking_rules.ensure_slot_bookable(slot.booked_count, slot.capacity, slot.starts_at, now)
            slot.booked_count += 1
        booking = Booking(
            id=new_id(),
            storefront_id=storefront.id,
            offering_id=offering.id,
            slot_id=slot_id or None,
            organisation_id=storefront.organisation_id,
            person_id=person,
            neighbourhood_id=chosen,
            state=booking_rules.REQUESTED,
            note=cleaned_note,
            reason="",
            rating_comment="",
            requested_at=now,
        )
        await _insert(repo, duplicate, booking)
        await self.events.booking(session, booking, person, now)
        return booking

    async def _org_admin_of(self, session: AsyncSession, principal: Principal, booking: Booking) -> str:
        admins = await Repository(session).admin_ids(booking.organisation_id)
        return org_rules.ensure_admin(principal, booking.organisation_id, admins)

    async def _release(self, repo: Repository, booking: Booking) -> None:
        if booking.slot_id and booking.state in booking_rules.HOLDS_PLACE:
            slot = await repo.lock_slot(booking.slot_id)
            slot.booked_count -= 1

    async def decide_booking(
        self, session: AsyncSession, principal: Principal, booking_id: str, target: str, reason: str = ""
    ) -> Booking:
        """The organisation accepts, declines (with a reason) or fulfils a booking."""
        repo = Repository(session)
        booking = await repo.lock_booking(booking_id)
        actor = await self._org_admin_of(session, principal, booking)
        booking_rules.ensure_transition(booking.state, target)
        now = self.clock.now()
        if target == booking_rules.DECLINED:
            booking.reason = booking_rules.decline_reason(reason)
            await self._release(repo, booking)
        if target == booking_rules.FULFILLED:
            booking.fulfilled_at = now
        if booking.decided_at is None or target != booking_rules.FULFILLED:
            booking.decided_at = now
            booking.decided_by = actor
        booking.state = target
        await session.flush()
        await self.events.booking(session, booking, actor, now)
        return booking

    async def cancel_booking(
        self, session: AsyncSession, principal: Principal, booking_id: str, reason: str
    ) -> Booking:
        repo = Repository(session)
        booking = await repo.lock_booking(booking_id)
        if booking.person_id != principal.subject:
            raise PermissionDenied("only the resident who booked may cancel", code="not_your_booking")
        booking_rules.ensure_transition(booking.state, booking_rules.CANCELLED)
        await self._release(repo, booking)
        now = self.clock.now()
        booking.reason = text.optional(reason, "reason", 500)
        booking.state = booking_rules.CANCELLED
        booking.cancelled_at = now
        await session.flush()
        await self.events.booking(session, booking, principal.subject, now)
        return booking

    async def rate_booking(
        self, session: AsyncSession, principal: Principal, booking_id: str, rating: int, comment: str
    ) -> Booking:
        repo = Repository(session)
        booking = await repo.lock_booking(booking_id)
        if booking.person_id != principal.subject:
            raise PermissionDenied("only the resident who booked may rate", code="not_your_booking")
        booking.rating_comment = booking_rules.validate_rating(
            booking.state, booking.rating is not None, rating, comment
        )
        booking.rating = rating
        booking.rated_at = self.clock.now()
        await session.flush()
        await self.events.booking_rated(session, booking)
        return booking

    async def get_booking(self, session: AsyncSession, principal: Principal, booking_id: str) -> Booking:
        booking = await Repository(session).booking(booking_id)
        if booking.person_id != principal.subject:
            await self._org_admin_of(session, principal, booking)
        return booking

    async def list_bookings(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        storefront_id: str,
        state: str,
        mine: bool,
        cursor: str,
        limit: int,
    ) -> list[Booking]:
        repo = Repository(session)
        if mine:
            return await repo.bookings(
                storefront_id=storefront_id or None,
                person_id=principal.person_id,
                state=state or None,
                cursor=cursor,
                limit=limit,
            )
        if storefront_id:
            storefront = await repo.storefront(storefront_id)
            org_rules.ensure_admin(
                principal, storefront.organisation_id, await repo.admin_ids(storefront.organisation_id)
            )
            return await repo.bookings(
                storefront_id=storefront.id, person_id=None, state=state or None, cursor=cursor, limit=limit
            )
        raise InvalidArgument("name the storefront, or ask for your own bookings", code="scope_required")

    async def booking_details(
        self, session: AsyncSession, bookings: Sequence[Booking]
    ) -> tuple[dict[str, Offering], dict[str, Slot], dict[str, str]]:
        repo = Repository(session)
        return (
            await repo.offerings_by_id(b.offering_id for b in bookings),
            await repo.slots_by_id(b.slot_id or "" for b in bookings),
            await repo.display_names([b.person_id for b in bookings]),
        )

    # ================================================================================================
    # mutual aid
    # ================================================================================================

    async def link_mutual_aid(
        self, session: AsyncSession, principal: Principal, issue_id: str, target: str, target_id: str, note: str
    ) -> MutualAidLink:
        issue_id, note = aid_rules.validate_link(issue_id, target, target_id, note)
        repo = Repository(session)
        if target == aid_rules.ACTIVITY:
            activity = await repo.activity(target_id)
            activity_rules.ensure_organiser(await self.is_organiser(session, principal, activity))
            neighbourhood_id = activity.neighbourhood_id or activity.audience[0]
            organisation_id = activity.organisation_id
        else:
            booking = await repo.booking(target_id)
            admins = await repo.admin_ids(booking.organisation_id)
            lineage = await regions.lineage(session, booking.neighbourhood_id)
            if not (org_rules.is_admin(principal, booking.organisation_id, admins) or principal.oversees(lineage)):
                raise PermissionDenied("only the organisation or the committee links a booking", code="not_organiser")
            neighbourhood_id, organisation_id = booking.neighbourhood_id, booking.organisation_id
        existing = await repo.mutual_aid_link(issue_id, target, target_id)
        if existing is not None:
            return existing  # linking twice is the same link
        link = MutualAidLink(
            id=new_id(),
            issue_id=issue_id,
            target=target,
            target_id=target_id,
            neighbourhood_id=neighbourhood_id,
            organisation_id=organisation_id,
            note=note,
            linked_by=principal.subject,
            linked_at=self.clock.now(),
        )
        await _insert(repo, AlreadyExists("this issue is already linked", code="already_linked"), link)
        await self.events.mutual_aid_linked(session, link)
        return link

    async def list_mutual_aid(
        self,
        session: AsyncSession,
        principal: Principal,
        issue_id: str,
        neighbourhood_id: str,
        cursor: str,
        limit: int,
    ) -> tuple[list[MutualAidLink], str]:
        """Links of a neighbourhood, or of an issue as far as the caller may see them; and the next cursor."""
        repo = Repository(session)
        if neighbourhood_id:
            volunteer_rules.ensure_may_see_neighbourhood(principal, await regions.lineage(session, neighbourhood_id))
            rows = await repo.mutual_aid_links(
                issue_id=issue_id or None, neighbourhood_id=neighbourhood_id, cursor=cursor, limit=limit + 1
            )
            return rows[:limit], encode_cursor(rows[limit - 1].id) if len(rows) > limit else ""
        if not issue_id:
            raise InvalidArgument("name the issue or the neighbourhood", code="scope_required")
        rows = await repo.mutual_aid_links(issue_id=issue_id, neighbourhood_id=None, cursor=cursor, limit=limit + 1)
        next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else ""
        visible = []
        for link in rows[:limit]:
            lineage = await regions.find_lineage(session, link.neighbourhood_id)
            admins = await repo.admin_ids(link.organisation_id) if link.organisation_id else set()
            if (
                principal.is_member(link.neighbourhood_id)
                or (lineage is not None and principal.oversees(lineage))
                or (link.organisation_id and org_rules.is_admin(principal, link.organisation_id, admins))
            ):
                visible.append(link)
        return visible, next_cursor

    # ================================================================================================
    # bulk import (operators)
    # ================================================================================================

    async def import_volunteers(
        self, session: AsyncSession, principal: Principal, records: list[imports.RawVolunteer], dry_run: bool
    ) -> tuple[imports.Outcome, list[ImportedRecord]]:
        """Approved volunteers of verified residents (identity says who lives where), in the caller's one
        transaction: multi-row INSERTs of the volunteers, their import references and display names, and the
        events of apply + approve for each (identity grants the badge from `volunteers.volunteer.approved`)."""
        if not principal.is_operator:
            raise PermissionDenied("bulk import is for operators", code="operator_only")
        imports.ensure_batch_size(len(records))
        errors = imports.Errors()
        rows = imports.parse_volunteers(records, errors)
        repo = ImportRepository(session)
        imported = await repo.imported(imports.VOLUNTEER, (r.external_ref for r in rows))
        fresh = [r for r in rows if r.external_ref not in imported]
        residents: dict[tuple[str, str], str] = {}
        if fresh:
            if self.residents is None:
                raise Unavailable("identity is not configured here", code="identity_unavailable")
            residents = await self.residents.lookup(sorted({r.person_id for r in fresh}))
        hoods = {r.neighbourhood_id for r in rows}
        teams = await repo.teams(hoods, {r.team_id for r in rows if r.team_id})
        found = imports.VolunteerLookups(
            imported=set(imported),
            neighbourhoods=set(await repo.lineages(hoods)),
            teams={t: n for t, n, _ in teams},
            default_teams={n: t for t, n, default in teams if default},
            residents=set(residents),
            active=await repo.active_volunteers(r.person_id for r in fresh),
        )
        plan = imports.plan_volunteers(rows, len(records), found, errors)
        if plan.errors or dry_run:
            created = 0 if plan.errors else len(plan.create)
            return imports.Outcome(plan.rows, created, len(plan.skipped), plan.errors, False), []
        now = self.clock.now()
        actor = principal.subject
        volunteers: list[dict[str, object]] = []
        refs: list[dict[str, object]] = []
        outgoing: list[volunteers_ev.ImportedVolunteer] = []
        made: dict[str, ImportedRecord] = {}
        for r, team_id in plan.create:
            # Plain rows, not ORM objects: constructing 1,000 mapped instances cost more than inserting them.
            volunteer = {
                "id": new_id(),
                "person_id": r.person_id,
                "neighbourhood_id": r.neighbourhood_id,
                "team_id": team_id,
                "state": volunteer_rules.APPROVED,
                "skills": r.application.skills,
                "availability": r.application.availability,
                "motivation": r.application.motivation,
                "is_leader": False,
                "applied_at": now,
                "decided_at": now,
                "decided_by": actor,
                "reason": "",
                "ended_at": None,
            }
            volunteers.append(volunteer)
            refs.append(
                {
                    "kind": imports.VOLUNTEER,
                    "external_ref": r.external_ref,
                    "entity_id": volunteer["id"],
                    "organisation_id": "",
                    "created_by": actor,
                    "created_at": now,
                }
            )
            outgoing.append(self.events.volunteer_imported(volunteer))
            made[r.external_ref] = ImportedRecord(r.external_ref, str(volunteer["id"]), "", True)
        try:
            await repo.insert(Volunteer, volunteers)
            await repo.insert(ImportRef, refs)
        except IntegrityError:
            raise Conflict(
                "another import wrote some of these records meanwhile; send the batch again", code="import_conflict"
            ) from None
        await repo.upsert_people(
            {r.person_id: residents.get((r.person_id, r.neighbourhood_id), "") for r, _ in plan.create}, now
        )
        await self.outbox.add_many(session, self.events.volunteers_imported(outgoing))
        await self.import_statistics.wrote(session, len(plan.create), "volunteers", "people", "import_refs", "outbox")
        for r in plan.skipped:
            earlier = imported.get(r.external_ref)
            made[r.external_ref] = ImportedRecord(r.external_ref, earlier[0] if earlier else "", "", False)
        ordered = [made[r.external_ref.strip()] for r in records if r.external_ref.strip() in made]
        return imports.Outcome(plan.rows, len(plan.create), len(plan.skipped), plan.errors, True), ordered

    async def import_storefronts(
        self, session: AsyncSession, principal: Principal, records: list[imports.RawStorefront], dry_run: bool
    ) -> tuple[imports.Outcome, list[ImportedRecord]]:
        """Approved organisations (found again by credit code, else registered and approved) with their open
        storefronts, in the caller's one transaction, with the events of register + approve + open."""
        if not principal.is_operator:
            raise PermissionDenied("bulk import is for operators", code="operator_only")
        imports.ensure_batch_size(len(records))
        errors = imports.Errors()
        rows = imports.parse_storefronts(records, errors)
        repo = ImportRepository(session)
        imported = await repo.imported(imports.STOREFRONT, (r.external_ref for r in rows))
        organisations = {o.credit_code: o for o in await repo.organisations(r.organisation.credit_code for r in rows)}
        found = imports.StorefrontLookups(
            imported=set(imported),
            organisations={
                code: imports.KnownOrganisation(o.id, o.district_id, o.state) for code, o in organisations.items()
            },
            lineages=await repo.lineages(n for r in rows for n in r.neighbourhood_ids),
            districts=await repo.districts(r.district_id for r in rows),
        )
        plan = imports.plan_storefronts(rows, len(records), found, errors)
        if plan.errors or dry_run:
            created = 0 if plan.errors else len(plan.create)
            return imports.Outcome(plan.rows, created, len(plan.skipped), plan.errors, False), []
        now = self.clock.now()
        actor = principal.subject
        made: dict[str, ImportedRecord] = {}
        for code, first in imports.credit_codes(plan.create).items():
            if code in organisations:
                continue
            org = Organisation(
                id=new_id(),
                name=first.organisation.name,
                credit_code=code,
                district_id=first.district_id,
                description=first.organisation.description,
                state=org_rules.PENDING,
                registered_by=actor,
                registered_at=now,
                reason="",
            )
            admins = first.admins
            await _insert(Repository(session), Conflict("send the batch again", code="import_conflict"), org)
            await Repository(session).add(
                *(OrganisationAdmin(organisation_id=org.id, person_id=p, added_at=now) for p in admins)
            )
            await self.events.organisation(session, "registered", org, actor, admins)
            org.state = org_rules.APPROVED
            org.decided_by = actor
            org.decided_at = now
            await session.flush()
            await self.events.organisation(session, org.state, org, actor, admins)
            organisations[code] = org
        for r in plan.create:
            org = organisations[r.organisation.credit_code]
            storefront = Storefront(
                id=new_id(),
                organisation_id=org.id,
                name=r.storefront.name,
                description=r.storefront.description,
                address=r.storefront.address,
                state=org_rules.OPEN,
                opened_by=actor,
                opened_at=now,
            )
            await Repository(session).add(storefront)
            await Repository(session).add(
                *(StorefrontNeighbourhood(storefront_id=storefront.id, neighbourhood_id=n) for n in r.neighbourhood_ids)
            )
            await self.events.storefront(session, "opened", storefront, r.neighbourhood_ids, actor)
            ref = ImportRef(
                kind=imports.STOREFRONT,
                external_ref=r.external_ref,
                entity_id=storefront.id,
                organisation_id=org.id,
                created_by=actor,
                created_at=now,
            )
            await _insert(Repository(session), Conflict("send the batch again", code="import_conflict"), ref)
            made[r.external_ref] = ImportedRecord(r.external_ref, storefront.id, org.id, True)
        for r in plan.skipped:
            storefront_id, organisation_id = imported.get(r.external_ref, ("", ""))
            made[r.external_ref] = ImportedRecord(r.external_ref, storefront_id, organisation_id, False)
        ordered = [made[r.external_ref.strip()] for r in records if r.external_ref.strip() in made]
        return imports.Outcome(plan.rows, len(plan.create), len(plan.skipped), plan.errors, True), ordered
