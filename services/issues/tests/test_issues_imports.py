"""ImportIssues over a real database: historic timelines replayed through the state machine and the SLA rules,
idempotent by external_ref, refused whole (nothing written) when one record is impossible, for operators and our
services only, and never sent to the grid again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from shequtong_issues.domain import reports
from shequtong_issues.imports import IssueRecord, StepRecord
from shequtong_issues.models import Dispatch, Issue, SlaBreach, SlaClock
from sqlalchemy import select

from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.db import outbox
from shequtong_kit.errors import DomainError

from . import test_issues_service as base
from .test_issues_service import World, count, events_of, timeline

# The same database fixtures (SQLite, and PostgreSQL when it answers) as the service's own tests.
workdir, database_url, world = base.workdir, base.database_url, base.world

OPS = Principal(subject="svc:ops", roles=parse_roles(["operator@*"]))


def record(w: World, ref: str, steps: list[StepRecord], hours_ago: float = 24 * 30) -> IssueRecord:
    return IssueRecord(
        external_ref=f"{w.suffix}-{ref}",
        neighbourhood_id=w.n,
        category_code="rubbish",
        title="楼下垃圾",
        description="3号楼下垃圾堆了三天",
        location=reports.Location(building="3号楼"),
        public=True,
        source="resident",
        reporter_id=w.alice.subject,
        created_by=w.alice.subject,
        assignee_id=w.cadre.subject,
        reported_at=w.clock.now() - timedelta(hours=hours_ago),
        steps=steps,
    )


def at(w: World, hours_ago: float) -> object:
    return w.clock.now() - timedelta(hours=hours_ago)


def solved(w: World, start: float = 24 * 30) -> list[StepRecord]:
    cadre = w.cadre.subject
    return [
        StepRecord("acknowledge", at(w, start - 2), cadre, "committee"),  # type: ignore[arg-type]
        StepRecord("start", at(w, start - 3), cadre, "committee"),  # type: ignore[arg-type]
        StepRecord("resolve", at(w, start - 20), cadre, "committee", note="已清运"),  # type: ignore[arg-type]
        StepRecord("rate", at(w, start - 30), w.alice.subject, "reporter", rating=5, fixed=True),  # type: ignore[arg-type]
    ]


async def test_historic_issues_import_with_their_record_once(world: World) -> None:
    w = world
    late = [
        StepRecord("acknowledge", at(w, 24 * 20 - 20), w.cadre.subject, "committee"),  # type: ignore[arg-type]
        StepRecord("dispatch", at(w, 24 * 20 - 21), w.cadre.subject, "committee"),  # type: ignore[arg-type]
        StepRecord("grid_closed", at(w, 24 * 20 - 40)),  # type: ignore[arg-type]
        StepRecord("close", at(w, 24 * 10)),  # type: ignore[arg-type]
    ]
    batch = [record(w, "a", solved(w)), record(w, "b", late, hours_ago=24 * 20), record(w, "c", [], hours_ago=2)]
    first = await w.service.imports.run(OPS, batch)
    assert (first.created, first.skipped) == (3, 0)
    assert [r[3] for r in first.records] == ["closed", "closed", "reported"]
    again = await w.service.imports.run(OPS, batch)
    assert (again.created, again.skipped) == (0, 3)
    assert [r[1] for r in again.records] == [r[1] for r in first.records]

    solved_id, late_id, open_id = (r[1] for r in first.records)
    kinds = [(e.kind, e.to_state) for e in await timeline(w, solved_id)]
    assert kinds == [
        ("reported", "reported"),
        ("assigned", ""),
        ("state_changed", "acknowledged"),
        ("state_changed", "in_progress"),
        ("state_changed", "resolved"),
        ("feedback", ""),
        ("state_changed", "closed"),
    ]
    entries = await timeline(w, solved_id)
    assert entries[0].at == batch[0].reported_at  # backdated, every entry at its own time
    # Acknowledged after 20 hours: the 15-hour response clock stopped late, a breach on record, no escalation.
    assert await count(w, SlaBreach, issue_id=late_id, clock="response") == 1
    assert await count(w, SlaClock, issue_id=late_id, outcome="late") == 1
    assert await count(w, Dispatch, issue_id=late_id) == 1
    subjects = await events_of(w, late_id)
    # Every fact its event, in the record's order; never a dispatch_requested (not sent to the grid again).
    assert subjects == [
        "issues.record.assigned",
        "issues.issue.reported",
        "issues.issue.sla_breached",
        "issues.issue.acknowledged",
        "issues.issue.dispatched",
        "issues.issue.resolved",
        "issues.issue.closed",
    ]
    # ... travelling packed: the batch's events are a few `issues.record.imported` rows, not one row each.
    async with w.service.sessions() as session:
        sent = (await session.execute(select(outbox.c.subject))).scalars().all()
    assert sent and set(sent) == {"issues.record.imported"} and len(sent) < len(subjects)
    got = await w.service.get(w.cadre, open_id)
    assert got.issue.state == "reported" and got.issue.response_due_at == batch[2].reported_at + timedelta(hours=15)


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ([StepRecord("resolve", None, "x", "committee")], "at_required"),
        ([StepRecord("close", None)], "at_required"),
        (["resolve-first"], "illegal_transition"),
        (["dispatch-open"], "import_dispatch_open"),
        (["escalated-by-committee"], "level_not_allowed"),
        (["out-of-order"], "steps_out_of_order"),
        (["reject-without-reason"], "reason_required"),
        (["rate-by-someone-else"], "not_reporter"),
    ],
)
async def test_an_impossible_timeline_refuses_the_batch_and_writes_nothing(
    world: World, steps: list[object], code: str
) -> None:
    w = world
    cadre = w.cadre.subject
    named = {
        "resolve-first": [StepRecord("resolve", at(w, 100), cadre, "committee")],
        "dispatch-open": [StepRecord("dispatch", at(w, 100), cadre, "committee")],
        "escalated-by-committee": [
            StepRecord("escalate", at(w, 100), cadre, "committee"),
            StepRecord("acknowledge", at(w, 90), cadre, "committee"),
        ],
        "out-of-order": [
            StepRecord("acknowledge", at(w, 100), cadre, "committee"),
            StepRecord("start", at(w, 200), cadre, "committee"),
        ],
        "reject-without-reason": [StepRecord("reject", at(w, 100), cadre, "committee")],
        "rate-by-someone-else": [
            *solved(w)[:3],
            StepRecord("rate", at(w, 24 * 30 - 30), w.bob.subject, "reporter", rating=5, fixed=True),
        ],
    }
    chosen = named.get(steps[0], steps) if isinstance(steps[0], str) else steps  # type: ignore[arg-type]
    before = await count(w, Issue, neighbourhood_id=w.n)
    with pytest.raises(DomainError) as caught:
        await w.service.imports.run(OPS, [record(w, "fine", solved(w)), record(w, "bad", chosen)])  # type: ignore[arg-type]
    assert caught.value.code == code
    assert caught.value.metadata["record"] == "1"
    assert await count(w, Issue, neighbourhood_id=w.n) == before


async def test_only_operators_and_services_import_issues(world: World) -> None:
    w = world
    for who in (w.cadre, w.staff, w.alice):
        with pytest.raises(DomainError) as caught:
            await w.service.imports.run(who, [record(w, "x", [])])
        assert caught.value.code == "import_forbidden"
    service = Principal(subject="svc:bench", roles=parse_roles(["service@*"]))
    assert (await w.service.imports.run(service, [record(w, "svc", [])])).created == 1
    with pytest.raises(DomainError) as caught:
        await w.service.imports.run(OPS, [])
    assert caught.value.code == "import_batch_empty"
