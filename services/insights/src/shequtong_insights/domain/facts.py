"""What insights keeps about each issue, and how each event changes it. Pure.

Events of one issue can arrive in any order (separate streams, redeliveries, a replay), so every
rule here is order-independent: "first" times take the minimum, "latest" values are decided by the
event's own time (ties broken by a fixed rank), never by arrival. Applying the same set of events in
any order gives the same facts (tested with every permutation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

# Transitions after which someone has answered the report (`escalated` by the scheduler is not an answer).
RESPONSES = frozenset({"acknowledged", "started", "escalated", "dispatched", "resolved", "rejected", "merged"})
TERMINAL = frozenset({"closed", "rejected", "merged"})
NOT_OPEN = TERMINAL | {"resolved"}
KNOWN_TRANSITIONS = frozenset(
    {
        "acknowledged",
        "started",
        "escalated",
        "dispatched",
        "resolved",
        "rejected",
        "merged",
        "closed",
        "reopened",
        "returned_from_grid",
        "dispatch_failed",
        "redispatched",
    }
)
# Ties between events at the same instant: the later stage of a life cycle wins.
_RANK = {
    "reported": 0,
    "reopened": 1,
    "acknowledged": 2,
    "escalated": 3,
    "started": 4,
    "dispatched": 5,
    "redispatched": 5,
    "returned_from_grid": 6,
    "dispatch_failed": 6,
    "in_progress": 4,
    "resolved": 7,
    "rejected": 8,
    "merged": 8,
    "closed": 9,
}
NEIGHBOURHOOD_LEVEL = "neighbourhood"


def _rank(state: str) -> int:
    return _RANK.get(state, 5)


def _earliest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate < current else current


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current


@dataclass(frozen=True)
class IssueFacts:
    issue_id: str
    neighbourhood_id: str = ""
    category_code: str = ""
    category_at: datetime | None = None
    building: str = ""
    source: str = ""
    reported_at: datetime | None = None
    response_due_at: datetime | None = None
    first_response_at: datetime | None = None
    first_resolved_at: datetime | None = None
    last_resolved_at: datetime | None = None
    resolved_level: str = ""
    last_reopened_at: datetime | None = None
    closed_at: datetime | None = None
    state: str = ""
    state_at: datetime | None = None
    first_escalated_at: datetime | None = None
    first_dispatched_at: datetime | None = None
    sla_breaches: int = 0
    rating: int = 0
    fixed: bool = False
    rated_at: datetime | None = None

    # --- derived ---------------------------------------------------------------------------------
    @property
    def is_resolved(self) -> bool:
        """Resolved and not reopened since (it may also be closed)."""
        if self.last_resolved_at is None:
            return False
        return self.last_reopened_at is None or self.last_reopened_at < self.last_resolved_at

    @property
    def is_open(self) -> bool:
        return self.state not in NOT_OPEN

    @property
    def response_seconds(self) -> float | None:
        if self.reported_at is None or self.first_response_at is None:
            return None
        return max(0.0, (self.first_response_at - self.reported_at).total_seconds())

    @property
    def resolution_seconds(self) -> float | None:
        if self.reported_at is None or not self.is_resolved or self.last_resolved_at is None:
            return None
        return max(0.0, (self.last_resolved_at - self.reported_at).total_seconds())

    @property
    def resolved_inside(self) -> bool:
        return self.is_resolved and self.resolved_level == NEIGHBOURHOOD_LEVEL


def _with_state(facts: IssueFacts, state: str, at: datetime) -> IssueFacts:
    if facts.state_at is None or (at, _rank(state)) > (facts.state_at, _rank(facts.state)):
        return replace(facts, state=state, state_at=at)
    return facts


def _with_category(facts: IssueFacts, code: str, at: datetime) -> IssueFacts:
    if not code:
        return facts
    if facts.category_at is None or at > facts.category_at or (at == facts.category_at and code > facts.category_code):
        return replace(facts, category_code=code, category_at=at)
    return facts


def _fill(facts: IssueFacts, neighbourhood_id: str, reported_at: datetime | None) -> IssueFacts:
    if neighbourhood_id and not facts.neighbourhood_id:
        facts = replace(facts, neighbourhood_id=neighbourhood_id)
    if reported_at is not None and facts.reported_at is None:
        facts = replace(facts, reported_at=reported_at)
    return facts


def reported(
    facts: IssueFacts,
    *,
    neighbourhood_id: str,
    category_code: str,
    building: str,
    source: str,
    reported_at: datetime,
    response_due_at: datetime | None,
) -> IssueFacts:
    facts = replace(
        facts,
        neighbourhood_id=neighbourhood_id or facts.neighbourhood_id,
        building=building.strip(),
        source=source,
        reported_at=reported_at,
        response_due_at=response_due_at,
    )
    facts = _with_category(facts, category_code, reported_at)
    return _with_state(facts, "reported", reported_at)


def transitioned(
    facts: IssueFacts,
    *,
    transition: str,
    to_state: str,
    level: str,
    occurred_at: datetime,
    actor_kind: str = "",
    neighbourhood_id: str = "",
    category_code: str = "",
    reported_at: datetime | None = None,
) -> IssueFacts:
    facts = _fill(facts, neighbourhood_id, reported_at)
    # Each transition carries the category as it stood at that moment; the latest knowledge wins.
    facts = _with_category(facts, category_code, occurred_at)
    if transition in RESPONSES and not (transition == "escalated" and actor_kind == "system"):
        facts = replace(facts, first_response_at=_earliest(facts.first_response_at, occurred_at))
    if transition == "escalated":
        facts = replace(facts, first_escalated_at=_earliest(facts.first_escalated_at, occurred_at))
    if transition in ("dispatched", "redispatched"):
        facts = replace(facts, first_dispatched_at=_earliest(facts.first_dispatched_at, occurred_at))
    if transition == "resolved":
        facts = replace(facts, first_resolved_at=_earliest(facts.first_resolved_at, occurred_at))
        if (
            facts.last_resolved_at is None
            or occurred_at > facts.last_resolved_at
            or (occurred_at == facts.last_resolved_at and level > facts.resolved_level)
        ):
            facts = replace(facts, last_resolved_at=occurred_at, resolved_level=level)
    if transition == "reopened":
        facts = replace(facts, last_reopened_at=_latest(facts.last_reopened_at, occurred_at))
    if transition == "closed":
        facts = replace(facts, closed_at=_latest(facts.closed_at, occurred_at))
    return _with_state(facts, to_state or transition, occurred_at)


def sla_breached(facts: IssueFacts, *, neighbourhood_id: str = "") -> IssueFacts:
    """One more breach (the inbox guarantees each breach event is counted once)."""
    return replace(_fill(facts, neighbourhood_id, None), sla_breaches=facts.sla_breaches + 1)


def rated(facts: IssueFacts, *, rating: int, fixed: bool, rated_at: datetime, neighbourhood_id: str = "") -> IssueFacts:
    facts = _fill(facts, neighbourhood_id, None)
    if facts.rated_at is None or (rated_at, rating, fixed) > (facts.rated_at, facts.rating, facts.fixed):
        return replace(facts, rating=rating, fixed=fixed, rated_at=rated_at)
    return facts


def recategorised(facts: IssueFacts, *, category_code: str, occurred_at: datetime) -> IssueFacts:
    return _with_category(facts, category_code, occurred_at)
