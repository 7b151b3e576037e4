"""An import of historic issues sends their events packed (`issues.record.imported`): insights counts them
and keeps each issue's facts exactly as if every event had come alone."""

from __future__ import annotations

import uuid
from datetime import datetime

from shequtong_insights.consumers import Projector
from shequtong_insights.models import DailyCounter, Issue
from shequtong_insights.service import InsightsService
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_kit.clock import ManualClock
from shequtong_kit.db import session_factory
from shequtong_kit.packs import ISSUES_IMPORTED
from shequtong_kit.proto import ts

from .test_projection_component import NOW, H, NoJetStream, database_url, engine, event, project  # noqa: F401


def history(neighbourhood: str) -> list[tuple[str, issues_ev.ImportedIssueEvent]]:
    """Two issues' records: one acknowledged late (a breach), dispatched, solved, rated; one rejected."""
    first, second = (f"{neighbourhood}-{n}" for n in (1, 2))
    reported = NOW - 200 * H

    def change(issue: str, transition: str, to_state: str, level: str, hours: int) -> tuple[str, object]:
        message = issues_ev.IssueStateChanged(
            issue_id=issue,
            neighbourhood_id=neighbourhood,
            transition=transition,
            to_state=to_state,
            level=level,
            occurred_at=ts(reported + hours * H),
            reported_at=ts(reported),
            category_code="road",
            actor_kind="person",
        )
        return f"issues.issue.{transition}", message

    def report(issue: str) -> tuple[str, object]:
        message = issues_ev.IssueReported(
            issue_id=issue,
            neighbourhood_id=neighbourhood,
            category_code="road",
            reporter_id=f"p-{issue}",
            source="resident",
            reported_at=ts(reported),
            response_due_at=ts(reported + 15 * H),
        )
        return "issues.issue.reported", message

    breach = issues_ev.IssueSlaBreached(
        issue_id=first, neighbourhood_id=neighbourhood, clock="response", level="neighbourhood",
        due_at=ts(reported + 15 * H), breached_at=ts(reported + 20 * H), category_code="road",
    )  # fmt: skip
    rated = issues_ev.IssueRated(
        issue_id=first, neighbourhood_id=neighbourhood, rating=4, fixed=True, rated_at=ts(reported + 60 * H)
    )
    assigned = issues_ev.IssueAssigned(issue_id=first, neighbourhood_id=neighbourhood, assignee_id="cadre")
    return [
        ("issues.record.assigned", assigned),
        report(first),
        ("issues.issue.sla_breached", breach),
        change(first, "acknowledged", "acknowledged", "neighbourhood", 20),
        change(first, "dispatched", "dispatched", "grid", 21),
        change(first, "resolved", "resolved", "grid", 40),
        change(first, "closed", "closed", "grid", 50),
        ("issues.issue.rated", rated),
        report(second),
        change(second, "rejected", "rejected", "neighbourhood", 3),
    ]  # type: ignore[return-value]


async def test_an_imported_issues_packed_events_give_the_figures_and_facts_of_its_events_one_by_one(
    engine: AsyncEngine,  # noqa: F811
) -> None:
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    projector = Projector(480)
    one_by_one, packed = (f"n-{uuid.uuid4().hex[:8]}" for _ in range(2))
    singles = [event(subject, message, NOW) for subject, message in history(one_by_one)]  # type: ignore[arg-type]
    fields = {"IssueReported": "reported", "IssueStateChanged": "state_changed", "IssueSlaBreached": "sla_breached"}
    fields |= {"IssueRated": "rated", "IssueAssigned": "assigned"}
    items = [
        issues_ev.ImportedIssueEvent(subject=subject, **{fields[type(message).__name__]: message})
        for subject, message in history(packed)
    ]
    # Split in two packs (as an import's batch is split by size), delivered in one consumer batch.
    packs = [event(ISSUES_IMPORTED, issues_ev.IssueEventsImported(events=part), NOW) for part in (items[:4], items[4:])]
    for batch in (singles, packs):
        await project(service, projector, batch)

    async def figures(neighbourhood: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        async with service.sessions() as session:
            counters = await session.execute(
                select(DailyCounter.day, DailyCounter.metric, DailyCounter.value)
                .where(DailyCounter.neighbourhood_id == neighbourhood)
                .order_by(DailyCounter.day, DailyCounter.metric)
            )
            issues = await session.execute(select(Issue).where(Issue.neighbourhood_id == neighbourhood))
            facts = []
            for issue in issues.scalars():
                row: dict[str, object] = {c.key: getattr(issue, c.key) for c in Issue.__table__.columns}
                row["issue_id"] = str(row["issue_id"]).rsplit("-", 1)[1]  # without the place
                row["neighbourhood_id"] = ""
                facts.append(tuple(sorted(row.items())))
            return [tuple(row) for row in counters], sorted(facts)

    expected = await figures(one_by_one)
    metrics = {metric: value for _, metric, value in expected[0]}
    assert metrics.get("issues_reported") == 2, metrics
    states = {dict(f)["issue_id"]: dict(f)["state"] for f in expected[1]}
    assert states == {"1": "closed", "2": "rejected"}
    first = next(dict(f) for f in expected[1] if dict(f)["issue_id"] == "1")
    assert first["sla_breaches"] == 1 and first["rating"] == 4 and first["first_dispatched_at"] is not None
    assert isinstance(first["closed_at"], datetime)
    assert await figures(packed) == expected
