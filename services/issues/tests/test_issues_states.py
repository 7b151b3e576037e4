"""The state machine, checked against a table written out by hand (not derived from the code's table)."""

from __future__ import annotations

import pytest
from shequtong_issues.domain.states import Level, Position, State, Transition, plan

from shequtong_kit.errors import FailedPrecondition

S = State
T = Transition
N, SUB, GRID = Level.NEIGHBOURHOOD, Level.SUBDISTRICT, Level.GRID

# (transition, from state, level) -> (to state, to level). Everything absent is illegal.
LEGAL: dict[tuple[Transition, State, Level], tuple[State, Level]] = {}


def legal(t: Transition, states: list[State], levels: list[Level], to: State | None, to_level: Level | None) -> None:
    for state in states:
        for level in levels:
            LEGAL[(t, state, level)] = (to or state, to_level or level)


HERE = [N, SUB]
legal(T.ACKNOWLEDGE, [S.REPORTED, S.REOPENED, S.ESCALATED], HERE, S.ACKNOWLEDGED, None)
legal(T.START, [S.REPORTED, S.REOPENED, S.ESCALATED, S.ACKNOWLEDGED, S.RETURNED_FROM_GRID], HERE, S.IN_PROGRESS, None)
legal(T.ESCALATE, [S.REPORTED, S.REOPENED, S.ACKNOWLEDGED, S.IN_PROGRESS, S.RETURNED_FROM_GRID], [N], S.ESCALATED, SUB)
legal(
    T.DISPATCH,
    [S.REPORTED, S.REOPENED, S.ESCALATED, S.ACKNOWLEDGED, S.IN_PROGRESS, S.RETURNED_FROM_GRID],
    HERE,
    S.DISPATCHED,
    GRID,
)
legal(T.RESOLVE, [S.ACKNOWLEDGED, S.IN_PROGRESS, S.RETURNED_FROM_GRID], HERE, S.RESOLVED, None)
OPEN_HERE = [S.REPORTED, S.REOPENED, S.ESCALATED, S.ACKNOWLEDGED, S.IN_PROGRESS, S.RETURNED_FROM_GRID]
legal(T.REJECT, OPEN_HERE, HERE, S.REJECTED, None)
legal(T.MERGE, OPEN_HERE, HERE, S.MERGED, None)

STAFF = [T.ACKNOWLEDGE, T.START, T.ESCALATE, T.DISPATCH, T.RESOLVE, T.REJECT, T.MERGE]


def level_for(state: State) -> list[Level]:
    return [GRID] if state == S.DISPATCHED else [N, SUB]


CASES = [(t, s, lv) for t in STAFF for s in State for lv in level_for(s)]


@pytest.mark.parametrize(("transition", "state", "level"), CASES, ids=lambda v: getattr(v, "value", v))
def test_every_staff_transition_from_every_state(transition: Transition, state: State, level: Level) -> None:
    position = Position(state, level)
    expected = LEGAL.get((transition, state, level))
    if expected is None:
        with pytest.raises(FailedPrecondition) as refused:
            plan(position, transition)
        assert refused.value.code == "illegal_transition"
        assert refused.value.metadata == {"transition": transition.value, "state": state.value}
    else:
        step = plan(position, transition)
        assert (step.to_state, step.to_level) == expected
        assert (step.from_state, step.from_level) == (state, level)


def test_an_escalated_issue_cannot_be_escalated_again() -> None:
    with pytest.raises(FailedPrecondition, match="neighbourhood-level"):
        plan(Position(S.ACKNOWLEDGED, SUB), T.ESCALATE)


@pytest.mark.parametrize("state", [S.CLOSED, S.REJECTED, S.MERGED])
def test_terminal_states_go_nowhere(state: State) -> None:
    for transition in Transition:
        with pytest.raises(FailedPrecondition):
            plan(Position(state, N), transition)


def test_reporters_verdict_only_after_resolution() -> None:
    for t in (T.CLOSE, T.REOPEN):
        for state in State:
            if state == S.RESOLVED:
                continue
            with pytest.raises(FailedPrecondition):
                plan(Position(state, N), t)
    reopened = plan(Position(S.RESOLVED, GRID), T.REOPEN)
    assert (reopened.to_state, reopened.to_level) == (S.REOPENED, N)
    closed = plan(Position(S.RESOLVED, SUB), T.CLOSE)
    assert (closed.to_state, closed.to_level) == (S.CLOSED, SUB)


def test_grid_answers() -> None:
    dispatched = Position(S.DISPATCHED, GRID, state_before_dispatch=S.ESCALATED, dispatch_level=SUB)
    returned = plan(dispatched, T.GRID_RETURNED)
    assert (returned.to_state, returned.to_level) == (S.RETURNED_FROM_GRID, SUB)
    closed = plan(dispatched, T.GRID_CLOSED)
    assert (closed.to_state, closed.to_level) == (S.RESOLVED, GRID)
    failed = plan(dispatched, T.GRID_FAILED)
    assert (failed.to_state, failed.to_level) == (S.ESCALATED, SUB), "back to where the dispatch came from"
    resumed = plan(Position(S.RETURNED_FROM_GRID, SUB, dispatch_level=SUB), T.GRID_RESUMED)
    assert (resumed.to_state, resumed.to_level) == (S.DISPATCHED, GRID)
    for t in (T.GRID_RETURNED, T.GRID_FAILED):
        with pytest.raises(FailedPrecondition):
            plan(Position(S.RETURNED_FROM_GRID, N), t)
    with pytest.raises(FailedPrecondition):
        plan(Position(S.ACKNOWLEDGED, N), T.GRID_CLOSED)


def test_auto_escalation_only_from_the_neighbourhood() -> None:
    step = plan(Position(S.REPORTED, N), T.AUTO_ESCALATE)
    assert (step.to_state, step.to_level, step.subject_suffix) == (S.ESCALATED, SUB, "escalated")
    with pytest.raises(FailedPrecondition):
        plan(Position(S.ESCALATED, SUB), T.AUTO_ESCALATE)


def test_subject_suffixes() -> None:
    assert plan(Position(S.REPORTED, N), T.ACKNOWLEDGE).subject_suffix == "acknowledged"
    assert plan(Position(S.ACKNOWLEDGED, N), T.START).subject_suffix == "started"
    assert plan(Position(S.DISPATCHED, GRID), T.GRID_CLOSED).subject_suffix == "resolved"
    assert plan(Position(S.DISPATCHED, GRID), T.GRID_RETURNED).subject_suffix == "returned_from_grid"
