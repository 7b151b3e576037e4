"""Issues use cases: every change of an issue, its timeline entry, its clocks and its event commit in one
transaction. Writes lock the issue row (PostgreSQL) so concurrent steps, the scheduler replicas and the
grid consumer see each other's results in order."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import Message
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import grid_events_pb2 as grid_ev
from shequtong_issues import events
from shequtong_issues.domain import access, catalogue, feedback, grid, reports, sla
from shequtong_issues.domain.access import ActorRole, IssueFacts, View
from shequtong_issues.domain.catalogue import Category as CategoryRule
from shequtong_issues.domain.states import TERMINAL, Level, Position, State, Step, Transition, plan
from shequtong_issues.imports import IssueImports
from shequtong_issues.metrics import IssueMetrics
from shequtong_issues.models import (
    Category,
    Dispatch,
    Feedback,
    GridUpdate,
    Issue,
    ResponseTarget,
    SlaBreach,
    SlaClock,
    TimelineEntry,
)
from shequtong_issues.onduty import Duty, OnDuty
from shequtong_issues.repository import IssueQuery, IssueRepository, category_rule
from shequtong_issues.settings import IssuesSettings
from shequtong_kit import regions
from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.clock import Clock
from shequtong_kit.consumer import PoisonMessage, ReceivedEvent
from shequtong_kit.db import once_per_transaction, reading_sessions
from shequtong_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from shequtong_kit.idempotency import run_once
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox
from shequtong_kit.proto import from_ts

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)

NEIGHBOURHOOD_MATTERS = "neighbourhood_matters"
SYSTEM_ACTOR = "system:sla-scheduler"
ROSTER_ACTOR = "system:duty-roster"
GRID_ACTOR = "grid-platform"


@dataclass(frozen=True)
class Actor:
    id: str
    role: ActorRole
    kind: str = "person"  # person, system, grid


SYSTEM = Actor(SYSTEM_ACTOR, ActorRole.SYSTEM, "system")
# Notes the system writes are shown to residents (and in the post's thread): in their language.
AUTO_ESCALATION_NOTE = {
    "response": "超过响应时限未响应，已自动上报街镇",
    "resolution": "超过办结时限未解决，已自动上报街镇",
}
ROSTER = Actor(ROSTER_ACTOR, ActorRole.SYSTEM, "system")
GRID = Actor(GRID_ACTOR, ActorRole.GRID, "grid")


@dataclass(frozen=True)
class IssueView:
    """An issue as one viewer may see it."""

    issue: Issue
    view: View
    now: datetime
    category_name: str = ""


@dataclass(frozen=True)
class Idem:
    """What `run_once` needs to make a write safe to retry: the key, the request, how to pack the reply."""

    key: str | None
    method: str
    request: Message


@dataclass(frozen=True)
class ReportCommand:
    neighbourhood_id: str
    category_code: str
    title: str
    description: str
    location: reports.Location
    photo_urls: Sequence[str]
    public: bool
    on_behalf_of: str = ""


@dataclass(frozen=True)
class TransitionCommand:
    issue_id: str
    transition: Transition
    note: str = ""
    reason: str = ""
    duplicate_of_id: str = ""
    grid_service_code: str = ""
    expected_version: int = 0
    address: str = ""


@dataclass
class ListResult:
    items: list[IssueView]
    next_cursor: str


@dataclass
class Counts:
    total: int = 0
    open: int = 0
    overdue: int = 0
    breaches: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    by_neighbourhood: list[tuple[str, int, int, int]] = field(default_factory=list)


@dataclass
class SchedulerStats:
    breaches: int = 0
    escalations: int = 0
    conflicts: int = 0
    closed: int = 0


def lineage_of(issue: Issue) -> Lineage:
    return Lineage(issue.neighbourhood_id, issue.subdistrict_id, issue.district_id)


def facts_of(issue: Issue) -> IssueFacts:
    return IssueFacts(
        neighbourhood_id=issue.neighbourhood_id,
        reporter_id=issue.reporter_id,
        public=issue.public,
        escalated=issue.escalated,
        level=Level(issue.level),
    )


def position_of(issue: Issue) -> Position:
    return Position(
        state=State(issue.state),
        level=Level(issue.level),
        state_before_dispatch=State(issue.state_before_dispatch) if issue.state_before_dispatch else None,
        dispatch_level=Level(issue.dispatch_level) if issue.dispatch_level else None,
    )


def person_actor(principal: Principal, issue: Issue) -> Actor:
    return Actor(principal.subject, access.actor_role(principal, lineage_of(issue), issue.reporter_id))


class IssuesService:
    def __init__(
        self,
        settings: IssuesSettings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        clock: Clock,
        onduty: OnDuty,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        # Reads (a report's catalogue, the queue, an issue and its timeline) without transaction round trips.
        self.reads = reading_sessions(sessions)
        self.outbox = outbox
        self.clock = clock
        self.onduty = onduty
        self.metrics = IssueMetrics()
        self.imports = IssueImports(sessions, outbox, clock, settings.issues_feedback_window_hours)

    # --- helpers -------------------------------------------------------------------------------------
    async def _once(
        self,
        principal: Principal,
        idem: Idem,
        response_type: type[R],
        work: Callable[[AsyncSession], Awaitable[R]],
    ) -> R:
        scope = f"{idem.method}:{principal.subject}"
        return await run_once(self.sessions, idem.key, scope, idem.request, response_type, work, self.clock)

    async def _catalogue(self, session: AsyncSession, district_id: str) -> tuple[list[CategoryRule], bool]:
        """The district's category rules, read once per transaction (a report needs them at several steps;
        no step that reads them changes them)."""

        async def read() -> tuple[list[CategoryRule], bool]:
            rows, is_default = await IssueRepository(session).categories(district_id)
            return [category_rule(r) for r in rows], is_default

        return await once_per_transaction(session, ("issues.catalogue", district_id), read)

    async def _category(self, session: AsyncSession, issue: Issue) -> CategoryRule | None:
        rules, _ = await self._catalogue(session, issue.district_id)
        return catalogue.find(rules, issue.category_code)

    async def _targets(
        self, session: AsyncSession, issue: Issue, category: CategoryRule | None = None, *, response: bool = True
    ) -> sla.Targets:
        """The issue's response and resolution targets; `category` when the caller holds its rule already.
        `response=False` when no response clock starts: the neighbourhood's targets are not read and the
        response hours are NaN, from which no due time can be computed unnoticed."""
        if category is None or category.code != issue.category_code:
            category = await self._category(session, issue)
        resolution = category.resolution_hours if category else 24.0 * 7
        if not response:
            return sla.Targets(math.nan, resolution)
        n_all, n_cat = await IssueRepository(session).response_targets(issue.neighbourhood_id, issue.category_code)
        response_hours = sla.effective_response_hours(category.response_hours if category else None, n_all, n_cat)
        return sla.Targets(response_hours, resolution)

    async def _load(
        self, session: AsyncSession, principal: Principal, issue_id: str, lock: bool = False
    ) -> tuple[Issue, View]:
        issue = await IssueRepository(session).get(issue_id, lock=lock) if issue_id else None
        if issue is None:
            raise NotFound("no such issue", code="issue_not_found")
        view = access.require_view(principal, facts_of(issue), lineage_of(issue))
        return issue, view

    async def _record(
        self,
        session: AsyncSession,
        issue: Issue,
        kind: str,
        actor: Actor,
        at: datetime,
        *,
        from_state: str = "",
        to_state: str = "",
        internal: bool = False,
        text: str = "",
        photos: Sequence[str] = (),
        data: dict[str, Any] | None = None,
    ) -> TimelineEntry:
        """Appends one fact to the issue's record (never updated afterwards)."""
        issue.version += 1
        issue.updated_at = at
        entry = TimelineEntry(
            id=new_id(),
            issue_id=issue.id,
            seq=issue.version,
            at=at,
            kind=kind,
            actor_id=actor.id,
            actor_role=actor.role.value,
            from_state=from_state,
            to_state=to_state,
            level=issue.level,
            internal=internal,
            text=text,
            photo_urls=list(photos),
            data=data or {},
        )
        session.add(entry)
        return entry

    async def _assign(self, session: AsyncSession, issue: Issue, duty: Duty, at: datetime, actor: Actor) -> None:
        issue.assignee_id = duty.person_id
        issue.assignment_pending = False
        await self._record(
            session,
            issue,
            "assigned",
            actor,
            at,
            data={"assignee_id": duty.person_id, "fallback_to_secretary": duty.fallback_to_secretary},
        )
        await events.assigned(self.outbox, session, issue, duty.fallback_to_secretary, at)

    # --- clocks --------------------------------------------------------------------------------------
    async def _apply_clocks(
        self, session: AsyncSession, issue: Issue, clock_plan: sla.ClockPlan, at: datetime, *, new: bool = False
    ) -> None:
        """`new`: the issue is being created in this transaction, so it has no clocks to read."""
        repo = IssueRepository(session)
        running = [] if new else await repo.running_clocks(issue.id)
        for stop in clock_plan.stops:
            for c in running:
                if c.stopped_at is None and c.clock == stop.clock.value and c.level == stop.level.value:
                    outcome = sla.stop_outcome(stop.outcome, c.due_at, at)
                    c.stopped_at = at
                    c.outcome = outcome.value
                    responded_here = c.clock == sla.Clock.RESPONSE.value and c.level == Level.NEIGHBOURHOOD.value
                    if responded_here and outcome in (sla.Outcome.MET, sla.Outcome.LATE):
                        kind = await regions.neighbourhood_kind(session, issue.neighbourhood_id)
                        self.metrics.acknowledged(session, kind, (at - c.started_at).total_seconds())
                    if outcome == sla.Outcome.LATE and c.breached_at is None:
                        # Late but not yet seen by the scheduler: the breach is recorded now, not escalated.
                        await self._breach(session, issue, c, at, scheduled=False)
        for start in clock_plan.starts:
            running.append(self._start_clock(session, issue, start.clock, start.level, at, start.due_at))
        if clock_plan.resume_resolution_at is not None:
            level = clock_plan.resume_resolution_at
            previous = await repo.latest_clock(issue.id, issue.round, sla.Clock.RESOLUTION.value, level.value)
            if previous is not None:
                due_at = previous.due_at
            else:
                due_at = sla.due(at, (await self._targets(session, issue, response=False)).resolution_hours)
            running.append(self._start_clock(session, issue, sla.Clock.RESOLUTION, level, at, due_at))
        live = [c for c in running if c.stopped_at is None]
        issue.response_due_at = min((c.due_at for c in live if c.clock == sla.Clock.RESPONSE.value), default=None)
        issue.resolution_due_at = min((c.due_at for c in live if c.clock == sla.Clock.RESOLUTION.value), default=None)

    def _start_clock(
        self, session: AsyncSession, issue: Issue, clock: sla.Clock, level: Level, at: datetime, due_at: datetime
    ) -> SlaClock:
        row = SlaClock(
            id=new_id(),
            issue_id=issue.id,
            round=issue.round,
            clock=clock.value,
            level=level.value,
            started_at=at,
            due_at=due_at,
            stopped_at=None,
            outcome=sla.Outcome.RUNNING.value,
            breached_at=None,
        )
        session.add(row)
        return row

    async def _breach(
        self, session: AsyncSession, issue: Issue, c: SlaClock, at: datetime, scheduled: bool
    ) -> SlaBreach | None:
        """Records a breach once per (issue, clock, level, round); returns it, or None if already recorded."""
        c.breached_at = at
        repo = IssueRepository(session)
        if await repo.breach_exists(issue.id, c.clock, c.level, c.round):
            return None
        auto = scheduled and sla.should_auto_escalate(
            sla.EscalationPolicy(self.settings.issues_auto_escalate),
            sla.Clock(c.clock),
            Level(c.level),
            State(issue.state),
            Level(issue.level),
            issue.auto_escalated_round == issue.round,
        )
        notified = sla.notified_level(Level(c.level), Level(issue.dispatch_level) if issue.dispatch_level else None)
        breach = SlaBreach(
            id=new_id(),
            issue_id=issue.id,
            round=c.round,
            clock=c.clock,
            level=c.level,
            clock_id=c.id,
            neighbourhood_id=issue.neighbourhood_id,
            due_at=c.due_at,
            detected_at=at,
            auto_escalated=auto,
            notified_level=notified,
        )
        session.add(breach)
        # The claim: a second replica (or a late step) racing for the same breach fails here.
        await session.flush()
        await self._record(
            session,
            issue,
            "sla_breached",
            SYSTEM,
            at,
            data={
                "clock": c.clock,
                "level": c.level,
                "round": c.round,
                "due_at": c.due_at.isoformat(),
                "notified_level": notified,
                "auto_escalated": auto,
            },
        )
        await events.sla_breached(self.outbox, session, issue, breach, auto)
        if auto:
            issue.auto_escalated_round = issue.round
            step = plan(position_of(issue), Transition.AUTO_ESCALATE)
            await self._apply_step(session, issue, step, SYSTEM, at, note=AUTO_ESCALATION_NOTE[c.clock])
        return breach

    # --- the one way state changes ------------------------------------------------------------------
    async def _apply_step(
        self,
        session: AsyncSession,
        issue: Issue,
        step: Step,
        actor: Actor,
        at: datetime,
        *,
        note: str = "",
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> TimelineEntry:
        t = step.transition
        if sla.starts_new_round(step):
            issue.round += 1
        targets = await self._targets(session, issue, response=sla.starts_response_clock(step))
        issue.state = step.to_state.value
        issue.level = step.to_level.value
        await self._apply_clocks(session, issue, sla.on_step(step, at, targets), at)
        if t in (Transition.ESCALATE, Transition.AUTO_ESCALATE):
            issue.escalated = True
        if t in (Transition.RESOLVE, Transition.GRID_CLOSED):
            issue.resolved_at = at
            issue.resolved_level = step.from_level.value
            issue.feedback_due_at = feedback.feedback_due(at, self.settings.issues_feedback_window_hours)
        if t in (Transition.CLOSE, Transition.REJECT, Transition.MERGE):
            issue.closed_at = at
            issue.feedback_due_at = None
        if t == Transition.REOPEN:
            issue.feedback_due_at = None
            issue.resolved_at = None
            issue.dispatch_id = None
            issue.dispatch_level = None
            issue.state_before_dispatch = None
            issue.grid_return_cause = None
        if t in (Transition.GRID_FAILED,):
            issue.dispatch_id = None
        entry = await self._record(
            session,
            issue,
            "state_changed",
            actor,
            at,
            from_state=step.from_state.value,
            to_state=step.to_state.value,
            text=note or reason,
            data={"transition": step.subject_suffix, "from_level": step.from_level.value, **(data or {})},
        )
        await events.state_changed(
            self.outbox, session, issue, step, actor.id, actor.kind, at, note=note, reason=reason
        )
        return entry

    # --- reports --------------------------------------------------------------------------------------
    async def report(
        self,
        principal: Principal,
        cmd: ReportCommand,
        idem: Idem,
        response_type: type[R],
        pack: Callable[[IssueView], R],
    ) -> R:
        async with self.reads() as session:
            lineage = await regions.lineage(session, cmd.neighbourhood_id)
            rules, _ = await self._catalogue(session, lineage.district_id)
        source = access.ensure_may_report(principal, cmd.neighbourhood_id, lineage, bool(cmd.on_behalf_of))
        title = reports.clean_text(cmd.title, reports.MAX_TITLE, "title_invalid", "the title", required=False)
        description = reports.clean_text(
            cmd.description, reports.MAX_DESCRIPTION, "description_invalid", "a description"
        )
        location = reports.clean_location(cmd.location, required=True)
        photos = reports.clean_photos(cmd.photo_urls)
        on_behalf = cmd.on_behalf_of.strip()
        if len(on_behalf) > 64:
            raise InvalidArgument("not a person id", code="on_behalf_of_invalid")
        code = cmd.category_code.strip() or catalogue.guess(rules, f"{title} {description}")
        category = catalogue.require_active(rules, code)
        now = self.clock.now()
        duty = await self.onduty.lookup(cmd.neighbourhood_id, now)

        async def work(session: AsyncSession) -> R:
            issue = await self._create(
                session,
                lineage,
                category,
                source=source,
                reporter_id=principal.subject if source == "resident" else (on_behalf or None),
                created_by=principal.subject,
                title=title,
                description=description,
                location=location,
                photos=photos,
                public=cmd.public,
                duty=duty,
                at=now,
                actor=Actor(principal.subject, access.actor_role(principal, lineage, principal.subject)),
            )
            return pack(IssueView(issue, View.STAFF if source == "cadre" else View.REPORTER, now, category.name))

        return await self._once(principal, idem, response_type, work)

    async def _create(
        self,
        session: AsyncSession,
        lineage: Lineage,
        category: CategoryRule,
        *,
        source: str,
        reporter_id: str | None,
        created_by: str,
        title: str,
        description: str,
        location: reports.Location,
        photos: Sequence[str],
        public: bool,
        duty: Duty | None,
        at: datetime,
        actor: Actor,
        source_post_id: str | None = None,
    ) -> Issue:
        issue = Issue(
            id=new_id(),
            neighbourhood_id=lineage.neighbourhood_id,
            subdistrict_id=lineage.subdistrict_id,
            district_id=lineage.district_id,
            category_code=category.code,
            title=title,
            description=description,
            state=State.REPORTED.value,
            level=Level.NEIGHBOURHOOD.value,
            round=1,
            version=0,
            source=source,
            source_post_id=source_post_id,
            reporter_id=reporter_id,
            created_by=created_by,
            assignee_id=None,
            assignment_pending=duty is None,
            assignment_attempts=0 if duty else 1,
            household_id=location.household_id,
            building=location.building,
            address=location.address,
            lat=location.lat,
            lon=location.lon,
            photo_urls=list(photos),
            public=public,
            reported_at=at,
            updated_at=at,
            escalated=False,
            reject_reason="",
            grid_service_code="",
        )
        with session.no_autoflush:  # the issue goes in as one INSERT at the flush below, not an INSERT and an UPDATE
            session.add(issue)
            targets = await self._targets(session, issue, category)
            await self._apply_clocks(session, issue, sla.on_report(at, targets), at, new=True)
            await self._record(
                session,
                issue,
                "reported",
                actor,
                at,
                to_state=State.REPORTED.value,
                text=description,
                photos=photos,
                data={"source": source, "category_code": category.code, "source_post_id": source_post_id or ""},
            )
            if duty is not None:
                await self._assign(session, issue, duty, at, ROSTER)
        await session.flush()
        await events.reported(self.outbox, session, issue)
        self.metrics.opened(session, await regions.neighbourhood_kind(session, issue.neighbourhood_id), source)
        return issue

    async def collect_post(self, session: AsyncSession, post: boards_ev.PostCreated, _event: ReceivedEvent) -> None:
        """A 身边事 post, or any post @mentioning the committee, becomes exactly one issue."""
        if not (post.board_kind == NEIGHBOURHOOD_MATTERS or post.mentions_committee):
            return
        if not post.post_id or not post.neighbourhood_id or not post.author_id:
            raise PoisonMessage("a post event without post, neighbourhood or author")
        repo = IssueRepository(session)
        if await repo.by_post(post.post_id) is not None:
            return  # already collected (a redelivery with another event id)
        lineage = await regions.find_lineage(session, post.neighbourhood_id)
        if lineage is None:
            # The region directory has not caught up with identity yet: retry later.
            raise RuntimeError("neighbourhood not in the region directory yet")
        rules, _ = await self._catalogue(session, lineage.district_id)
        title = post.title.strip()[: reports.MAX_TITLE]
        text = post.body.strip() or title or "（见图片）"
        description = text if len(text) <= reports.MAX_DESCRIPTION else text[: reports.MAX_DESCRIPTION - 1] + "…"
        photos = [u.strip() for u in post.image_urls if reports.is_photo(u)][: reports.MAX_PHOTOS]
        code = catalogue.guess(rules, f"{title} {text}")
        category = catalogue.require_active(rules, code)
        now = self.clock.now()
        duty = await self.onduty.lookup(post.neighbourhood_id, now)
        await self._create(
            session,
            lineage,
            category,
            source="post",
            reporter_id=post.author_id,
            created_by=post.author_id,
            title=title,
            description=description,
            location=reports.Location(),
            photos=photos,
            public=True,
            duty=duty,
            at=now,
            actor=Actor(post.author_id, ActorRole.REPORTER),
            source_post_id=post.post_id,
        )

    # --- handling -------------------------------------------------------------------------------------
    async def transition(
        self,
        principal: Principal,
        cmd: TransitionCommand,
        idem: Idem,
        response_type: type[R],
        pack: Callable[[IssueView, str], R],
    ) -> R:
        if cmd.transition not in _STAFF_STEPS:
            raise InvalidArgument("unknown action", code="action_invalid")
        note = reports.clean_text(cmd.note, reports.MAX_NOTE, "note_invalid", "a note", required=False)
        reason = ""
        if cmd.transition == Transition.REJECT:
            reason = reports.clean_reason(cmd.reason)
        grid_code = cmd.grid_service_code.strip()
        if grid_code and not catalogue.GRID_CODE.match(grid_code):
            raise InvalidArgument("the grid service code is not valid", code="grid_service_code_invalid")
        address = reports.clean_location(reports.Location(address=cmd.address), required=False).address

        async def work(session: AsyncSession) -> R:
            # Changes go in at the flush below: one UPDATE of the issue, not one per read in between.
            with session.no_autoflush:
                now = self.clock.now()
                issue, view = await self._load(session, principal, cmd.issue_id, lock=True)
                if view != View.STAFF:
                    raise PermissionDenied("only the committee or staff above it handle issues", code="not_allowed")
                if cmd.expected_version and cmd.expected_version != issue.version:
                    raise Conflict("the issue changed meanwhile; reload it", code="version_mismatch")
                step = plan(position_of(issue), cmd.transition)
                access.ensure_may_handle(principal, lineage_of(issue), step.from_level, cmd.transition)
                actor = person_actor(principal, issue)
                data: dict[str, Any] = {}
                dispatch: Dispatch | None = None
                target: Issue | None = None
                if cmd.transition == Transition.MERGE:
                    target = await self._merge_target(session, issue, cmd.duplicate_of_id)
                    issue.duplicate_of_id = target.id
                    data["duplicate_of_id"] = target.id
                if cmd.transition == Transition.REJECT:
                    issue.reject_reason = reason
                if cmd.transition == Transition.DISPATCH:
                    category = await self._category(session, issue)
                    code = grid_code or (category.grid_service_code if category else "")
                    if not code:
                        raise FailedPrecondition(
                            "this category has no grid service code; choose one to dispatch",
                            code="category_not_dispatchable",
                        )
                    number = await IssueRepository(session).dispatch_count(issue.id, issue.round) + 1
                    dispatch = Dispatch(**grid.hand_over(issue, step, number, code, principal.subject, now))
                    session.add(dispatch)
                    if address and not issue.address:
                        issue.address = address
                        data["address"] = address
                    if not (issue.address or issue.building or issue.lat is not None):
                        # The grid needs somewhere to send people: at least the neighbourhood itself.
                        issue.address = await IssueRepository(session).neighbourhood_name(issue.neighbourhood_id)
                    data.update({"dispatch_id": dispatch.id, "grid_service_code": code})
                if issue.assignee_id is None and actor.kind == "person" and actor.role == ActorRole.COMMITTEE:
                    await self._assign(session, issue, Duty(actor.id, False), now, actor)
                await self._apply_step(session, issue, step, actor, now, note=note, reason=reason, data=data)
                if dispatch is not None:
                    description = issue.description if not issue.title else f"{issue.title}\n{issue.description}"
                    media = [reports.absolute(p, self.settings.issues_media_base_url) for p in issue.photo_urls or []]
                    await events.dispatch_requested(self.outbox, session, issue, dispatch, description[:4000], media)
                if target is not None:
                    await self._record(
                        session,
                        target,
                        "merged_in",
                        actor,
                        now,
                        data={"issue_id": issue.id},
                    )
            await session.flush()
            return pack(IssueView(issue, view, now), dispatch.id if dispatch else "")

        return await self._once(principal, idem, response_type, work)

    async def _merge_target(self, session: AsyncSession, issue: Issue, target_id: str) -> Issue:
        target_id = target_id.strip()
        if not target_id:
            raise InvalidArgument("say which issue this one duplicates", code="duplicate_of_required")
        if target_id == issue.id:
            raise InvalidArgument("an issue cannot duplicate itself", code="merge_target_invalid")
        target = await IssueRepository(session).get(target_id, lock=True)
        if target is None or target.neighbourhood_id != issue.neighbourhood_id:
            raise InvalidArgument(
                "the duplicate must be an issue of the same neighbourhood", code="merge_target_invalid"
            )
        if State(target.state) in TERMINAL:
            raise FailedPrecondition("the duplicate is closed, rejected or merged itself", code="merge_target_closed")
        return target

    async def recategorise(
        self,
        principal: Principal,
        issue_id: str,
        category_code: str,
        idem: Idem,
        response_type: type[R],
        pack: Callable[[IssueView], R],
    ) -> R:
        async def work(session: AsyncSession) -> R:
            now = self.clock.now()
            issue, view = await self._load(session, principal, issue_id, lock=True)
            if view != View.STAFF:
                raise PermissionDenied("only the committee or staff above it handle issues", code="not_allowed")
            if State(issue.state) in TERMINAL or issue.state in (State.DISPATCHED.value, State.RESOLVED.value):
                raise FailedPrecondition(
                    "the category can change while the issue is being handled here", code="illegal_transition"
                )
            access.ensure_may_handle(principal, lineage_of(issue), Level(issue.level), Transition.START)
            rules, _ = await self._catalogue(session, issue.district_id)
            category = catalogue.require_active(rules, category_code.strip())
            before = issue.category_code
            if before == category.code:
                return pack(IssueView(issue, view, now, category.name))
            issue.category_code = category.code
            actor = person_actor(principal, issue)
            await self._record(session, issue, "recategorised", actor, now, data={"from": before, "to": category.code})
            await events.recategorised(self.outbox, session, issue, before, actor.id, now)
            await session.flush()
            return pack(IssueView(issue, view, now, category.name))

        return await self._once(principal, idem, response_type, work)

    async def add_note(
        self,
        principal: Principal,
        issue_id: str,
        text: str,
        internal: bool,
        photos: Sequence[str],
        idem: Idem,
        response_type: type[R],
        pack: Callable[[TimelineEntry], R],
    ) -> R:
        note, cleaned = reports.clean_note(text, photos)

        async def work(session: AsyncSession) -> R:
            now = self.clock.now()
            issue, view = await self._load(session, principal, issue_id, lock=True)
            access.ensure_may_note(view, internal)
            actor = person_actor(principal, issue)
            entry = await self._record(
                session,
                issue,
                "note" if note else "photo",
                actor,
                now,
                internal=internal,
                text=note,
                photos=cleaned,
            )
            await events.noted(self.outbox, session, issue, entry.id, actor.id, internal, len(cleaned), now)
            await session.flush()
            return pack(entry)

        return await self._once(principal, idem, response_type, work)

    async def rate(
        self,
        principal: Principal,
        issue_id: str,
        rating: int,
        fixed: bool,
        comment: str,
        idem: Idem,
        response_type: type[R],
        pack: Callable[[IssueView, bool], R],
    ) -> R:
        verdict = feedback.validate(rating, fixed, comment)

        async def work(session: AsyncSession) -> R:
            now = self.clock.now()
            issue, view = await self._load(session, principal, issue_id, lock=True)
            if not issue.reporter_id or principal.subject != issue.reporter_id:
                raise PermissionDenied("only the reporter rates the result", code="not_reporter")
            if issue.state != State.RESOLVED.value:
                raise FailedPrecondition("the issue is not waiting for your verdict", code="not_awaiting_feedback")
            feedback.ensure_open(issue.feedback_due_at, now)
            repo = IssueRepository(session)
            if await repo.feedback_for(issue.id, issue.round) is not None:
                raise FailedPrecondition("you have rated this already", code="already_rated")
            row = Feedback(
                id=new_id(),
                issue_id=issue.id,
                round=issue.round,
                rating=verdict.rating,
                fixed=verdict.fixed,
                comment=verdict.comment,
                level=issue.resolved_level or issue.level,
                reopened=verdict.reopens,
                rated_at=now,
            )
            session.add(row)
            await session.flush()
            issue.rating = verdict.rating
            actor = person_actor(principal, issue)
            await self._record(
                session,
                issue,
                "feedback",
                actor,
                now,
                text=verdict.comment,
                data={"rating": verdict.rating, "fixed": verdict.fixed, "level": row.level},
            )
            step = plan(position_of(issue), Transition.REOPEN if verdict.reopens else Transition.CLOSE)
            note = "居民对处理结果不满意，问题重新打开" if verdict.reopens else "居民确认问题已解决"
            await self._apply_step(session, issue, step, actor, now, note=note, data={"rating": verdict.rating})
            await events.rated(self.outbox, session, issue, row)
            await session.flush()
            return pack(IssueView(issue, view, now), verdict.reopens)

        return await self._once(principal, idem, response_type, work)

    # --- reads ----------------------------------------------------------------------------------------
    async def get(self, principal: Principal, issue_id: str) -> IssueView:
        async with self.reads() as session:
            issue, view = await self._load(session, principal, issue_id)
            category = await self._category(session, issue)
        return IssueView(issue, view, self.clock.now(), category.name if category else "")

    async def list_issues(
        self,
        principal: Principal,
        scope: str,
        neighbourhood_id: str,
        subdistrict_id: str,
        states: Sequence[str],
        category_code: str,
        overdue_only: bool,
        cursor: str | None,
        limit: int,
    ) -> ListResult:
        now = self.clock.now()
        _check_states(states)
        async with self.reads() as session:
            repo = IssueRepository(session)
            query, fixed_view = await self._scope_query(session, principal, scope, neighbourhood_id, subdistrict_id)
            query = replace(
                query,
                states=tuple(states),
                category_code=category_code or None,
                overdue_at=now if overdue_only else None,
            )
            rows = await repo.find(query, cursor, limit + 1)
            names: dict[str, dict[str, str]] = {}
            items = []
            for issue in rows[:limit]:
                view = fixed_view or access.view_of(principal, facts_of(issue), lineage_of(issue))
                if view is None:
                    continue
                if issue.district_id not in names:
                    rules, _ = await self._catalogue(session, issue.district_id)
                    names[issue.district_id] = {r.code: r.name for r in rules}
                items.append(IssueView(issue, view, now, names[issue.district_id].get(issue.category_code, "")))
        more = len(rows) > limit
        return ListResult(items, rows[limit - 1].id if more else "")

    async def _scope_query(
        self, session: AsyncSession, principal: Principal, scope: str, neighbourhood_id: str, subdistrict_id: str
    ) -> tuple[IssueQuery, View | None]:
        if scope in ("neighbourhood", "public"):
            if not neighbourhood_id:
                raise InvalidArgument("neighbourhood_id is required", code="neighbourhood_required")
            lineage = await regions.lineage(session, neighbourhood_id)
            if scope == "public":
                if not (principal.is_member(neighbourhood_id) or principal.oversees(lineage)):
                    raise PermissionDenied("not a member of this neighbourhood", code="not_a_member")
                return IssueQuery(neighbourhood_id=neighbourhood_id, public_only=True), View.PUBLIC
            if (
                principal.is_committee(neighbourhood_id)
                or principal.staff_scope_of(lineage) == "district"
                or access.is_our_service(principal)
            ):
                return IssueQuery(neighbourhood_id=neighbourhood_id), View.STAFF
            if principal.staff_scope_of(lineage) == "subdistrict":
                return IssueQuery(neighbourhood_id=neighbourhood_id, escalated_only=True), View.STAFF
            raise PermissionDenied("the neighbourhood's queue is for its committee", code="not_allowed")
        if scope == "subdistrict":
            if not subdistrict_id:
                raise InvalidArgument("subdistrict_id is required", code="subdistrict_required")
            district_id = await IssueRepository(session).district_of_subdistrict(subdistrict_id)
            if district_id is None:
                raise NotFound("no such sub-district", code="subdistrict_not_found")
            lineage = Lineage("", subdistrict_id, district_id)
            if principal.staff_scope_of(lineage) in ("subdistrict", "district") or access.is_our_service(principal):
                return IssueQuery(subdistrict_id=subdistrict_id, escalated_only=True), View.STAFF
            raise PermissionDenied("the sub-district's queue is for its staff", code="not_allowed")
        if scope == "assigned":
            return IssueQuery(assignee_id=principal.person_id), None
        if scope == "reported":
            return IssueQuery(reporter_id=principal.person_id), None
        raise InvalidArgument("choose a scope", code="scope_invalid")

    async def count(
        self,
        principal: Principal,
        scope: str,
        neighbourhood_id: str,
        subdistrict_id: str,
        states: Sequence[str],
        category_code: str,
        overdue_only: bool,
    ) -> Counts:
        now = self.clock.now()
        _check_states(states)
        async with self.reads() as session:
            repo = IssueRepository(session)
            if scope == "neighbourhood":
                if not neighbourhood_id:
                    raise InvalidArgument("neighbourhood_id is required", code="neighbourhood_required")
                lineage = await regions.lineage(session, neighbourhood_id)
                access.ensure_may_see_stats(principal, lineage)
                query = IssueQuery(neighbourhood_id=neighbourhood_id)
                neighbourhoods = [neighbourhood_id]
            elif scope == "subdistrict":
                if not subdistrict_id:
                    raise InvalidArgument("subdistrict_id is required", code="subdistrict_required")
                district_id = await repo.district_of_subdistrict(subdistrict_id)
                if district_id is None:
                    raise NotFound("no such sub-district", code="subdistrict_not_found")
                lineage = Lineage("", subdistrict_id, district_id)
                if not (
                    principal.staff_scope_of(lineage) in ("subdistrict", "district") or access.is_our_service(principal)
                ):
                    raise PermissionDenied("the sub-district's statistics are for its staff", code="not_allowed")
                query = IssueQuery(subdistrict_id=subdistrict_id)
                neighbourhoods = await regions.neighbourhoods_under(session, subdistrict_id=subdistrict_id)
            else:
                raise InvalidArgument("counts are per neighbourhood or per sub-district", code="scope_invalid")
            query = replace(
                query,
                states=tuple(states),
                category_code=category_code or None,
                overdue_at=now if overdue_only else None,
            )
            total, open_, overdue = await repo.count_open_overdue(query, now)
            result = Counts(
                total=total,
                open=open_,
                overdue=overdue,
                breaches=await repo.count_breaches(neighbourhoods),
                by_state=await repo.count_by(query, Issue.state),
                by_category=await repo.count_by(query, Issue.category_code),
            )
            if scope == "subdistrict":
                result.by_neighbourhood = await repo.per_neighbourhood(query, now)
            return result

    async def timeline(
        self, principal: Principal, issue_id: str, after_seq: int, limit: int
    ) -> tuple[list[TimelineEntry], View, bool]:
        async with self.reads() as session:
            issue, view = await self._load(session, principal, issue_id)
            rows = await IssueRepository(session).timeline(issue.id, after_seq, limit + 1, view == View.STAFF)
        return rows[:limit], view, len(rows) > limit

    async def sla_of(self, principal: Principal, issue_id: str) -> tuple[list[SlaClock], list[SlaBreach]]:
        async with self.reads() as session:
            issue, view = await self._load(session, principal, issue_id)
            if view == View.PUBLIC:
                raise PermissionDenied("the clocks are for the reporter and staff", code="not_allowed")
            repo = IssueRepository(session)
            return await repo.clocks(issue.id), await repo.breaches(issue.id)

    # --- catalogue ------------------------------------------------------------------------------------
    async def categories(
        self, principal: Principal, district_id: str, neighbourhood_id: str, include_inactive: bool
    ) -> tuple[list[CategoryRule], bool, str]:
        async with self.reads() as session:
            if neighbourhood_id:
                district_id = (await regions.lineage(session, neighbourhood_id)).district_id
            if not district_id:
                raise InvalidArgument("say which district or neighbourhood", code="district_required")
            rules, is_default = await self._catalogue(session, district_id)
        if not include_inactive:
            rules = [r for r in rules if r.active]
        return rules, is_default, district_id

    async def upsert_category(
        self,
        principal: Principal,
        district_id: str,
        rule: CategoryRule,
        idem: Idem,
        response_type: type[R],
        pack: Callable[[CategoryRule, str], R],
    ) -> R:
        if not district_id:
            raise InvalidArgument("say which district", code="district_required")
        access.ensure_may_configure_district(principal, district_id)
        cleaned = catalogue.validate_category(rule)

        async def work(session: AsyncSession) -> R:
            now = self.clock.now()
            repo = IssueRepository(session)
            rows, is_default = await repo.categories(district_id)
            if is_default:
                # A district's first change makes the default catalogue its own, then changes it.
                for row in rows:
                    session.add(
                        Category(
                            id=new_id(),
                            district_id=district_id,
                            code=row.code,
                            name=row.name,
                            grid_service_code=row.grid_service_code,
                            grid_service_name=row.grid_service_name,
                            response_hours=row.response_hours,
                            resolution_hours=row.resolution_hours,
                            keywords=list(row.keywords or []),
                            active=row.active,
                            sort_order=row.sort_order,
                            updated_at=now,
                        )
                    )
                await session.flush()
                rows, _ = await repo.categories(district_id)
            existing = next((r for r in rows if r.code == cleaned.code), None)
            if existing is None:
                existing = Category(id=new_id(), district_id=district_id, code=cleaned.code)
                session.add(existing)
            existing.name = cleaned.name
            existing.grid_service_code = cleaned.grid_service_code
            existing.grid_service_name = cleaned.grid_service_name
            existing.response_hours = cleaned.response_hours
            existing.resolution_hours = cleaned.resolution_hours
            existing.keywords = list(cleaned.keywords)
            existing.active = cleaned.active
            existing.sort_order = cleaned.sort_order or (max((r.sort_order for r in rows), default=0) + 10)
            existing.updated_at = now
            await session.flush()
            return pack(category_rule(existing), district_id)

        return await self._once(principal, idem, response_type, work)

    async def set_response_target(
        self,
        principal: Principal,
        neighbourhood_id: str,
        category_code: str,
        hours: float,
        idem: Idem,
        response_type: type[R],
        pack: Callable[[str, str, float], R],
    ) -> R:
        async with self.reads() as session:
            lineage = await regions.lineage(session, neighbourhood_id)
            rules, _ = await self._catalogue(session, lineage.district_id)
        access.ensure_may_set_target(principal, lineage)
        code = category_code.strip()
        if code:
            catalogue.require_active(rules, code)
        if hours:
            sla.validate_hours(hours, "response_hours_invalid")
        elif hours < 0:
            raise InvalidArgument("hours must not be negative", code="response_hours_invalid")

        async def work(session: AsyncSession) -> R:
            repo = IssueRepository(session)
            if not hours:
                await repo.delete_response_target(neighbourhood_id, code)
                return pack(neighbourhood_id, code, 0.0)
            row = await repo.response_target(neighbourhood_id, code)
            if row is None:
                row = ResponseTarget(neighbourhood_id=neighbourhood_id, category_code=code)
                session.add(row)
            row.response_hours = float(hours)
            row.set_by = principal.subject
            row.updated_at = self.clock.now()
            await session.flush()
            return pack(neighbourhood_id, code, float(hours))

        return await self._once(principal, idem, response_type, work)

    # --- the grid platform's answers (grid gateway events) --------------------------------------------
    async def _grid_issue(self, session: AsyncSession, issue_id: str) -> Issue:
        issue = await IssueRepository(session).get(issue_id, lock=True) if issue_id else None
        if issue is None:
            raise PoisonMessage("a grid ticket for an issue we do not know")
        return issue

    async def grid_sent(self, session: AsyncSession, msg: grid_ev.TicketSent, _event: ReceivedEvent) -> None:
        key = f"sent:{msg.ticket_id or msg.dispatch_id}"
        repo = IssueRepository(session)
        if await repo.grid_update_seen(key):
            return
        issue = await self._grid_issue(session, msg.issue_id)
        now = self.clock.now()
        dispatch = await repo.dispatch(msg.dispatch_id) if msg.dispatch_id else None
        if dispatch is not None:
            dispatch.ticket_id = msg.ticket_id or None
            dispatch.external_id = msg.external_id or None
        session.add(
            GridUpdate(
                id=new_id(),
                update_key=key,
                issue_id=issue.id,
                dispatch_id=msg.dispatch_id,
                state="sent",
                occurred_at=from_ts(msg.sent_at) if msg.HasField("sent_at") else None,
                received_at=now,
                moved_issue=False,
            )
        )
        await self._record(
            session,
            issue,
            "grid_status",
            GRID,
            now,
            text="网格平台已受理",
            data={
                "grid_state": "sent",
                "dispatch_id": msg.dispatch_id,
                "ticket_id": msg.ticket_id,
                "external_id": msg.external_id,
            },
        )

    async def grid_status(self, session: AsyncSession, msg: grid_ev.TicketStatusChanged, _event: ReceivedEvent) -> None:
        occurred = from_ts(msg.occurred_at) if msg.HasField("occurred_at") else None
        key = f"update:{msg.grid_update_id}" if msg.grid_update_id else f"status:{msg.ticket_id}:{msg.state}:{occurred}"
        repo = IssueRepository(session)
        if await repo.grid_update_seen(key):
            return
        issue = await self._grid_issue(session, msg.issue_id)
        now = self.clock.now()
        current = bool(msg.dispatch_id) and msg.dispatch_id == issue.dispatch_id
        transition = grid.transition_for(
            msg.state, State(issue.state), current, occurred, issue.grid_last_update_at, issue.grid_return_cause
        )
        session.add(
            GridUpdate(
                id=new_id(),
                update_key=key,
                issue_id=issue.id,
                dispatch_id=msg.dispatch_id,
                state=msg.state,
                occurred_at=occurred,
                received_at=now,
                moved_issue=transition is not None,
            )
        )
        # The session's no-autoflush window: the unique update key is claimed before anything else changes.
        await session.flush()
        await self._record(
            session,
            issue,
            "grid_status",
            GRID,
            now,
            text=msg.description[:2000],
            data={
                "grid_state": msg.state,
                "dispatch_id": msg.dispatch_id,
                "ticket_id": msg.ticket_id,
                "grid_update_id": msg.grid_update_id,
                "agency": msg.agency,
                "current_dispatch": current,
            },
        )
        last = issue.grid_last_update_at
        if current and occurred is not None and (last is None or occurred > last):
            issue.grid_last_update_at = occurred
        if transition is None:
            return
        step = plan(position_of(issue), transition)
        if transition == Transition.GRID_RETURNED:
            issue.grid_return_cause = msg.state
        elif transition == Transition.GRID_RESUMED:
            issue.grid_return_cause = None
        await self._apply_step(
            session, issue, step, GRID, now, note=msg.description[:500], data={"grid_state": msg.state}
        )

    async def grid_failed(self, session: AsyncSession, msg: grid_ev.TicketFailed, _event: ReceivedEvent) -> None:
        key = f"failed:{msg.ticket_id or msg.dispatch_id}"
        repo = IssueRepository(session)
        if await repo.grid_update_seen(key):
            return
        issue = await self._grid_issue(session, msg.issue_id)
        now = self.clock.now()
        current = bool(msg.dispatch_id) and msg.dispatch_id == issue.dispatch_id
        transition = grid.failure_transition(State(issue.state), current)
        session.add(
            GridUpdate(
                id=new_id(),
                update_key=key,
                issue_id=issue.id,
                dispatch_id=msg.dispatch_id,
                state="failed",
                occurred_at=from_ts(msg.failed_at) if msg.HasField("failed_at") else None,
                received_at=now,
                moved_issue=transition is not None,
            )
        )
        await session.flush()
        await self._record(
            session,
            issue,
            "grid_status",
            GRID,
            now,
            text=msg.reason[:2000],
            data={"grid_state": "failed", "dispatch_id": msg.dispatch_id, "ticket_id": msg.ticket_id},
        )
        if transition is not None:
            step = plan(position_of(issue), transition)
            await self._apply_step(session, issue, step, GRID, now, reason=msg.reason[:500])

    # --- background work (every replica runs it; claims keep each piece single) ------------------------
    async def scan_breaches_once(self, limit: int = 100) -> SchedulerStats:
        """Records every clock past due once, notifies the level above and escalates by policy."""
        stats = SchedulerStats()
        now = self.clock.now()
        async with self.sessions() as session:
            candidates = await IssueRepository(session).due_clocks(now, limit)
        for clock_id, issue_id in candidates:
            try:
                async with self.sessions() as session, session.begin():
                    repo = IssueRepository(session)
                    issue = await repo.try_lock(issue_id)
                    if issue is None:
                        stats.conflicts += 1  # another replica is on it
                        continue
                    c = await repo.clock(clock_id)
                    if c is None or c.stopped_at is not None or c.breached_at is not None or c.due_at > now:
                        continue
                    before = issue.auto_escalated_round
                    breach = await self._breach(session, issue, c, now, scheduled=True)
                    if breach is not None:
                        stats.breaches += 1
                        if issue.auto_escalated_round != before:
                            stats.escalations += 1
            except IntegrityError:
                stats.conflicts += 1  # the unique claim: someone else recorded this breach first
        return stats

    async def close_unanswered_once(self, limit: int = 100) -> int:
        """Resolved issues whose reporter did not answer within the window close by themselves."""
        now = self.clock.now()
        async with self.sessions() as session:
            candidates = await IssueRepository(session).expired_feedback(now, limit)
        closed = 0
        for issue_id in candidates:
            async with self.sessions() as session, session.begin():
                issue = await IssueRepository(session).try_lock(issue_id)
                if issue is None or issue.state != State.RESOLVED.value:
                    continue
                if not feedback.expired(issue.feedback_due_at, now):
                    continue
                step = plan(position_of(issue), Transition.CLOSE)
                await self._apply_step(session, issue, step, SYSTEM, now, note="评价期内未收到评价，自动办结")
                closed += 1
        return closed

    async def assign_pending_once(self, limit: int = 50) -> int:
        """Issues created while identity could not say who is on duty get their assignee now."""
        async with self.sessions() as session:
            candidates = await IssueRepository(session).pending_assignments(limit)
        assigned = 0
        for issue_id, neighbourhood_id in candidates:
            now = self.clock.now()
            duty = await self.onduty.lookup(neighbourhood_id, now)
            async with self.sessions() as session, session.begin():
                issue = await IssueRepository(session).try_lock(issue_id)
                if issue is None or not issue.assignment_pending:
                    continue
                if duty is None:
                    issue.assignment_attempts += 1
                    continue
                await self._assign(session, issue, duty, now, ROSTER)
                assigned += 1
        return assigned


def _check_states(states: Sequence[str]) -> None:
    known = {st.value for st in State}
    if any(s not in known for s in states):
        raise InvalidArgument("unknown state in the filter", code="state_filter_invalid")


_STAFF_STEPS = frozenset(
    {
        Transition.ACKNOWLEDGE,
        Transition.START,
        Transition.ESCALATE,
        Transition.DISPATCH,
        Transition.RESOLVE,
        Transition.REJECT,
        Transition.MERGE,
    }
)
