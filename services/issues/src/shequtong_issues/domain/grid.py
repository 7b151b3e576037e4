"""Status from the grid platform (via the grid gateway) mapped onto the issue's state machine."""

from __future__ import annotations

from datetime import datetime

from shequtong_issues.domain.states import State, Transition

PROGRESS = frozenset({"accepted", "dispatched", "handled", "deferred", "reopened"})
RETURNED = frozenset({"rejected", "returned"})
CLOSED = "closed"


def transition_for(
    grid_state: str,
    issue_state: State,
    current_dispatch: bool,
    occurred_at: datetime | None,
    last_applied_at: datetime | None,
    return_cause: str | None = None,
) -> Transition | None:
    """The transition a grid update causes, or None when it only goes on the timeline.

    Updates for an older dispatch of the issue, and updates older than the last one applied, never move
    the issue: the grid's late messages must not undo what happened since.
    """
    if not current_dispatch:
        return None
    if occurred_at is not None and last_applied_at is not None and occurred_at < last_applied_at:
        return None
    if grid_state == CLOSED and issue_state in (State.DISPATCHED, State.RETURNED_FROM_GRID):
        return Transition.GRID_CLOSED
    if grid_state in RETURNED and issue_state == State.DISPATCHED:
        return Transition.GRID_RETURNED
    if grid_state in PROGRESS and issue_state == State.RETURNED_FROM_GRID and return_cause == "returned":
        # The grid re-dispatched inside itself (退回 → 派遣) while we showed it as returned; a refusal
        # (rejected, 不予立案) is final on the grid's side and is never resumed.
        return Transition.GRID_RESUMED
    return None


def failure_transition(issue_state: State, current_dispatch: bool) -> Transition | None:
    if current_dispatch and issue_state == State.DISPATCHED:
        return Transition.GRID_FAILED
    return None
