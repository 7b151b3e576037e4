"""JetStream handlers of insights: every producer's events projected into its own tables.

One durable consumer per producing stream, `insights-<stream>`, filtered on the aggregates insights
reads (wildcards, so events a producer adds later reach the handler and are ignored until projected).
Each event is handled once through the kit's inbox, and every write is also idempotent or
order-independent by itself (upserts keyed by neighbourhood, day and metric; per-entity rows whose
"first" and "latest" values are decided by the events' own times), so a replay of the streams in any
interleaving rebuilds the same figures. Times come from the events, never from the clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import grid_events_pb2 as grid_ev
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong.events.v1 import volunteers_events_pb2 as volunteers_ev
from shequtong_insights.domain import facts as issue_rules
from shequtong_insights.domain import members as member_rules
from shequtong_insights.domain import metrics as m
from shequtong_insights.domain.members import MemberFacts
from shequtong_insights.domain.periods import local_day
from shequtong_insights.models import Convention, Topic
from shequtong_insights.repository import DoesNotFit, ProjectionWriter
from shequtong_kit import regions
from shequtong_kit.consumer import (
    ConsumerSpec,
    PoisonMessage,
    ReceivedEvent,
    flushes_each_event,
    opened,
    peeked,
)
from shequtong_kit.db import PlannerStatistics
from shequtong_kit.proto import from_ts

ISSUE_PREFIX = "issues.issue."

# (consumer name, stream, filter subjects)
CONSUMERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("insights-identity", "IDENTITY", ("identity.neighbourhood.>", "identity.membership.>")),
    (
        "insights-boards",
        "BOARDS",
        ("boards.post.>", "boards.comment.>", "boards.poll.>", "boards.topic.>", "boards.convention.>"),
    ),
    ("insights-issues", "ISSUES", ("issues.issue.>", "issues.record.>")),
    ("insights-grid", "GRID", ("grid.ticket.>",)),
    (
        "insights-volunteers",
        "VOLUNTEERS",
        (
            "volunteers.volunteer.>",
            "volunteers.hours.>",
            "volunteers.booking.>",
            "volunteers.attendance.>",
        ),
    ),
)
CONSUMER_NAMES = tuple(name for name, _, _ in CONSUMERS)

# Events about a membership, topic, convention or issue row: their rows are prefetched for a batch.
PREFETCHED_SUBJECTS = (
    "identity.membership.joined",
    "identity.membership.verified",
    "identity.membership.left",
    "identity.membership.rejected",
    "boards.topic.stage_changed",
    "boards.convention.adopted",
    "issues.issue.reported",
    "issues.issue.sla_breached",
    "issues.issue.rated",
    "issues.record.recategorised",
    *(ISSUE_PREFIX + transition for transition in issue_rules.KNOWN_TRANSITIONS),
)
MEMBERSHIP_MESSAGES = frozenset(
    {identity_ev.MemberJoined, identity_ev.MemberVerified, identity_ev.MemberLeft, identity_ev.MemberRejected}
)

Apply = Callable[[ProjectionWriter, Any, ReceivedEvent], Awaitable[None]]


class Projector:
    """Turns one event into projection writes."""

    def __init__(self, day_offset_minutes: int) -> None:
        self.offset = day_offset_minutes
        self.statistics = PlannerStatistics()
        self._last_day: tuple[datetime, date] | None = None
        self.routes: dict[str, tuple[type[Message], Apply]] = {
            regions.NEIGHBOURHOOD_CREATED: (identity_ev.NeighbourhoodCreated, self.neighbourhood_created),
            "identity.membership.joined": (identity_ev.MemberJoined, self.member_joined),
            "identity.membership.verified": (identity_ev.MemberVerified, self.member_verified),
            "identity.membership.left": (identity_ev.MemberLeft, self.member_left),
            "identity.membership.rejected": (identity_ev.MemberRejected, self.member_rejected),
            "boards.post.created": (boards_ev.PostCreated, self.post_created),
            "boards.comment.created": (boards_ev.CommentCreated, self.comment_created),
            "boards.poll.voted": (boards_ev.VoteCast, self.vote_cast),
            "boards.topic.stage_changed": (boards_ev.TopicStageChanged, self.topic_stage_changed),
            "boards.convention.adopted": (boards_ev.ConventionAdopted, self.convention_adopted),
            "issues.issue.reported": (issues_ev.IssueReported, self.issue_reported),
            "issues.issue.sla_breached": (issues_ev.IssueSlaBreached, self.issue_sla_breached),
            "issues.issue.rated": (issues_ev.IssueRated, self.issue_rated),
            "issues.record.recategorised": (issues_ev.IssueRecategorised, self.issue_recategorised),
            "grid.ticket.sent": (grid_ev.TicketSent, self.ticket_sent),
            "grid.ticket.status_changed": (grid_ev.TicketStatusChanged, self.ticket_status_changed),
            "grid.ticket.failed": (grid_ev.TicketFailed, self.ticket_failed),
            "volunteers.volunteer.approved": (volunteers_ev.VolunteerApproved, self.volunteer_approved),
            "volunteers.attendance.checked_in": (volunteers_ev.AttendanceRecorded, self.checked_in),
            "volunteers.booking.requested": (volunteers_ev.BookingChanged, self.booking_changed),
            "volunteers.booking.fulfilled": (volunteers_ev.BookingChanged, self.booking_changed),
            "volunteers.booking.rated": (volunteers_ev.BookingRated, self.booking_rated),
        }
        for transition in issue_rules.KNOWN_TRANSITIONS:
            self.routes[ISSUE_PREFIX + transition] = (issues_ev.IssueStateChanged, self.issue_transition)
        for kind in ("credited", "reversed", "adjusted"):
            self.routes[f"volunteers.hours.{kind}"] = (volunteers_ev.HoursRecorded, self.hours_recorded)
        self.kinds = {subject: cls for subject, (cls, _) in self.routes.items()}

    def day(self, moment: datetime) -> date:
        # The events an import packs share their time: the last day reckoned is kept.
        last = self._last_day
        if last is not None and last[0] == moment:
            return last[1]
        day = local_day(moment, self.offset)
        self._last_day = (moment, day)
        return day

    async def handle(self, session: AsyncSession, event: ReceivedEvent) -> None:
        applies = opened(event, self.kinds)
        if not applies:
            return  # an event of an aggregate we read but do not project (yet)
        writer = ProjectionWriter(session, self.statistics)
        await writer.share_projection_lock()
        try:
            for subject, message in applies:
                await self.routes[subject][1](writer, message, event)
            if flushes_each_event(session):
                await writer.write_members()
                await session.flush()
        except DoesNotFit as exc:
            raise PoisonMessage(f"{event.subject}: {exc}") from exc
        except DBAPIError as exc:
            if not _is_data_error(exc):
                raise
            # A value our columns can never hold (e.g. an id longer than any id we issue): retrying
            # cannot help, so the event goes to the dead-letter subject.
            raise PoisonMessage(f"{event.subject}: a value does not fit the projection") from exc

    async def prefetch(self, session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        """The membership, topic, convention and issue rows the batch's events are about, in one statement
        each."""
        # Only the events about those rows are decoded here (a batch of comments needs none).
        about_rows = {subject: self.routes[subject][0] for subject in PREFETCHED_SUBJECTS}
        members: list[str] = []
        topics: list[str] = []
        conventions: list[str] = []
        issues: list[str] = []
        for message in peeked(events, about_rows):
            kind = type(message)  # an import's residents first: two memberships' events each
            if kind in MEMBERSHIP_MESSAGES:
                members.append(message.membership_id)
            elif kind is boards_ev.TopicStageChanged:
                topics.append(message.topic_id)
            elif kind is boards_ev.ConventionAdopted:
                conventions.append(message.convention_id)
            else:
                issues.append(message.issue_id)
        if members or topics or conventions or issues:
            await ProjectionWriter(session).prefetch_rows(members, topics, conventions, issues)

    async def before_commit(self, session: AsyncSession) -> None:
        """The transaction's counters and activity rows, folded across its events, in two statements."""
        await ProjectionWriter(session, self.statistics).write_pending()

    # --- identity ----------------------------------------------------------------------------------
    async def neighbourhood_created(
        self, w: ProjectionWriter, msg: identity_ev.NeighbourhoodCreated, event: ReceivedEvent
    ) -> None:
        await regions.record_neighbourhood(w.session, msg, event)
        await w.neighbourhood(
            {
                "neighbourhood_id": msg.neighbourhood_id,
                "code": msg.code,
                "name": msg.name,
                "kind": int(msg.kind),
                "subdistrict_id": msg.subdistrict_id,
                "district_id": msg.district_id,
                "created_at": event.occurred_at,
            }
        )

    async def _membership(
        self, w: ProjectionWriter, membership_id: str, neighbourhood_id: str, person_id: str
    ) -> MemberFacts:
        return member_rules.known(await w.member(membership_id), membership_id, neighbourhood_id, person_id)

    async def member_joined(self, w: ProjectionWriter, msg: identity_ev.MemberJoined, event: ReceivedEvent) -> None:
        at = event.occurred_at
        facts = await self._membership(w, msg.membership_id, msg.neighbourhood_id, msg.person_id)
        w.save_member(member_rules.joined(facts, household_id=msg.household_id, at=at))
        await w.add(msg.neighbourhood_id, self.day(at), m.RESIDENTS_JOINED)

    async def member_verified(self, w: ProjectionWriter, msg: identity_ev.MemberVerified, event: ReceivedEvent) -> None:
        at = event.occurred_at
        facts = await self._membership(w, msg.membership_id, msg.neighbourhood_id, msg.person_id)
        w.save_member(member_rules.verified(facts, household_id=msg.household_id, at=at))
        await w.add(msg.neighbourhood_id, self.day(at), m.RESIDENTS_VERIFIED)

    async def member_left(self, w: ProjectionWriter, msg: identity_ev.MemberLeft, event: ReceivedEvent) -> None:
        at = event.occurred_at
        facts = await self._membership(w, msg.membership_id, msg.neighbourhood_id, msg.person_id)
        w.save_member(member_rules.left(facts, at=at))
        await w.add(msg.neighbourhood_id, self.day(at), m.RESIDENTS_LEFT)

    async def member_rejected(self, w: ProjectionWriter, msg: identity_ev.MemberRejected, event: ReceivedEvent) -> None:
        facts = await self._membership(w, msg.membership_id, msg.neighbourhood_id, msg.person_id)
        w.save_member(member_rules.rejected(facts, at=event.occurred_at))

    # --- boards ------------------------------------------------------------------------------------
    async def post_created(self, w: ProjectionWriter, msg: boards_ev.PostCreated, event: ReceivedEvent) -> None:
        day = self.day(_when(msg.created_at, event))
        await w.add(msg.neighbourhood_id, day, m.POSTS)
        await w.took_part(msg.neighbourhood_id, day, msg.author_id)

    async def comment_created(self, w: ProjectionWriter, msg: boards_ev.CommentCreated, event: ReceivedEvent) -> None:
        if msg.kind == "system":
            return  # written by the platform, not by anyone taking part
        day = self.day(_when(msg.created_at, event))
        await w.add(msg.neighbourhood_id, day, m.COMMENTS)
        await w.took_part(msg.neighbourhood_id, day, msg.author_id)

    async def vote_cast(self, w: ProjectionWriter, msg: boards_ev.VoteCast, event: ReceivedEvent) -> None:
        day = self.day(_when(msg.cast_at, event))
        await w.add(msg.neighbourhood_id, day, m.VOTES)
        await w.took_part(msg.neighbourhood_id, day, msg.person_id)

    async def topic_stage_changed(
        self, w: ProjectionWriter, msg: boards_ev.TopicStageChanged, event: ReceivedEvent
    ) -> None:
        at = _when(msg.occurred_at, event)
        day = self.day(at)
        row = await w.topic(msg.topic_id)
        if row is None:
            w.add_row(
                Topic(topic_id=msg.topic_id, neighbourhood_id=msg.neighbourhood_id, stage=msg.to_stage, stage_at=at)
            )
        elif (at, msg.to_stage) > (row.stage_at, row.stage):
            row.stage, row.stage_at = msg.to_stage, at
        if not msg.from_stage:
            await w.add(msg.neighbourhood_id, day, m.TOPICS_PROPOSED)
            await w.took_part(msg.neighbourhood_id, day, msg.actor_id)
        else:
            await w.add(msg.neighbourhood_id, day, m.TOPIC_STAGE_CHANGES)

    async def convention_adopted(
        self, w: ProjectionWriter, msg: boards_ev.ConventionAdopted, event: ReceivedEvent
    ) -> None:
        at = _when(msg.adopted_at, event)
        first = msg.version <= 1  # the first version; later ones are amendments
        row = await w.convention(msg.convention_id)
        if row is None:
            w.add_row(
                Convention(
                    convention_id=msg.convention_id,
                    neighbourhood_id=msg.neighbourhood_id,
                    first_adopted_at=at,
                    version=msg.version,
                )
            )
        else:
            row.first_adopted_at = min(row.first_adopted_at, at)
            row.version = max(row.version, msg.version)
        await w.add(msg.neighbourhood_id, self.day(at), m.CONVENTIONS_ADOPTED if first else m.CONVENTIONS_AMENDED)

    # --- issues ------------------------------------------------------------------------------------
    async def issue_reported(self, w: ProjectionWriter, msg: issues_ev.IssueReported, event: ReceivedEvent) -> None:
        at = _when(msg.reported_at, event)
        facts = await w.issue(msg.issue_id)
        facts = issue_rules.reported(
            facts,
            neighbourhood_id=msg.neighbourhood_id,
            category_code=msg.category_code,
            building=msg.building,
            source=msg.source,
            reported_at=at,
            response_due_at=from_ts(msg.response_due_at) if msg.HasField("response_due_at") else None,
            resolution_due_at=from_ts(msg.resolution_due_at) if msg.HasField("resolution_due_at") else None,
        )
        await w.save_issue(facts)
        await w.add(msg.neighbourhood_id, self.day(at), m.ISSUES_REPORTED)
        if msg.source != "cadre":
            await w.took_part(msg.neighbourhood_id, self.day(at), msg.reporter_id)

    async def issue_transition(
        self, w: ProjectionWriter, msg: issues_ev.IssueStateChanged, event: ReceivedEvent
    ) -> None:
        # The message names its transition (an import's packed item arrives under the pack's subject).
        transition = msg.transition or event.subject[len(ISSUE_PREFIX) :]
        at = _when(msg.occurred_at, event)
        facts = await w.issue(msg.issue_id)
        facts = issue_rules.transitioned(
            facts,
            transition=transition,
            to_state=msg.to_state,
            level=msg.level,
            occurred_at=at,
            actor_kind=msg.actor_kind,
            neighbourhood_id=msg.neighbourhood_id,
            category_code=msg.category_code,
            reported_at=from_ts(msg.reported_at) if msg.HasField("reported_at") else None,
        )
        await w.save_issue(facts)
        counter = m.TRANSITION_COUNTERS.get(transition)
        if counter:
            await w.add(facts.neighbourhood_id or msg.neighbourhood_id, self.day(at), counter)

    async def issue_sla_breached(
        self, w: ProjectionWriter, msg: issues_ev.IssueSlaBreached, event: ReceivedEvent
    ) -> None:
        at = _when(msg.breached_at, event)
        facts = issue_rules.sla_breached(await w.issue(msg.issue_id), neighbourhood_id=msg.neighbourhood_id)
        await w.save_issue(facts)
        day = self.day(at)
        await w.add(msg.neighbourhood_id, day, m.SLA_BREACHES)
        which = {"response": m.SLA_BREACHES_RESPONSE, "resolution": m.SLA_BREACHES_RESOLUTION}.get(msg.clock)
        if which:
            await w.add(msg.neighbourhood_id, day, which)

    async def issue_rated(self, w: ProjectionWriter, msg: issues_ev.IssueRated, event: ReceivedEvent) -> None:
        at = _when(msg.rated_at, event)
        facts = issue_rules.rated(
            await w.issue(msg.issue_id),
            rating=msg.rating,
            fixed=msg.fixed,
            rated_at=at,
            neighbourhood_id=msg.neighbourhood_id,
        )
        await w.save_issue(facts)
        day = self.day(at)
        await w.add(msg.neighbourhood_id, day, m.RATINGS)
        await w.add(msg.neighbourhood_id, day, m.RATING_SUM, msg.rating)
        if msg.rating >= m.SATISFIED_RATING:
            await w.add(msg.neighbourhood_id, day, m.RATINGS_SATISFIED)
        if msg.fixed:
            await w.add(msg.neighbourhood_id, day, m.RATINGS_FIXED)

    async def issue_recategorised(
        self, w: ProjectionWriter, msg: issues_ev.IssueRecategorised, event: ReceivedEvent
    ) -> None:
        facts = issue_rules.recategorised(
            await w.issue(msg.issue_id), category_code=msg.to_category_code, occurred_at=_when(msg.occurred_at, event)
        )
        if not facts.neighbourhood_id and msg.neighbourhood_id:
            facts = replace(facts, neighbourhood_id=msg.neighbourhood_id)
        await w.save_issue(facts)

    # --- grid --------------------------------------------------------------------------------------
    async def ticket_sent(self, w: ProjectionWriter, msg: grid_ev.TicketSent, event: ReceivedEvent) -> None:
        await w.add(msg.neighbourhood_id, self.day(_when(msg.sent_at, event)), m.GRID_TICKETS_SENT)

    async def ticket_status_changed(
        self, w: ProjectionWriter, msg: grid_ev.TicketStatusChanged, event: ReceivedEvent
    ) -> None:
        if msg.state == "closed":
            await w.add(msg.neighbourhood_id, self.day(_when(msg.occurred_at, event)), m.GRID_TICKETS_CLOSED)

    async def ticket_failed(self, w: ProjectionWriter, msg: grid_ev.TicketFailed, event: ReceivedEvent) -> None:
        await w.add(msg.neighbourhood_id, self.day(_when(msg.failed_at, event)), m.GRID_TICKETS_FAILED)

    # --- volunteers --------------------------------------------------------------------------------
    async def volunteer_approved(
        self, w: ProjectionWriter, msg: volunteers_ev.VolunteerApproved, event: ReceivedEvent
    ) -> None:
        day = self.day(_when(msg.approved_at, event))
        await w.add(msg.neighbourhood_id, day, m.VOLUNTEERS_APPROVED)
        await w.took_part(msg.neighbourhood_id, day, msg.person_id)

    async def checked_in(
        self, w: ProjectionWriter, msg: volunteers_ev.AttendanceRecorded, event: ReceivedEvent
    ) -> None:
        day = self.day(_when(msg.at, event))
        await w.add(msg.neighbourhood_id, day, m.ATTENDANCES)
        await w.took_part(msg.neighbourhood_id, day, msg.person_id)

    async def hours_recorded(self, w: ProjectionWriter, msg: volunteers_ev.HoursRecorded, event: ReceivedEvent) -> None:
        """Credits, reversals (negative) and adjustments, on the day the service was given."""
        await w.add(msg.neighbourhood_id, self.day(_when(msg.served_at, event)), m.VOLUNTEER_MINUTES, msg.minutes)

    async def booking_changed(
        self, w: ProjectionWriter, msg: volunteers_ev.BookingChanged, event: ReceivedEvent
    ) -> None:
        day = self.day(_when(msg.occurred_at, event))
        if event.subject.endswith(".requested"):
            await w.add(msg.neighbourhood_id, day, m.BOOKINGS)
            await w.took_part(msg.neighbourhood_id, day, msg.person_id)
        else:
            await w.add(msg.neighbourhood_id, day, m.BOOKINGS_FULFILLED)

    async def booking_rated(self, w: ProjectionWriter, msg: volunteers_ev.BookingRated, event: ReceivedEvent) -> None:
        day = self.day(_when(msg.rated_at, event))
        await w.add(msg.neighbourhood_id, day, m.BOOKING_RATINGS)
        await w.add(msg.neighbourhood_id, day, m.BOOKING_RATING_SUM, msg.rating)


def _when(stamp: Timestamp, event: ReceivedEvent) -> datetime:
    """The payload's own time when it has one, else the event's (ce-time): never the clock."""
    return from_ts(stamp) or event.occurred_at


def _is_data_error(exc: DBAPIError) -> bool:
    """SQLSTATE class 22 (data exception: value too long, out of range ...), whatever the driver."""
    if isinstance(exc, DataError):
        return True
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return str(code or "").startswith("22")


def consumer_specs(projector: Projector) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name=name,
            stream=stream,
            subjects=list(subjects),
            handler=projector.handle,
            prefetch=projector.prefetch,
            flush_each=False,
            before_commit=projector.before_commit,
            max_deliver=20,
        )
        for name, stream, subjects in CONSUMERS
    ]
