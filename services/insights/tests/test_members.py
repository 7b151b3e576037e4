"""A membership's facts: the same whatever order its events arrive in."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from shequtong_insights.domain import members as rules

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
Step = Callable[[rules.MemberFacts | None], rules.MemberFacts]


def step(change: Callable[[rules.MemberFacts], rules.MemberFacts]) -> Step:
    return lambda facts: change(rules.known(facts, "m1", "n1", "p1"))


def apply(steps: tuple[Step, ...]) -> rules.MemberFacts:
    facts: rules.MemberFacts | None = None
    for one in steps:
        facts = one(facts)
    assert facts is not None
    return facts


def test_a_membership_is_the_same_whatever_order_its_events_arrive_in() -> None:
    steps = (
        step(lambda f: rules.joined(f, household_id="h-join", at=T0 + H)),
        step(lambda f: rules.joined(f, household_id="h-join", at=T0)),  # a copy with an earlier time
        step(lambda f: rules.verified(f, household_id="h-verified", at=T0 + 3 * H)),
        step(lambda f: rules.left(f, at=T0 + 5 * H)),
        step(lambda f: rules.left(f, at=T0 + 9 * H)),
        step(lambda f: rules.rejected(f, at=T0 + 2 * H)),
    )
    expected = rules.MemberFacts("m1", "n1", "p1", "h-verified", T0, T0 + 3 * H, T0 + 9 * H, T0 + 2 * H)
    for order in itertools.permutations(steps):
        assert apply(order) == expected


def test_the_household_is_the_verifications_else_the_joins() -> None:
    joined = step(lambda f: rules.joined(f, household_id="h-join", at=T0))
    verified_without = step(lambda f: rules.verified(f, household_id="", at=T0 + H))
    assert apply((joined, verified_without)).household_id == "h-join"
    assert apply((verified_without, joined)).household_id == "h-join"


def test_the_first_event_makes_the_row_with_its_own_neighbourhood_and_person() -> None:
    facts = rules.verified(rules.known(None, "m1", "n1", "p1"), household_id="h1", at=T0)
    assert facts == rules.MemberFacts("m1", "n1", "p1", "h1", None, T0, None, None)
    # A later event naming another place or person changes neither (as the row it finds).
    assert rules.known(facts, "m1", "n2", "p2") is facts
