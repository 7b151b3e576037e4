"""The issue state machine: which transition may happen from which state, at which level, and where it leads.

Pure rules only. Every change of state goes through `plan()`; anything not in the table is refused with
FAILED_PRECONDITION `illegal_transition`.

    reported ─acknowledge→ acknowledged ─start→ in_progress ─resolve→ resolved ─close→ closed
       │  side paths: escalate (neighbourhood → sub-district), dispatch (→ grid platform),
       │  grid: returned_from_grid / dispatch failed / closed → resolved, reject, merge,
       └  reopen (from resolved, by the reporter's verdict) → reopened (a new round at the neighbourhood)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shequtong_kit.errors import FailedPrecondition


class State(StrEnum):
    REPORTED = "reported"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    ESCALATED = "escalated"
    DISPATCHED = "dispatched"
    RETURNED_FROM_GRID = "returned_from_grid"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REJECTED = "rejected"
    MERGED = "merged"
    REOPENED = "reopened"


class Level(StrEnum):
    NEIGHBOURHOOD = "neighbourhood"
    SUBDISTRICT = "subdistrict"
    GRID = "grid"


class Transition(StrEnum):
    """Names of transitions; the event subject is `issues.issue.<Transition.subject>`."""

    ACKNOWLEDGE = "acknowledge"
    START = "start"
    ESCALATE = "escalate"
    AUTO_ESCALATE = "auto_escalate"
    DISPATCH = "dispatch"
    RESOLVE = "resolve"
    REJECT = "reject"
    MERGE = "merge"
    CLOSE = "close"
    REOPEN = "reopen"
    GRID_RETURNED = "grid_returned"
    GRID_CLOSED = "grid_closed"
    GRID_FAILED = "grid_failed"
    GRID_RESUMED = "grid_resumed"


SUBJECT_SUFFIX: dict[Transition, str] = {
    Transition.ACKNOWLEDGE: "acknowledged",
    Transition.START: "started",
    Transition.ESCALATE: "escalated",
    Transition.AUTO_ESCALATE: "escalated",
    Transition.DISPATCH: "dispatched",
    Transition.RESOLVE: "resolved",
    Transition.REJECT: "rejected",
    Transition.MERGE: "merged",
    Transition.CLOSE: "closed",
    Transition.REOPEN: "reopened",
    Transition.GRID_RETURNED: "returned_from_grid",
    Transition.GRID_CLOSED: "resolved",
    Transition.GRID_FAILED: "dispatch_failed",
    Transition.GRID_RESUMED: "redispatched",
}

# Transitions a person asks for through TransitionIssue; the rest come from the scheduler, the reporter's
# verdict or the grid platform.
STAFF_TRANSITIONS = frozenset(
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

TERMINAL = frozenset({State.CLOSED, State.REJECTED, State.MERGED})
# Waiting for a first response at the level now responsible.
AWAITING_RESPONSE = frozenset({State.REPORTED, State.REOPENED, State.ESCALATED})
# Still someone's work (for queues, counts and clocks).
OPEN = frozenset(State) - TERMINAL - {State.RESOLVED}

_HANDLING = frozenset({State.ACKNOWLEDGED, State.IN_PROGRESS, State.RETURNED_FROM_GRID})

# transition -> (states it may start from, state it leads to; None = decided by the history)
_TABLE: dict[Transition, tuple[frozenset[State], State | None]] = {
    Transition.ACKNOWLEDGE: (AWAITING_RESPONSE, State.ACKNOWLEDGED),
    Transition.START: (AWAITING_RESPONSE | (_HANDLING - {State.IN_PROGRESS}), State.IN_PROGRESS),
    Transition.ESCALATE: (frozenset({State.REPORTED, State.REOPENED}) | _HANDLING, State.ESCALATED),
    Transition.AUTO_ESCALATE: (frozenset({State.REPORTED, State.REOPENED}) | _HANDLING, State.ESCALATED),
    Transition.DISPATCH: (AWAITING_RESPONSE | _HANDLING, State.DISPATCHED),
    Transition.RESOLVE: (_HANDLING, State.RESOLVED),
    Transition.REJECT: (AWAITING_RESPONSE | _HANDLING, State.REJECTED),
    Transition.MERGE: (AWAITING_RESPONSE | _HANDLING, State.MERGED),
    Transition.CLOSE: (frozenset({State.RESOLVED}), State.CLOSED),
    Transition.REOPEN: (frozenset({State.RESOLVED}), State.REOPENED),
    Transition.GRID_RETURNED: (frozenset({State.DISPATCHED}), State.RETURNED_FROM_GRID),
    Transition.GRID_CLOSED: (frozenset({State.DISPATCHED, State.RETURNED_FROM_GRID}), State.RESOLVED),
    Transition.GRID_FAILED: (frozenset({State.DISPATCHED}), None),
    Transition.GRID_RESUMED: (frozenset({State.RETURNED_FROM_GRID}), State.DISPATCHED),
}


@dataclass(frozen=True)
class Position:
    """What the state machine needs to know about an issue."""

    state: State
    level: Level
    # Where a dispatch came from, to go back there if the grid platform gives up.
    state_before_dispatch: State | None = None
    dispatch_level: Level | None = None


@dataclass(frozen=True)
class Step:
    transition: Transition
    from_state: State
    to_state: State
    from_level: Level
    to_level: Level

    @property
    def subject_suffix(self) -> str:
        return SUBJECT_SUFFIX[self.transition]


def allowed_from(transition: Transition) -> frozenset[State]:
    return _TABLE[transition][0]


def plan(position: Position, transition: Transition) -> Step:
    """The step `transition` takes from `position`, or FailedPrecondition(`illegal_transition`)."""
    sources, target = _TABLE[transition]
    state, level = position.state, position.level
    if state not in sources:
        raise _illegal(transition, state)
    if transition in (Transition.ESCALATE, Transition.AUTO_ESCALATE) and level != Level.NEIGHBOURHOOD:
        # Only the neighbourhood has a level above it to escalate to; above that is the grid (dispatch).
        raise _illegal(transition, state, "only a neighbourhood-level issue can be escalated")
    to_level = level
    if transition in (Transition.ESCALATE, Transition.AUTO_ESCALATE):
        to_level = Level.SUBDISTRICT
    elif transition in (Transition.DISPATCH, Transition.GRID_RESUMED):
        to_level = Level.GRID
    elif transition == Transition.GRID_RETURNED:
        to_level = position.dispatch_level or Level.NEIGHBOURHOOD
    elif transition == Transition.GRID_FAILED:
        to_level = position.dispatch_level or Level.NEIGHBOURHOOD
        target = position.state_before_dispatch or State.ACKNOWLEDGED
        if target in TERMINAL or target in (State.DISPATCHED, State.RESOLVED):
            target = State.ACKNOWLEDGED
    elif transition == Transition.REOPEN:
        to_level = Level.NEIGHBOURHOOD
    assert target is not None
    return Step(transition, state, target, level, to_level)


def _illegal(transition: Transition, state: State, why: str | None = None) -> FailedPrecondition:
    message = why or f"cannot {transition.value.replace('_', ' ')} an issue that is {state.value.replace('_', ' ')}"
    return FailedPrecondition(message, code="illegal_transition", transition=transition.value, state=state.value)


def is_open(state: State) -> bool:
    return state in OPEN
