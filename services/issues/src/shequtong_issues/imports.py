"""ImportIssues: historic issues with their whole record, replayed through the same rules.

Each issue is built in memory the way the per-item path builds it — reported (clocks started, assigned),
then every step planned by the state machine (`plan`), allowed by the same level rules
(`access.ensure_may_handle`) and timed by the same SLA maths (`sla.on_step`, late stops recorded as
breaches) at the step's own time — so an impossible timeline is refused, never written. The batch is then
written with bulk INSERTs in one transaction (`ON CONFLICT (external_ref) DO NOTHING RETURNING id`: a re-sent
batch creates nothing twice) with an event per fact (reported, assigned, each state change, breaches,
verdicts), the events insights and boards read, packed in order (`issues.record.imported`: a district's
history is hundreds of thousands of them). A historic dispatch writes no `dispatch_requested` (the
grid handled it long ago, the grid gateway must not send it again) and must end with the grid's answer.
Who may import: platform operators and our own services.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_issues import events
from shequtong_issues.domain import access, catalogue, feedback, grid, reports, sla
from shequtong_issues.domain.access import ActorRole
from shequtong_issues.domain.catalogue import Category as CategoryRule
from shequtong_issues.domain.states import Level, Position, State, Step, Transition, plan
from shequtong_issues.models import Dispatch, Feedback, Issue, ResponseTarget, SlaBreach, SlaClock, TimelineEntry
from shequtong_issues.repository import IssueRepository, category_rule
from shequtong_kit import auth, regions
from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.clock import Clock
from shequtong_kit.db import InsertMany, PlannerStatistics, rows_among
from shequtong_kit.errors import DomainError, FailedPrecondition, InvalidArgument, PermissionDenied
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox

MAX_BATCH = 2000
EXTERNAL_REF_MAX = 100
FUTURE_SKEW = timedelta(minutes=5)
MAX_STEPS = 50
SYSTEM_ACTOR = "system:sla-scheduler"
ROSTER_ACTOR = "system:duty-roster"
GRID_ACTOR = "grid-platform"

ACTIONS = {
    "acknowledge": Transition.ACKNOWLEDGE,
    "start": Transition.START,
    "escalate": Transition.ESCALATE,
    "dispatch": Transition.DISPATCH,
    "resolve": Transition.RESOLVE,
    "reject": Transition.REJECT,
    "grid_returned": Transition.GRID_RETURNED,
    "grid_closed": Transition.GRID_CLOSED,
    "close": Transition.CLOSE,
}
STAFF_ROLES = {
    ActorRole.COMMITTEE: lambda lin: (auth.CADRE, f"n:{lin.neighbourhood_id}"),
    ActorRole.SUBDISTRICT: lambda lin: (auth.SUBDISTRICT_STAFF, f"s:{lin.subdistrict_id}"),
    ActorRole.DISTRICT: lambda lin: (auth.DISTRICT_STAFF, f"d:{lin.district_id}"),
}


@dataclass(frozen=True)
class StepRecord:
    action: str  # a key of ACTIONS, or "rate"
    at: datetime | None
    actor_id: str = ""
    actor_role: str = ""
    note: str = ""
    reason: str = ""
    rating: int = 0
    fixed: bool = False
    grid_service_code: str = ""


@dataclass(frozen=True)
class IssueRecord:
    external_ref: str
    neighbourhood_id: str
    category_code: str
    title: str
    description: str
    location: reports.Location
    public: bool
    source: str
    reporter_id: str
    created_by: str
    assignee_id: str
    reported_at: datetime | None
    steps: Sequence[StepRecord]


@dataclass
class Built:
    """One issue as the per-item path would have left it, and everything it wrote on the way."""

    issue: Any  # rows of Issue, TimelineEntry, SlaClock, SlaBreach, Dispatch, Feedback (see `_new`)
    entries: list[Any] = field(default_factory=list)
    clocks: list[Any] = field(default_factory=list)
    breaches: list[Any] = field(default_factory=list)
    dispatches: list[Any] = field(default_factory=list)
    feedback: list[Any] = field(default_factory=list)
    events: list[tuple[str, Message]] = field(default_factory=list)


@dataclass
class ImportOutcome:
    received: int = 0
    created: int = 0
    skipped: int = 0
    # (external_ref, id, created, state) in request order.
    records: list[tuple[str, str, bool, str]] = field(default_factory=list)


@contextlib.contextmanager
def at_record(index: int, ref: str = "") -> Iterator[None]:
    try:
        yield
    except DomainError as exc:
        exc.metadata.update(record=str(index), external_ref=ref[:EXTERNAL_REF_MAX])
        exc.message = f"record {index}: {exc.message}"
        exc.args = (exc.message,)
        raise


def _time(value: datetime | None, now: datetime, name: str) -> datetime:
    if value is None:
        raise InvalidArgument(f"{name} is required", code=f"{name}_required")
    if value > now + FUTURE_SKEW:
        raise InvalidArgument(f"{name} is in the future", code=f"{name}_in_future")
    return value


def _person(value: str, code: str, required: bool = True) -> str:
    value = value.strip()
    if (required and not value) or len(value) > 64 or "\x00" in value:
        raise InvalidArgument("not a person id", code=code)
    return value


def _new(model: Any, **values: Any) -> Any:
    """A row to be written, as a plain object the rules and the event builders read like the model (the ORM's
    instance bookkeeping is most of the cost of building thousands of them)."""
    row = {column.key: None for column in model.__table__.columns}
    row.update(values)
    return SimpleNamespace(**row)


def _row(obj: Any) -> dict[str, Any]:
    return dict(vars(obj))


class Replay:
    """Builds one issue step by step with the service's own rules, in memory."""

    def __init__(
        self,
        lineage: Lineage,
        category: CategoryRule,
        targets: sla.Targets,
        feedback_window_hours: float,
        neighbourhood_name: str,
    ) -> None:
        self.lineage = lineage
        self.category = category
        self.targets = targets
        self.window = feedback_window_hours
        self.neighbourhood_name = neighbourhood_name

    def build(self, ref: str, record: IssueRecord, now: datetime) -> Built:
        title = reports.clean_text(record.title, reports.MAX_TITLE, "title_invalid", "the title", required=False)
        description = reports.clean_text(
            record.description, reports.MAX_DESCRIPTION, "description_invalid", "a description"
        )
        location = reports.clean_location(record.location, required=record.source != "post")
        if record.source not in ("resident", "cadre"):
            raise InvalidArgument("source is resident or cadre", code="source_invalid")
        reporter = _person(record.reporter_id, "reporter_invalid", required=record.source == "resident")
        created_by = _person(record.created_by or reporter, "created_by_invalid")
        assignee = _person(record.assignee_id, "assignee_invalid", required=False)
        at = _time(record.reported_at, now, "reported_at")
        if len(record.steps) > MAX_STEPS:
            raise InvalidArgument(f"at most {MAX_STEPS} steps per issue", code="steps_too_many")
        issue = _new(
            Issue,
            id=new_id(),
            neighbourhood_id=self.lineage.neighbourhood_id,
            subdistrict_id=self.lineage.subdistrict_id,
            district_id=self.lineage.district_id,
            category_code=self.category.code,
            title=title,
            description=description,
            state=State.REPORTED.value,
            level=Level.NEIGHBOURHOOD.value,
            round=1,
            version=0,
            source=record.source,
            source_post_id=None,
            reporter_id=reporter or None,
            created_by=created_by,
            assignee_id=None,
            assignment_pending=False,
            assignment_attempts=0,
            household_id=location.household_id,
            building=location.building,
            address=location.address,
            lat=location.lat,
            lon=location.lon,
            photo_urls=[],
            public=record.public,
            reported_at=at,
            updated_at=at,
            escalated=False,
            reject_reason="",
            grid_service_code="",
            external_ref=ref,
        )
        built = Built(issue)
        self._clocks(built, sla.on_report(at, self.targets), at)
        reporter_role = ActorRole.REPORTER if record.source == "resident" else ActorRole.COMMITTEE
        self._record(
            built,
            "reported",
            created_by,
            reporter_role,
            at,
            to_state=State.REPORTED.value,
            text=description,
            data={"source": record.source, "category_code": self.category.code, "source_post_id": ""},
        )
        if assignee:
            self._assign(built, assignee, ROSTER_ACTOR, ActorRole.SYSTEM, at)
        built.events.append((events.REPORTED, events.reported_message(issue)))
        previous = at
        for number, step in enumerate(record.steps):
            when = _time(step.at, now, "at")
            if when < previous:
                raise InvalidArgument(f"step {number} is earlier than the one before it", code="steps_out_of_order")
            self._step(built, step, when, number)
            previous = when
        if issue.state == State.DISPATCHED.value:
            raise FailedPrecondition(
                "a historic dispatch ends with the grid's answer (nothing is sent to the grid again)",
                code="import_dispatch_open",
            )
        return built

    # --- one step ---------------------------------------------------------------------------------------
    def _step(self, built: Built, step: StepRecord, at: datetime, number: int) -> None:
        issue = built.issue
        if step.action == "rate":
            self._rate(built, step, at)
            return
        transition = ACTIONS.get(step.action)
        if transition is None:
            raise InvalidArgument(f"step {number}: unknown action", code="action_invalid")
        planned = plan(_position(issue), transition)
        note = reports.clean_text(step.note, reports.MAX_NOTE, "note_invalid", "a note", required=False)
        reason = reports.clean_reason(step.reason) if transition == Transition.REJECT else ""
        data: dict[str, Any] = {}
        if transition in (Transition.GRID_RETURNED, Transition.GRID_CLOSED):
            actor_id, role, kind = GRID_ACTOR, ActorRole.GRID, "grid"
            if transition == Transition.GRID_RETURNED:
                issue.grid_return_cause = "returned"
            data["grid_state"] = "returned" if transition == Transition.GRID_RETURNED else "closed"
        elif transition == Transition.CLOSE:
            if not feedback.expired(issue.feedback_due_at, at):
                raise FailedPrecondition(
                    "the platform closes a resolved issue only after the feedback window", code="feedback_window_open"
                )
            actor_id, role, kind = SYSTEM_ACTOR, ActorRole.SYSTEM, "system"
            note = note or "评价期内未收到评价，自动办结"
        else:
            actor_id = _person(step.actor_id, "actor_invalid")
            try:
                role = ActorRole(step.actor_role)
            except ValueError:
                raise InvalidArgument(
                    "actor_role is committee, subdistrict or district", code="actor_role_invalid"
                ) from None
            if role not in STAFF_ROLES:
                raise InvalidArgument("actor_role is committee, subdistrict or district", code="actor_role_invalid")
            staff = Principal(subject=actor_id, roles=frozenset({STAFF_ROLES[role](self.lineage)}))
            access.ensure_may_handle(staff, self.lineage, planned.from_level, transition)
            kind = "person"
            if transition == Transition.REJECT:
                issue.reject_reason = reason
            if transition == Transition.DISPATCH:
                data.update(self._dispatch(built, planned, step, actor_id, at))
            if issue.assignee_id is None and role == ActorRole.COMMITTEE:
                self._assign(built, actor_id, actor_id, role, at)
        self._apply(built, planned, actor_id, role, kind, at, note=note, reason=reason, data=data)

    def _dispatch(self, built: Built, planned: Step, step: StepRecord, actor_id: str, at: datetime) -> dict[str, Any]:
        issue = built.issue
        code = step.grid_service_code.strip() or self.category.grid_service_code
        if not code:
            raise FailedPrecondition(
                "this category has no grid service code; give one to dispatch", code="category_not_dispatchable"
            )
        if not catalogue.GRID_CODE.match(code):
            raise InvalidArgument("the grid service code is not valid", code="grid_service_code_invalid")
        number = sum(1 for d in built.dispatches if d.round == issue.round) + 1
        dispatch = _new(Dispatch, **grid.hand_over(issue, planned, number, code, actor_id, at))
        built.dispatches.append(dispatch)
        if not (issue.address or issue.building or issue.lat is not None):
            issue.address = self.neighbourhood_name
        return {"dispatch_id": dispatch.id, "grid_service_code": code, "imported": True}

    def _rate(self, built: Built, step: StepRecord, at: datetime) -> None:
        issue = built.issue
        if not issue.reporter_id or step.actor_id.strip() not in ("", issue.reporter_id):
            raise FailedPrecondition("only the reporter rates the result", code="not_reporter")
        if issue.state != State.RESOLVED.value:
            raise FailedPrecondition("the issue is not waiting for a verdict", code="not_awaiting_feedback")
        feedback.ensure_open(issue.feedback_due_at, at)
        if any(f.round == issue.round for f in built.feedback):
            raise FailedPrecondition("rated this round already", code="already_rated")
        verdict = feedback.validate(step.rating, step.fixed, step.note)
        row = _new(
            Feedback,
            id=new_id(),
            issue_id=issue.id,
            round=issue.round,
            rating=verdict.rating,
            fixed=verdict.fixed,
            comment=verdict.comment,
            level=issue.resolved_level or issue.level,
            reopened=verdict.reopens,
            rated_at=at,
        )
        built.feedback.append(row)
        issue.rating = verdict.rating
        self._record(
            built,
            "feedback",
            issue.reporter_id,
            ActorRole.REPORTER,
            at,
            text=verdict.comment,
            data={"rating": verdict.rating, "fixed": verdict.fixed, "level": row.level},
        )
        planned = plan(_position(issue), Transition.REOPEN if verdict.reopens else Transition.CLOSE)
        note = "居民对处理结果不满意，问题重新打开" if verdict.reopens else "居民确认问题已解决"
        self._apply(
            built,
            planned,
            issue.reporter_id,
            ActorRole.REPORTER,
            "person",
            at,
            note=note,
            data={"rating": verdict.rating},
        )
        built.events.append((events.RATED, events.rated_message(issue, row)))

    # --- what _apply_step, _apply_clocks, _record and _assign do in the service, in memory ----------------
    def _apply(
        self,
        built: Built,
        step: Step,
        actor_id: str,
        role: ActorRole,
        kind: str,
        at: datetime,
        *,
        note: str = "",
        reason: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        issue, t = built.issue, step.transition
        if sla.starts_new_round(step):
            issue.round += 1
        issue.state = step.to_state.value
        issue.level = step.to_level.value
        self._clocks(built, sla.on_step(step, at, self.targets), at)
        if t in (Transition.ESCALATE, Transition.AUTO_ESCALATE):
            issue.escalated = True
        if t in (Transition.RESOLVE, Transition.GRID_CLOSED):
            issue.resolved_at = at
            issue.resolved_level = step.from_level.value
            issue.feedback_due_at = feedback.feedback_due(at, self.window)
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
        self._record(
            built,
            "state_changed",
            actor_id,
            role,
            at,
            from_state=step.from_state.value,
            to_state=step.to_state.value,
            text=note or reason,
            data={"transition": step.subject_suffix, "from_level": step.from_level.value, **(data or {})},
        )
        built.events.append(
            (events.state_subject(step), events.state_changed_message(issue, step, actor_id, kind, at, note, reason))
        )

    def _clocks(self, built: Built, clock_plan: sla.ClockPlan, at: datetime) -> None:
        issue = built.issue
        running = [c for c in built.clocks if c.stopped_at is None]
        for stop in clock_plan.stops:
            for c in running:
                if c.stopped_at is None and c.clock == stop.clock.value and c.level == stop.level.value:
                    outcome = sla.stop_outcome(stop.outcome, c.due_at, at)
                    c.stopped_at = at
                    c.outcome = outcome.value
                    if outcome == sla.Outcome.LATE and c.breached_at is None:
                        self._breach(built, c, at)
        for start in clock_plan.starts:
            built.clocks.append(self._clock(issue, start.clock, start.level, at, start.due_at))
        if clock_plan.resume_resolution_at is not None:
            level = clock_plan.resume_resolution_at
            previous = [
                c
                for c in built.clocks
                if c.round == issue.round and c.clock == sla.Clock.RESOLUTION.value and c.level == level.value
            ]
            due_at = previous[-1].due_at if previous else sla.due(at, self.targets.resolution_hours)
            built.clocks.append(self._clock(issue, sla.Clock.RESOLUTION, level, at, due_at))
        live = [c for c in built.clocks if c.stopped_at is None]
        issue.response_due_at = min((c.due_at for c in live if c.clock == sla.Clock.RESPONSE.value), default=None)
        issue.resolution_due_at = min((c.due_at for c in live if c.clock == sla.Clock.RESOLUTION.value), default=None)

    @staticmethod
    def _clock(issue: Issue, clock: sla.Clock, level: Level, at: datetime, due_at: datetime) -> SlaClock:
        return _new(
            SlaClock,
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

    def _breach(self, built: Built, c: SlaClock, at: datetime) -> None:
        """A late stop the scheduler had not seen: recorded at the stop, never escalated afterwards."""
        issue = built.issue
        c.breached_at = at
        if any((b.clock, b.level, b.round) == (c.clock, c.level, c.round) for b in built.breaches):
            return
        notified = sla.notified_level(Level(c.level), Level(issue.dispatch_level) if issue.dispatch_level else None)
        breach = _new(
            SlaBreach,
            id=new_id(),
            issue_id=issue.id,
            round=c.round,
            clock=c.clock,
            level=c.level,
            clock_id=c.id,
            neighbourhood_id=issue.neighbourhood_id,
            due_at=c.due_at,
            detected_at=at,
            auto_escalated=False,
            notified_level=notified,
        )
        built.breaches.append(breach)
        self._record(
            built,
            "sla_breached",
            SYSTEM_ACTOR,
            ActorRole.SYSTEM,
            at,
            data={
                "clock": c.clock,
                "level": c.level,
                "round": c.round,
                "due_at": c.due_at.isoformat(),
                "notified_level": notified,
                "auto_escalated": False,
            },
        )
        built.events.append((events.SLA_BREACHED, events.sla_breached_message(issue, breach, False)))

    def _assign(self, built: Built, person: str, actor_id: str, role: ActorRole, at: datetime) -> None:
        issue = built.issue
        issue.assignee_id = person
        issue.assignment_pending = False
        self._record(
            built, "assigned", actor_id, role, at, data={"assignee_id": person, "fallback_to_secretary": False}
        )
        built.events.append((events.ASSIGNED, events.assigned_message(issue, False, at)))

    @staticmethod
    def _record(
        built: Built,
        kind: str,
        actor_id: str,
        role: ActorRole,
        at: datetime,
        *,
        from_state: str = "",
        to_state: str = "",
        text: str = "",
        data: dict[str, Any] | None = None,
    ) -> None:
        issue = built.issue
        issue.version += 1
        issue.updated_at = at
        built.entries.append(
            _new(
                TimelineEntry,
                id=new_id(),
                issue_id=issue.id,
                seq=issue.version,
                at=at,
                kind=kind,
                actor_id=actor_id,
                actor_role=role.value,
                from_state=from_state,
                to_state=to_state,
                level=issue.level,
                internal=False,
                text=text,
                photo_urls=[],
                data=data or {},
            )
        )


def _position(issue: Issue) -> Position:
    return Position(
        state=State(issue.state),
        level=Level(issue.level),
        state_before_dispatch=State(issue.state_before_dispatch) if issue.state_before_dispatch else None,
        dispatch_level=Level(issue.dispatch_level) if issue.dispatch_level else None,
    )


# An issue and its record as rows (every column: `_new`), in one statement per table and 1,000 rows.
_NEW_ISSUES = InsertMany(Issue.__table__, ["external_ref"], "id")
_TIMELINE, _CLOCKS, _BREACHES, _DISPATCHES, _FEEDBACK = (
    InsertMany(model.__table__) for model in (TimelineEntry, SlaClock, SlaBreach, Dispatch, Feedback)
)


class IssueImports:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], outbox: Outbox, clock: Clock, feedback_window_hours: float
    ) -> None:
        self.sessions = sessions
        self.statistics = PlannerStatistics()
        self.outbox = outbox
        self.clock = clock
        self.window = feedback_window_hours

    async def run(self, principal: Principal, records: Sequence[IssueRecord]) -> ImportOutcome:
        if not (principal.is_operator or principal.has(auth.SERVICE, "*")):
            raise PermissionDenied("imports are for platform operators and our services", code="import_forbidden")
        if not records:
            raise InvalidArgument("the batch is empty", code="import_batch_empty")
        if len(records) > MAX_BATCH:
            raise InvalidArgument(f"at most {MAX_BATCH} records per batch", code="import_batch_too_large")
        refs: list[str] = []
        for index, record in enumerate(records):
            with at_record(index, record.external_ref):
                ref = record.external_ref.strip()
                if not 1 <= len(ref) <= EXTERNAL_REF_MAX or any(ch in ref for ch in "\x00\r\n"):
                    raise InvalidArgument(
                        f"external_ref must be 1-{EXTERNAL_REF_MAX} characters", code="external_ref_invalid"
                    )
                if ref in refs:
                    raise InvalidArgument("the same external_ref twice in one batch", code="external_ref_repeated")
                refs.append(ref)
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = IssueRepository(session)
            lineages: dict[str, Lineage] = {}
            names: dict[str, str] = {}
            rules: dict[str, list[CategoryRule]] = {}
            for index, record in enumerate(records):
                nid = record.neighbourhood_id.strip()
                if nid and nid not in lineages:
                    with at_record(index, refs[index]):
                        lineages[nid] = await regions.lineage(session, nid)
                    names[nid] = await repo.neighbourhood_name(nid)
                    district = lineages[nid].district_id
                    if district not in rules:
                        rows, _ = await repo.categories(district)
                        rules[district] = [category_rule(r) for r in rows]
            targets = await self._targets(session, list(lineages))
            built: list[Built] = []
            for index, record in enumerate(records):
                with at_record(index, refs[index]):
                    nid = record.neighbourhood_id.strip()
                    if not nid:
                        raise InvalidArgument("neighbourhood_id is required", code="neighbourhood_required")
                    lineage = lineages[nid]
                    category = catalogue.find(rules[lineage.district_id], record.category_code.strip())
                    if category is None:
                        raise InvalidArgument("no such category in the district's catalogue", code="category_unknown")
                    n_all = targets.get((nid, ""))
                    n_cat = targets.get((nid, category.code))
                    hours = sla.Targets(
                        sla.effective_response_hours(category.response_hours, n_all, n_cat), category.resolution_hours
                    )
                    replay = Replay(lineage, category, hours, self.window, names[nid])
                    built.append(replay.build(refs[index], record, now))
            existing = await self._existing(session, refs)
            fresh = [b for b in built if b.issue.external_ref not in existing]
            inserted = await _NEW_ISSUES.rows(session, [_row(b.issue) for b in fresh])
            mine = [b for b in fresh if b.issue.id in inserted]
            for insert, pick in (
                (_TIMELINE, lambda b: b.entries),
                (_CLOCKS, lambda b: b.clocks),
                (_BREACHES, lambda b: b.breaches),
                (_DISPATCHES, lambda b: b.dispatches),
                (_FEEDBACK, lambda b: b.feedback),
            ):
                await insert.rows(session, [_row(obj) for b in mine for obj in pick(b)])
            await self.outbox.add_many(session, events.imported_messages([e for b in mine for e in b.events]))
            await self.statistics.wrote(
                session, len(mine), "issues", "issue_timeline", "sla_clocks", "issue_dispatches", "outbox"
            )
            made_refs = {b.issue.external_ref for b in mine}
            missing = [ref for ref in refs if ref not in made_refs]
            known = await self._existing(session, missing) if missing else {}
        outcome = ImportOutcome(received=len(refs), created=len(mine), skipped=len(refs) - len(mine))
        made = {b.issue.external_ref: b.issue for b in mine}
        for ref in refs:
            if ref in made:
                outcome.records.append((ref, made[ref].id, True, made[ref].state))
            else:
                issue_id, state = known.get(ref, ("", ""))
                outcome.records.append((ref, issue_id, False, state))
        return outcome

    @staticmethod
    async def _existing(session: AsyncSession, refs: Sequence[str]) -> dict[str, tuple[str, str]]:
        issues = Issue.__table__.c
        rows = await rows_among(session, (issues.external_ref, issues.id, issues.state), issues.external_ref, refs)
        return {row[0]: (row[1], row[2]) for row in rows}

    @staticmethod
    async def _targets(session: AsyncSession, neighbourhoods: list[str]) -> dict[tuple[str, str], float]:
        if not neighbourhoods:
            return {}
        rows = await session.execute(
            select(ResponseTarget.neighbourhood_id, ResponseTarget.category_code, ResponseTarget.response_hours).where(
                ResponseTarget.neighbourhood_id.in_(neighbourhoods)
            )
        )
        return {(r[0], r[1]): float(r[2]) for r in rows}
