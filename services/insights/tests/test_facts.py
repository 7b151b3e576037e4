"""Per-issue facts are the same whatever order the issue's events arrive in."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shequtong_insights.domain import facts as f

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
Step = Callable[[f.IssueFacts], f.IssueFacts]


def reported(at: datetime = T0, category: str = "sanitation") -> Step:
    return lambda x: f.reported(
        x,
        neighbourhood_id="n1",
        category_code=category,
        building="3号楼",
        source="resident",
        reported_at=at,
        response_due_at=at + timedelta(hours=15),
    )


def moved(transition: str, hours: float, level: str = "neighbourhood", actor: str = "person", to: str = "") -> Step:
    return lambda x: f.transitioned(
        x,
        transition=transition,
        to_state=to or transition,
        level=level,
        occurred_at=T0 + timedelta(hours=hours),
        actor_kind=actor,
        neighbourhood_id="n1",
        category_code="sanitation",
        reported_at=T0,
    )


def run(steps: list[Step]) -> f.IssueFacts:
    facts = f.IssueFacts("i1")
    for step in steps:
        facts = step(facts)
    return facts


def test_a_life_cycle() -> None:
    facts = run([reported(), moved("acknowledged", 2), moved("started", 3), moved("resolved", 10), moved("closed", 30)])
    assert facts.response_seconds == 2 * 3600
    assert facts.resolution_seconds == 10 * 3600
    assert facts.resolved_inside and facts.is_resolved and not facts.is_open
    assert facts.state == "closed"


def test_every_order_gives_the_same_facts() -> None:
    steps = [
        reported(),
        moved("escalated", 1, level="subdistrict", actor="system"),
        moved("acknowledged", 4, level="subdistrict"),
        moved("resolved", 9, level="subdistrict"),
        moved("reopened", 20),
        moved("resolved", 26),
    ]
    expected = run(steps)
    for order in itertools.permutations(steps):
        assert run(list(order)) == expected
    # The scheduler's escalation is not an answer; the acknowledgement at 4 h is.
    assert expected.response_seconds == 4 * 3600
    # Reopened, then solved again inside the neighbourhood: the standing resolution counts.
    assert expected.resolution_seconds == 26 * 3600
    assert expected.resolved_inside
    assert expected.first_escalated_at == T0 + timedelta(hours=1)


def test_reopened_after_resolution_is_not_resolved() -> None:
    facts = run([reported(), moved("acknowledged", 1), moved("resolved", 5), moved("reopened", 8)])
    assert not facts.is_resolved
    assert facts.resolution_seconds is None
    assert facts.is_open


def test_resolved_above_the_neighbourhood_is_not_inside() -> None:
    facts = run([reported(), moved("escalated", 1, level="subdistrict"), moved("resolved", 5, level="subdistrict")])
    assert facts.is_resolved and not facts.resolved_inside
    assert facts.response_seconds == 3600  # a cadre passing it up is an answer


def test_latest_category_wins_by_time_not_arrival() -> None:
    recategorised: Step = lambda x: f.recategorised(x, category_code="greening", occurred_at=T0 + timedelta(hours=1))  # noqa: E731
    assert run([reported(), recategorised]).category_code == "greening"
    assert run([recategorised, reported()]).category_code == "greening"


def test_breaches_and_latest_rating() -> None:
    facts = run([reported(), lambda x: f.sla_breached(x), lambda x: f.sla_breached(x)])
    assert facts.sla_breaches == 2
    first = f.rated(facts, rating=2, fixed=False, rated_at=T0 + timedelta(days=1))
    second = f.rated(first, rating=5, fixed=True, rated_at=T0 + timedelta(days=3))
    assert (second.rating, second.fixed) == (5, True)
    assert f.rated(second, rating=2, fixed=False, rated_at=T0 + timedelta(days=1)).rating == 5


def test_event_before_report_fills_what_it_knows() -> None:
    facts = run([moved("acknowledged", 2)])
    assert facts.neighbourhood_id == "n1" and facts.reported_at == T0
    assert facts.response_seconds == 2 * 3600
