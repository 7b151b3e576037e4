"""Status from the grid platform (via the grid gateway) mapped onto the issue's state machine."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shequtong_issues.domain.states import State, Step, Transition

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


def hand_over(
    issue: Any, step: Step, number: int, grid_service_code: str, requested_by: str, at: datetime
) -> dict[str, Any]:
    """The issue goes to the grid by `step` as its round's dispatch `number`: sets the issue's dispatch
    fields and returns the dispatch's values (the live transition and the import both record it so)."""
    dispatch_id = f"{issue.id}:r{issue.round}:d{number}"
    issue.dispatch_id = dispatch_id
    issue.dispatch_level = step.from_level.value
    issue.state_before_dispatch = step.from_state.value
    issue.grid_service_code = grid_service_code
    issue.grid_return_cause = None
    issue.grid_last_update_at = None
    return {
        "id": dispatch_id,
        "issue_id": issue.id,
        "round": issue.round,
        "number": number,
        "level": step.from_level.value,
        "grid_service_code": grid_service_code,
        "requested_by": requested_by,
        "requested_at": at,
    }
