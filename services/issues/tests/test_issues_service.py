"""The use cases over a real database (SQLite, and PostgreSQL when it answers), migrated by the service's
own Alembic migrations; time from a manual clock; events read back from the outbox table."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from shequtong_issues.domain import reports
from shequtong_issues.domain.access import View
from shequtong_issues.domain.states import Transition
from shequtong_issues.models import Issue, SlaBreach, SlaClock, TimelineEntry
from shequtong_issues.onduty import Duty
from shequtong_issues.service import Idem, IssuesService, IssueView, ReportCommand, TransitionCommand
from shequtong_issues.servicer import issue_to_proto
from shequtong_issues.settings import IssuesSettings
from sqlalchemy import func, select

from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import grid_events_pb2 as grid_ev
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.issues.v1 import issues_pb2 as pb
from shequtong_kit import regions
from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.clock import ManualClock
from shequtong_kit.consumer import ReceivedEvent
from shequtong_kit.db import create_engine, outbox, session_factory
from shequtong_kit.errors import DomainError
from shequtong_kit.outbox import Outbox
from shequtong_kit.packs import PACKS
from shequtong_kit.proto import ts
from shequtong_kit.testing import Databases, postgres_available, temp_workdir


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with temp_workdir("issues-svc-") as path:
        yield path


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not postgres_available(), reason="no PG"))]


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    dbs = Databases(workdir)
    if request.param == "sqlite":
        dbs.use_postgres = False
    url = dbs.create(f"issues_{request.param}")
    subprocess.run(
        [sys.executable, "-m", "shequtong_issues", "migrate"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
        timeout=120,
    )
    yield url
    dbs.drop_all()


class FakeOnDuty:
    """identity's roster as the test sets it; None plays "identity is unavailable"."""

    def __init__(self, person: str) -> None:
        self.person: str | None = person
        self.calls = 0

    async def lookup(self, neighbourhood_id: str, at: datetime) -> Duty | None:
        self.calls += 1
        return Duty(self.person, False) if self.person else None


@dataclass
class World:
    service: IssuesService
    clock: ManualClock
    onduty: FakeOnDuty
    n: str
    s: str
    d: str
    other_n: str
    suffix: str

    def who(self, subject: str, *roles: str) -> Principal:
        return Principal(
            subject=f"{subject}-{self.suffix}",
            roles=parse_roles(r.format(n=self.n, s=self.s, d=self.d) for r in roles),
        )

    @property
    def alice(self) -> Principal:
        return self.who("alice", "resident@n:{n}")

    @property
    def bob(self) -> Principal:
        return self.who("bob", "resident@n:{n}")

    @property
    def cadre(self) -> Principal:
        return self.who("cadre", "cadre@n:{n}", "resident@n:{n}")

    @property
    def staff(self) -> Principal:
        return self.who("sub-staff", "subdistrict_staff@s:{s}")

    @property
    def foreign_cadre(self) -> Principal:
        return Principal(subject="far", roles=parse_roles([f"cadre@n:{self.other_n}"]))


@pytest.fixture
async def world(database_url: str) -> AsyncIterator[World]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    clock = ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
    suffix = uuid.uuid4().hex[:8]
    onduty = FakeOnDuty(f"cadre-{suffix}")
    settings = IssuesSettings(database_url=database_url, nats_url="nats://unused")
    service = IssuesService(settings, sessions, Outbox("issues", clock), clock, onduty)
    n, s, d, other = f"n-{suffix}", f"s-{suffix}", f"d-{suffix}", f"n9-{suffix}"
    async with sessions() as session, session.begin():
        for neighbourhood, sub, district in ((n, s, d), (other, f"s9-{suffix}", f"d9-{suffix}")):
            await regions.record_neighbourhood(
                session,
                identity_ev.NeighbourhoodCreated(
                    neighbourhood_id=neighbourhood,
                    subdistrict_id=sub,
                    district_id=district,
                    code=neighbourhood,
                    name="淞南十村",
                ),
            )
    yield World(service, clock, onduty, n, s, d, other, suffix)
    await engine.dispose()


def idem(key: str | None = None) -> Idem:
    return Idem(key, "Test", pb.GetIssueRequest(id=key or ""))


def pair(item: IssueView, extra: object) -> IssueView:
    return item


async def report(w: World, who: Principal | None = None, key: str | None = None, **over: object) -> Issue:
    cmd = ReportCommand(
        neighbourhood_id=w.n,
        category_code=str(over.get("category_code", "rubbish")),
        title="楼下垃圾",
        description=str(over.get("description", "3号楼下垃圾堆了三天")),
        location=reports.Location(building="3号楼"),
        photo_urls=["https://media.example/1.jpg"],
        public=bool(over.get("public", True)),
    )
    made: list[Issue] = []

    def pack(item: IssueView) -> pb.ReportIssueResponse:
        made.append(item.issue)
        return pb.ReportIssueResponse(issue=issue_to_proto(item))

    reply = await w.service.report(who or w.alice, cmd, idem(key), pb.ReportIssueResponse, pack)
    if made:
        return made[0]
    return (await w.service.get(w.cadre, reply.issue.id)).issue


async def step(w: World, who: Principal, issue_id: str, t: Transition, **kw: str) -> Issue:
    item = await w.service.transition(
        who,
        TransitionCommand(issue_id, t, **kw),
        idem(),
        pb.GetIssueRequest,
        pair,  # type: ignore[arg-type]
    )
    return item.issue


async def events_of(w: World, issue_id: str) -> list[str]:
    """The subjects of the events sent about the issue, in order (an import's packs opened)."""
    async with w.service.sessions() as session:
        rows = (await session.execute(select(outbox.c.subject, outbox.c.payload).order_by(outbox.c.id))).all()
    subjects: list[str] = []
    for subject, payload in rows:
        if subject in PACKS:
            held = PACKS[subject].items(PACKS[subject].message.FromString(payload))
            subjects += [item_subject for item_subject, message in held if message.issue_id == issue_id]
        elif issue_id.encode() in payload:
            subjects.append(subject)
    return subjects


async def timeline(w: World, issue_id: str) -> list[TimelineEntry]:
    entries, _, _ = await w.service.timeline(w.cadre, issue_id, 0, 100)
    return entries


async def count(w: World, model: type, **where: object) -> int:
    async with w.service.sessions() as session:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return int((await session.execute(query)).scalar_one())


def post(w: World, post_id: str, kind: str = "neighbourhood_matters", mentions: bool = True) -> boards_ev.PostCreated:
    return boards_ev.PostCreated(
        post_id=post_id,
        board_kind=kind,
        neighbourhood_id=w.n,
        author_id=w.alice.subject,
        title="垃圾没人清",
        body="@居委会 楼下垃圾堆了三天，异味很大",
        mentions_committee=mentions,
        image_urls=["https://media.example/p.jpg", "uploads/2026/p2.jpg", "not a url"],
    )


def received(event_id: str) -> ReceivedEvent:
    return ReceivedEvent(event_id, "boards.post.created", "", "", "", b"", {}, 1)


# --- collection -----------------------------------------------------------------------------------------


async def test_a_report_starts_clocks_assigns_and_announces(world: World) -> None:
    issue = await report(world)
    assert (issue.state, issue.level, issue.assignee_id) == ("reported", "neighbourhood", world.cadre.subject)
    assert issue.response_due_at == world.clock.now() + timedelta(hours=15)
    assert issue.resolution_due_at == world.clock.now() + timedelta(hours=48)
    assert [e.kind for e in await timeline(world, issue.id)] == ["reported", "assigned"]
    assert await events_of(world, issue.id) == ["issues.record.assigned", "issues.issue.reported"]


async def test_a_report_and_a_dispatch_write_the_issue_once_each(world: World) -> None:
    """A report inserts its issue once (assignee, clocks' due times and version included) and a dispatch
    updates it once: reads in between do not flush it part-way."""
    from sqlalchemy import event

    engine = world.service.sessions.kw["bind"].sync_engine
    writes: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        if statement.lstrip().upper().startswith(("INSERT INTO ISSUES ", "UPDATE ISSUES ")):
            writes.append(statement.split()[0].upper())

    event.listen(engine, "before_cursor_execute", seen)
    try:
        issue = await report(world)
        assert writes == ["INSERT"]
        writes.clear()
        dispatched = await step(world, world.cadre, issue.id, Transition.DISPATCH)
        assert writes == ["UPDATE"]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert (issue.assignee_id, issue.version) == (world.cadre.subject, 2)
    assert (dispatched.state, dispatched.dispatch_id) == ("dispatched", f"{issue.id}:r1:d1")
    async with world.service.sessions() as session:
        stored = await session.get(Issue, issue.id)
    assert stored is not None
    assert (stored.state, stored.dispatch_id, stored.version) == ("dispatched", dispatched.dispatch_id, 3)
    assert stored.response_due_at is None, "the dispatch answered the report"


async def test_the_same_idempotency_key_reports_once(world: World) -> None:
    key = uuid.uuid4().hex
    first = await report(world, key=key)
    again = await report(world, key=key)
    assert again.id == first.id
    assert await count(world, Issue, neighbourhood_id=world.n) == 1


async def test_bad_reports_change_nothing(world: World) -> None:
    for over, code in [
        ({"description": " "}, "description_invalid"),
        ({"category_code": "no_such"}, "category_unknown"),
    ]:
        with pytest.raises(DomainError) as refused:
            await report(world, **over)
        assert refused.value.code == code
    with pytest.raises(DomainError) as outsider:
        await report(world, who=world.foreign_cadre)
    assert outsider.value.code == "not_a_member"
    assert await count(world, Issue, neighbourhood_id=world.n) == 0


async def test_one_issue_per_post_however_often_delivered(world: World) -> None:
    post_id = uuid.uuid4().hex
    for delivery in range(3):
        async with world.service.sessions() as session, session.begin():
            await world.service.collect_post(session, post(world, post_id), received(f"ev-{delivery}"))
    async with world.service.sessions() as session:
        issue = (await session.execute(select(Issue).where(Issue.source_post_id == post_id))).scalar_one()
    assert (issue.source, issue.reporter_id, issue.category_code) == ("post", world.alice.subject, "rubbish")
    assert issue.photo_urls == ["https://media.example/p.jpg", "uploads/2026/p2.jpg"]
    assert await count(world, Issue, source_post_id=post_id) == 1


async def test_concurrent_deliveries_of_one_post_race_into_one_issue(world: World) -> None:
    post_id = uuid.uuid4().hex

    async def deliver(n: int) -> str:
        try:
            async with world.service.sessions() as session, session.begin():
                await world.service.collect_post(session, post(world, post_id), received(f"race-{n}"))
            return "ok"
        except Exception as exc:  # the loser's unique violation, retried by the consumer's redelivery
            return type(exc).__name__

    await asyncio.gather(deliver(1), deliver(2))
    assert await count(world, Issue, source_post_id=post_id) == 1


async def test_posts_elsewhere_are_not_issues(world: World) -> None:
    post_id = uuid.uuid4().hex
    async with world.service.sessions() as session, session.begin():
        await world.service.collect_post(session, post(world, post_id, "announcements", False), received("x"))
    assert await count(world, Issue, source_post_id=post_id) == 0
    async with world.service.sessions() as session, session.begin():
        await world.service.collect_post(session, post(world, post_id, "announcements", True), received("y"))
    assert await count(world, Issue, source_post_id=post_id) == 1, "an @committee post anywhere is collected"


async def test_identity_down_means_assigned_later_never_lost(world: World) -> None:
    world.onduty.person = None
    issue = await report(world)
    assert issue.assignee_id is None and issue.assignment_pending
    assert await world.service.assign_pending_once() == 0
    world.onduty.person = f"cadre-later-{world.suffix}"
    assert await world.service.assign_pending_once() >= 1
    item = await world.service.get(world.cadre, issue.id)
    assert item.issue.assignee_id == f"cadre-later-{world.suffix}" and not item.issue.assignment_pending
    assert "issues.record.assigned" in await events_of(world, issue.id)


# --- handling ---------------------------------------------------------------------------------------------


async def test_the_whole_way_with_a_clock_per_level(world: World) -> None:
    issue = await report(world)
    world.clock.advance(hours=1)
    await step(world, world.cadre, issue.id, Transition.ACKNOWLEDGE, note="我去看看")
    world.clock.advance(hours=1)
    with pytest.raises(DomainError) as hidden:
        await step(world, world.staff, issue.id, Transition.DISPATCH)
    assert hidden.value.code == "issue_not_found", "sub-district staff see only what is escalated to them"
    await step(world, world.cadre, issue.id, Transition.ESCALATE, note="需要街镇协调")
    with pytest.raises(DomainError) as low:
        await step(world, world.cadre, issue.id, Transition.DISPATCH)
    assert low.value.code == "level_not_allowed"
    world.clock.advance(hours=1)
    dispatched = await step(world, world.staff, issue.id, Transition.DISPATCH)
    assert (dispatched.state, dispatched.level, dispatched.grid_service_code) == ("dispatched", "grid", "01-02")
    dispatch_id = dispatched.dispatch_id
    assert dispatch_id and dispatch_id.startswith(issue.id)
    async with world.service.sessions() as session, session.begin():
        update = grid_ev.TicketStatusChanged(
            ticket_id="t1",
            issue_id=issue.id,
            dispatch_id=dispatch_id,
            state="closed",
            grid_update_id="u-closed",
            description="已清运",
            occurred_at=ts(world.clock.now()),
        )
        await world.service.grid_status(session, update, received("g1"))
    async with world.service.sessions() as session, session.begin():
        await world.service.grid_status(session, update, received("g1-again"))
    item = await world.service.get(world.alice, issue.id)
    assert (item.issue.state, item.issue.resolved_level) == ("resolved", "grid")
    rated = await world.service.rate(
        world.alice,
        issue.id,
        2,
        False,
        "没清干净",
        idem(),
        pb.GetIssueRequest,
        pair,  # type: ignore[arg-type]
    )
    assert (rated.issue.state, rated.issue.level, rated.issue.round) == ("reopened", "neighbourhood", 2)
    entries = await timeline(world, issue.id)
    changes = [(e.from_state, e.to_state, e.actor_role) for e in entries if e.kind == "state_changed"]
    assert changes == [
        ("reported", "acknowledged", "committee"),
        ("acknowledged", "escalated", "committee"),
        ("escalated", "dispatched", "subdistrict"),
        ("dispatched", "resolved", "grid"),
        ("resolved", "reopened", "reporter"),
    ]
    assert sum(1 for e in entries if e.kind == "grid_status") == 1, "one grid update applied once"
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    async with world.service.sessions() as session:
        clocks = (
            await session.execute(select(SlaClock).where(SlaClock.issue_id == issue.id).order_by(SlaClock.id))
        ).scalars()
        summary = [(c.round, c.clock, c.level, c.outcome) for c in clocks]
    assert summary == [
        (1, "response", "neighbourhood", "met"),
        (1, "resolution", "neighbourhood", "handed_over"),
        (1, "response", "subdistrict", "met"),
        (1, "resolution", "subdistrict", "handed_over"),
        (1, "resolution", "grid", "met"),
        (2, "response", "neighbourhood", "running"),
        (2, "resolution", "neighbourhood", "running"),
    ]
    subjects = await events_of(world, issue.id)
    for subject in (
        "issues.issue.acknowledged",
        "issues.issue.escalated",
        "issues.issue.dispatched",
        "issues.issue.dispatch_requested",
        "issues.issue.resolved",
        "issues.issue.rated",
        "issues.issue.reopened",
    ):
        assert subjects.count(subject) == 1, subject


async def test_an_illegal_transition_changes_nothing(world: World) -> None:
    issue = await report(world)
    await step(world, world.cadre, issue.id, Transition.ACKNOWLEDGE)
    before = await world.service.get(world.cadre, issue.id)
    published = len(await events_of(world, issue.id))
    with pytest.raises(DomainError) as twice:
        await step(world, world.cadre, issue.id, Transition.ACKNOWLEDGE)
    assert twice.value.code == "illegal_transition"
    after = await world.service.get(world.cadre, issue.id)
    assert after.issue.version == before.issue.version
    assert len(await events_of(world, issue.id)) == published
    fresh = await report(world)
    with pytest.raises(DomainError) as unacknowledged:
        await step(world, world.cadre, fresh.id, Transition.RESOLVE)
    assert unacknowledged.value.code == "illegal_transition"
    assert (await world.service.get(world.cadre, fresh.id)).issue.state == "reported"


async def test_residents_cannot_handle_and_foreigners_cannot_see(world: World) -> None:
    issue = await report(world)
    with pytest.raises(DomainError) as resident:
        await step(world, world.alice, issue.id, Transition.ACKNOWLEDGE)
    assert resident.value.code == "not_allowed"
    with pytest.raises(DomainError) as foreign:
        await world.service.get(world.foreign_cadre, issue.id)
    assert foreign.value.code == "issue_not_found"
    masked = await world.service.get(world.bob, issue.id)
    assert masked.view == View.PUBLIC


async def test_reject_needs_a_reason_and_merge_a_live_duplicate(world: World) -> None:
    first = await report(world)
    second = await report(world)
    with pytest.raises(DomainError) as no_reason:
        await step(world, world.cadre, first.id, Transition.REJECT)
    assert no_reason.value.code == "reason_required"
    with pytest.raises(DomainError) as itself:
        await step(world, world.cadre, first.id, Transition.MERGE, duplicate_of_id=first.id)
    assert itself.value.code == "merge_target_invalid"
    merged = await step(world, world.cadre, second.id, Transition.MERGE, duplicate_of_id=first.id)
    assert (merged.state, merged.duplicate_of_id) == ("merged", first.id)
    assert "merged_in" in [e.kind for e in await timeline(world, first.id)]
    rejected = await step(world, world.cadre, first.id, Transition.REJECT, reason="属于物业职责")
    assert (rejected.state, rejected.reject_reason) == ("rejected", "属于物业职责")
    third = await report(world)
    with pytest.raises(DomainError) as closed_target:
        await step(world, world.cadre, third.id, Transition.MERGE, duplicate_of_id=first.id)
    assert closed_target.value.code == "merge_target_closed"


async def test_other_category_needs_a_grid_code_to_dispatch(world: World) -> None:
    issue = await report(world, category_code="other")
    with pytest.raises(DomainError) as refused:
        await step(world, world.cadre, issue.id, Transition.DISPATCH)
    assert refused.value.code == "category_not_dispatchable"
    dispatched = await step(world, world.cadre, issue.id, Transition.DISPATCH, grid_service_code="05-02")
    assert dispatched.grid_service_code == "05-02"


async def test_a_dispatch_always_says_where(world: World) -> None:
    from shequtong.events.v1 import issues_events_pb2 as issues_ev

    post_id = uuid.uuid4().hex
    async with world.service.sessions() as session, session.begin():
        await world.service.collect_post(session, post(world, post_id), received("w1"))
        issue_id = (await session.execute(select(Issue.id).where(Issue.source_post_id == post_id))).scalar_one()
    await step(world, world.cadre, issue_id, Transition.DISPATCH)
    second = await report(world)
    await step(world, world.cadre, second.id, Transition.DISPATCH, address="3号楼东侧")
    async with world.service.sessions() as session:
        payloads = (
            await session.execute(select(outbox.c.payload).where(outbox.c.subject == "issues.issue.dispatch_requested"))
        ).scalars()
        requests = {m.issue_id: m for m in (issues_ev.IssueDispatchRequested.FromString(p) for p in payloads)}
    assert requests[issue_id].address == "淞南十村", "a post without a location goes out with the neighbourhood"
    assert requests[issue_id].grid_service_code == "01-02"
    assert requests[second.id].address == "3号楼东侧 3号楼"
    assert len(requests[issue_id].dispatch_id) <= 64


async def test_grid_failure_goes_back_to_the_dispatching_level(world: World) -> None:
    issue = await report(world)
    await step(world, world.cadre, issue.id, Transition.START)
    dispatched = await step(world, world.cadre, issue.id, Transition.DISPATCH)
    async with world.service.sessions() as session, session.begin():
        await world.service.grid_failed(
            session,
            grid_ev.TicketFailed(ticket_id="t9", issue_id=issue.id, dispatch_id=dispatched.dispatch_id, reason="400"),
            received("f1"),
        )
    item = await world.service.get(world.cadre, issue.id)
    assert (item.issue.state, item.issue.level) == ("in_progress", "neighbourhood")
    again = await step(world, world.cadre, issue.id, Transition.DISPATCH)
    assert again.dispatch_id != dispatched.dispatch_id, "a new dispatch gets a new id"


# --- clocks --------------------------------------------------------------------------------------------


async def test_two_schedulers_record_one_breach_and_escalate_once(world: World, database_url: str) -> None:
    issue = await report(world)
    other_engine = create_engine(database_url)
    replica = IssuesService(
        world.service.settings,
        session_factory(other_engine),
        Outbox("issues", world.clock),
        world.clock,
        world.onduty,
    )
    try:
        world.clock.advance(hours=15, minutes=1)
        await asyncio.gather(world.service.scan_breaches_once(), replica.scan_breaches_once())
        await asyncio.gather(world.service.scan_breaches_once(), replica.scan_breaches_once())
    finally:
        await other_engine.dispose()
    assert await count(world, SlaBreach, issue_id=issue.id) == 1
    item = await world.service.get(world.staff, issue.id)
    assert (item.issue.state, item.issue.level, item.issue.escalated) == ("escalated", "subdistrict", True)
    subjects = await events_of(world, issue.id)
    assert subjects.count("issues.issue.sla_breached") == 1
    assert subjects.count("issues.issue.escalated") == 1
    escalations = [e for e in await timeline(world, issue.id) if e.to_state == "escalated"]
    assert [(e.actor_role, e.actor_id) for e in escalations] == [("system", "system:sla-scheduler")]
    _, breaches = await world.service.sla_of(world.staff, issue.id)
    assert [(b.clock, b.level, b.auto_escalated, b.notified_level) for b in breaches] == [
        ("response", "neighbourhood", True, "subdistrict")
    ]


async def test_an_acknowledged_issue_is_not_escalated_and_a_late_response_is_recorded(world: World) -> None:
    on_time = await report(world)
    late = await report(world)
    await step(world, world.cadre, on_time.id, Transition.ACKNOWLEDGE)
    world.clock.advance(hours=16)
    await step(world, world.cadre, late.id, Transition.ACKNOWLEDGE)
    stats = await world.service.scan_breaches_once()
    assert stats.escalations == 0
    assert await count(world, SlaBreach, issue_id=on_time.id) == 0
    assert await count(world, SlaBreach, issue_id=late.id) == 1, "late response recorded at the step"
    item = await world.service.get(world.cadre, late.id)
    assert item.issue.state == "acknowledged"


async def test_unanswered_feedback_closes_after_the_window(world: World) -> None:
    issue = await report(world)
    await step(world, world.cadre, issue.id, Transition.START)
    await step(world, world.cadre, issue.id, Transition.RESOLVE, note="已清理")
    world.clock.advance(hours=73)
    assert await world.service.close_unanswered_once() >= 1
    item = await world.service.get(world.alice, issue.id)
    assert item.issue.state == "closed"
    with pytest.raises(DomainError) as too_late:
        await world.service.rate(world.alice, issue.id, 5, True, "", idem(), pb.GetIssueRequest, pair)  # type: ignore[arg-type]
    assert too_late.value.code == "not_awaiting_feedback"


async def test_only_the_reporter_rates_and_only_once(world: World) -> None:
    issue = await report(world)
    await step(world, world.cadre, issue.id, Transition.START)
    await step(world, world.cadre, issue.id, Transition.RESOLVE)
    with pytest.raises(DomainError) as other:
        await world.service.rate(world.bob, issue.id, 5, True, "", idem(), pb.GetIssueRequest, pair)  # type: ignore[arg-type]
    assert other.value.code == "not_reporter"
    done = await world.service.rate(world.alice, issue.id, 4, True, "好", idem(), pb.GetIssueRequest, pair)  # type: ignore[arg-type]
    assert done.issue.state == "closed"
    with pytest.raises(DomainError) as twice:
        await world.service.rate(world.alice, issue.id, 1, False, "", idem(), pb.GetIssueRequest, pair)  # type: ignore[arg-type]
    assert twice.value.code == "not_awaiting_feedback"


# --- views ---------------------------------------------------------------------------------------------


async def test_queues(world: World) -> None:
    private = await report(world, public=False)
    public = await report(world, who=world.bob)
    escalated = await report(world)
    await step(world, world.cadre, escalated.id, Transition.ESCALATE)

    async def ids(who: Principal, scope: str, **kw: object) -> list[str]:
        result = await world.service.list_issues(
            who,
            scope,
            str(kw.get("n", world.n)),
            str(kw.get("s", "")),
            list(kw.get("states", [])),  # type: ignore[call-overload]
            "",
            bool(kw.get("overdue", False)),
            None,
            50,
        )
        return [i.issue.id for i in result.items]

    assert set(await ids(world.cadre, "neighbourhood")) == {private.id, public.id, escalated.id}
    assert set(await ids(world.alice, "public")) == {public.id, escalated.id}
    assert set(await ids(world.alice, "reported")) == {private.id, escalated.id}
    assert set(await ids(world.cadre, "assigned")) == {private.id, public.id, escalated.id}
    assert await ids(world.staff, "subdistrict", n="", s=world.s) == [escalated.id]
    assert await ids(world.staff, "neighbourhood") == [escalated.id]
    assert await ids(world.cadre, "neighbourhood", states=["escalated"]) == [escalated.id]
    assert await ids(world.cadre, "neighbourhood", overdue=True) == []
    world.clock.advance(hours=16)
    overdue = set(await ids(world.cadre, "neighbourhood", overdue=True))
    assert overdue == {private.id, public.id, escalated.id}, "the sub-district's own 15 hours are up too"
    for who, scope in ((world.alice, "neighbourhood"), (world.foreign_cadre, "neighbourhood")):
        with pytest.raises(DomainError):
            await ids(who, scope)
    with pytest.raises(DomainError):
        await ids(world.foreign_cadre, "public")
    counts = await world.service.count(world.staff, "subdistrict", "", world.s, [], "", False)
    assert counts.total == 3 and counts.by_state == {"reported": 2, "escalated": 1}
    assert counts.by_neighbourhood == [(world.n, 3, 3, 3)]


async def test_keyset_pages(world: World) -> None:
    made = [(await report(world)).id for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await world.service.list_issues(world.cadre, "neighbourhood", world.n, "", [], "", False, cursor, 2)
        seen += [i.issue.id for i in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == sorted(made, reverse=True)
