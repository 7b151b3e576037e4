"""Outgoing events of volunteers (subjects `volunteers.<aggregate>.<event>`), written into the caller's
transaction through the outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import volunteers_events_pb2 as ev
from shequtong_kit import packs
from shequtong_kit.outbox import Outbox, packed
from shequtong_kit.proto import ts
from shequtong_volunteers.models import (
    Activity,
    Booking,
    HoursEntry,
    MutualAidLink,
    Organisation,
    Signup,
    Storefront,
    Team,
    Volunteer,
)

VOLUNTEER_APPLIED = "volunteers.volunteer.applied"
VOLUNTEER_APPROVED = "volunteers.volunteer.approved"
# Volunteers an import wrote: each one's applied + approved events, packed together (kit `packs`).
VOLUNTEERS_IMPORTED = packs.VOLUNTEERS_IMPORTED
VOLUNTEER_REJECTED = "volunteers.volunteer.rejected"
VOLUNTEER_LEFT = "volunteers.volunteer.left"
TEAM_CREATED = "volunteers.team.created"
TEAM_LEADER_CHANGED = "volunteers.team.leader_changed"
ACTIVITY_PUBLISHED = "volunteers.activity.published"
ACTIVITY_CANCELLED = "volunteers.activity.cancelled"
SIGNUP_CREATED = "volunteers.signup.created"
SIGNUP_CANCELLED = "volunteers.signup.cancelled"
SIGNUP_PROMOTED = "volunteers.signup.promoted"
CHECKED_IN = "volunteers.attendance.checked_in"
CHECKED_OUT = "volunteers.attendance.checked_out"
HOURS = {
    "credit": "volunteers.hours.credited",
    "reversal": "volunteers.hours.reversed",
    "adjustment": "volunteers.hours.adjusted",
}
ORGANISATION = "volunteers.organisation.{}"  # registered / approved / rejected
STOREFRONT = "volunteers.storefront.{}"  # opened / closed
BOOKING = "volunteers.booking.{}"  # requested / accepted / declined / fulfilled / cancelled
BOOKING_RATED = "volunteers.booking.rated"
MUTUAL_AID_LINKED = "volunteers.mutual_aid.linked"


class Events:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def volunteer_applied(self, session: AsyncSession, v: Volunteer) -> None:
        await self.outbox.add(
            session,
            VOLUNTEER_APPLIED,
            ev.VolunteerApplied(
                volunteer_id=v.id,
                person_id=v.person_id,
                neighbourhood_id=v.neighbourhood_id,
                team_id=v.team_id,
                skills=v.skills,
                applied_at=ts(v.applied_at),
            ),
        )

    async def volunteer_approved(self, session: AsyncSession, v: Volunteer) -> None:
        await self.outbox.add(
            session,
            VOLUNTEER_APPROVED,
            ev.VolunteerApproved(
                volunteer_id=v.id,
                person_id=v.person_id,
                neighbourhood_id=v.neighbourhood_id,
                team_id=v.team_id,
                approved_by=v.decided_by or "",
                approved_at=ts(v.decided_at),
            ),
        )

    @staticmethod
    def volunteer_imported(v: Mapping[str, Any]) -> ev.ImportedVolunteer:
        """The events of apply + approve for an imported volunteer (a row of `volunteers`), as one item of
        `volunteers.volunteer.imported`."""
        ids = {
            "volunteer_id": v["id"],
            "person_id": v["person_id"],
            "neighbourhood_id": v["neighbourhood_id"],
            "team_id": v["team_id"],
        }
        return ev.ImportedVolunteer(
            applied=ev.VolunteerApplied(**ids, skills=v["skills"], applied_at=ts(v["applied_at"])),
            approved=ev.VolunteerApproved(**ids, approved_by=v["decided_by"] or "", approved_at=ts(v["decided_at"])),
        )

    @staticmethod
    def volunteers_imported(items: Sequence[ev.ImportedVolunteer]) -> list[tuple[str, Message]]:
        return [(VOLUNTEERS_IMPORTED, ev.VolunteersImported(volunteers=chunk)) for chunk in packed(items)]

    async def volunteer_rejected(self, session: AsyncSession, v: Volunteer) -> None:
        await self.outbox.add(
            session,
            VOLUNTEER_REJECTED,
            ev.VolunteerRejected(
                volunteer_id=v.id,
                person_id=v.person_id,
                neighbourhood_id=v.neighbourhood_id,
                team_id=v.team_id,
                reason=v.reason,
                rejected_by=v.decided_by or "",
            ),
        )

    async def volunteer_left(self, session: AsyncSession, v: Volunteer) -> None:
        await self.outbox.add(
            session,
            VOLUNTEER_LEFT,
            ev.VolunteerLeft(
                volunteer_id=v.id, person_id=v.person_id, neighbourhood_id=v.neighbourhood_id, reason=v.reason
            ),
        )

    async def team_created(self, session: AsyncSession, team: Team) -> None:
        await self.outbox.add(
            session,
            TEAM_CREATED,
            ev.TeamCreated(
                team_id=team.id, neighbourhood_id=team.neighbourhood_id, name=team.name, is_default=team.is_default
            ),
        )

    async def team_leader_changed(self, session: AsyncSession, v: Volunteer, actor: str) -> None:
        await self.outbox.add(
            session,
            TEAM_LEADER_CHANGED,
            ev.TeamLeaderChanged(
                team_id=v.team_id,
                neighbourhood_id=v.neighbourhood_id,
                volunteer_id=v.id,
                person_id=v.person_id,
                leader=v.is_leader,
                changed_by=actor,
            ),
        )

    async def activity_published(self, session: AsyncSession, a: Activity) -> None:
        await self.outbox.add(
            session,
            ACTIVITY_PUBLISHED,
            ev.ActivityPublished(
                activity_id=a.id,
                organiser_kind=a.organiser_kind,
                neighbourhood_id=a.neighbourhood_id or "",
                organisation_id=a.organisation_id or "",
                team_id=a.team_id or "",
                title=a.title,
                starts_at=ts(a.starts_at),
                ends_at=ts(a.ends_at),
                capacity=a.capacity,
                audience_neighbourhood_ids=a.audience,
                created_by=a.created_by,
            ),
        )

    async def activity_cancelled(self, session: AsyncSession, a: Activity, notified: list[str]) -> None:
        await self.outbox.add(
            session,
            ACTIVITY_CANCELLED,
            ev.ActivityCancelled(
                activity_id=a.id,
                neighbourhood_id=a.neighbourhood_id or "",
                organisation_id=a.organisation_id or "",
                title=a.title,
                reason=a.cancel_reason,
                cancelled_by=a.cancelled_by or "",
                cancelled_at=ts(a.cancelled_at),
                notified_person_ids=notified,
            ),
        )

    async def signup_changed(
        self, session: AsyncSession, subject: str, s: Signup, at: datetime, position: int = 0
    ) -> None:
        await self.outbox.add(
            session,
            subject,
            ev.SignupChanged(
                signup_id=s.id,
                activity_id=s.activity_id,
                person_id=s.person_id,
                neighbourhood_id=s.neighbourhood_id,
                state=s.state,
                waitlist_position=position,
                occurred_at=ts(at),
            ),
        )

    async def attendance(
        self, session: AsyncSession, subject: str, s: Signup, method: str, at: datetime, by: str
    ) -> None:
        await self.outbox.add(
            session,
            subject,
            ev.AttendanceRecorded(
                signup_id=s.id,
                activity_id=s.activity_id,
                person_id=s.person_id,
                neighbourhood_id=s.neighbourhood_id,
                method=method,
                at=ts(at),
                recorded_by=by,
            ),
        )

    async def hours(self, session: AsyncSession, entry: HoursEntry) -> None:
        await self.outbox.add(
            session,
            HOURS[entry.kind],
            ev.HoursRecorded(
                entry_id=entry.id,
                person_id=entry.person_id,
                neighbourhood_id=entry.neighbourhood_id,
                team_id=entry.team_id or "",
                activity_id=entry.activity_id or "",
                kind=entry.kind,
                minutes=entry.minutes,
                reason=entry.reason,
                corrects_entry_id=entry.corrects_entry_id or "",
                served_at=ts(entry.served_at),
                recorded_by=entry.recorded_by,
            ),
        )

    async def organisation(
        self, session: AsyncSession, what: str, org: Organisation, actor: str, admins: list[str]
    ) -> None:
        await self.outbox.add(
            session,
            ORGANISATION.format(what),
            ev.OrganisationChanged(
                organisation_id=org.id,
                name=org.name,
                district_id=org.district_id,
                state=org.state,
                actor_id=actor,
                reason=org.reason,
                admin_person_ids=admins,
            ),
        )

    async def storefront(
        self, session: AsyncSession, what: str, storefront: Storefront, neighbourhoods: list[str], actor: str
    ) -> None:
        await self.outbox.add(
            session,
            STOREFRONT.format(what),
            ev.StorefrontChanged(
                storefront_id=storefront.id,
                organisation_id=storefront.organisation_id,
                name=storefront.name,
                neighbourhood_ids=neighbourhoods,
                state=storefront.state,
                actor_id=actor,
            ),
        )

    async def booking(self, session: AsyncSession, b: Booking, actor: str, at: datetime) -> None:
        await self.outbox.add(
            session,
            BOOKING.format(b.state),
            ev.BookingChanged(
                booking_id=b.id,
                storefront_id=b.storefront_id,
                organisation_id=b.organisation_id,
                offering_id=b.offering_id,
                slot_id=b.slot_id or "",
                person_id=b.person_id,
                neighbourhood_id=b.neighbourhood_id,
                state=b.state,
                actor_id=actor,
                reason=b.reason,
                occurred_at=ts(at),
            ),
        )

    async def booking_rated(self, session: AsyncSession, b: Booking) -> None:
        await self.outbox.add(
            session,
            BOOKING_RATED,
            ev.BookingRated(
                booking_id=b.id,
                storefront_id=b.storefront_id,
                organisation_id=b.organisation_id,
                person_id=b.person_id,
                neighbourhood_id=b.neighbourhood_id,
                rating=b.rating or 0,
                rated_at=ts(b.rated_at),
            ),
        )

    async def mutual_aid_linked(self, session: AsyncSession, link: MutualAidLink) -> None:
        await self.outbox.add(
            session,
            MUTUAL_AID_LINKED,
            ev.MutualAidLinked(
                link_id=link.id,
                issue_id=link.issue_id,
                target=link.target,
                target_id=link.target_id,
                neighbourhood_id=link.neighbourhood_id,
                organisation_id=link.organisation_id or "",
                linked_by=link.linked_by,
                linked_at=ts(link.linked_at),
            ),
        )
