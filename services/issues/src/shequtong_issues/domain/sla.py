"""SLA clocks: what starts, stops and breaches when. Pure maths over plain values.

Every level keeps its own clocks, per round of handling (a reopening starts round + 1):
- response: from the moment the issue arrives at a level (report, reopening, escalation) until that level's
  first handling step; 15 hours by default, per category and per neighbourhood configurable;
- resolution: from arrival at a level until it is resolved there or handed on (escalated, dispatched);
  a level that gets the issue back from the grid continues against its original deadline.
A breach is recorded once per (issue, clock, level, round); by policy a breached neighbourhood response
clock escalates the issue one level automatically, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shequtong_issues.domain.states import AWAITING_RESPONSE, Level, State, Step, Transition
from shequtong_kit.errors import InvalidArgument

DEFAULT_RESPONSE_HOURS = 15.0
MAX_TARGET_HOURS = 24.0 * 365


class Clock(StrEnum):
    RESPONSE = "response"
    RESOLUTION = "resolution"


class Outcome(StrEnum):
    RUNNING = "running"
    MET = "met"
    LATE = "late"
    BREACHED = "breached"
    HANDED_OVER = "handed_over"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Targets:
    response_hours: float
    resolution_hours: float


@dataclass(frozen=True)
class ClockStart:
    clock: Clock
    level: Level
    due_at: datetime


@dataclass(frozen=True)
class ClockStop:
    clock: Clock
    level: Level
    outcome: Outcome  # MET or LATE are decided against the due time by `stop_outcome`; others as given


@dataclass(frozen=True)
class ClockPlan:
    stops: tuple[ClockStop, ...]
    starts: tuple[ClockStart, ...]
    # Resume the level's latest resolution deadline instead of starting a fresh one (back from the grid).
    resume_resolution_at: Level | None = None


def validate_hours(value: float, code: str) -> float:
    if not (0 < value <= MAX_TARGET_HOURS):
        raise InvalidArgument(f"hours must be above 0 and at most {MAX_TARGET_HOURS:g}", code=code)
    return float(value)


def effective_response_hours(
    category_hours: float | None, neighbourhood_all: float | None, neighbourhood_category: float | None
) -> float:
    """The most specific target wins: neighbourhood+category, then neighbourhood, then category, then 15 h."""
    for value in (neighbourhood_category, neighbourhood_all, category_hours):
        if value is not None and value > 0:
            return float(value)
    return DEFAULT_RESPONSE_HOURS


def due(start: datetime, hours: float) -> datetime:
    return start + timedelta(hours=hours)


def stop_outcome(requested: Outcome, due_at: datetime, at: datetime) -> Outcome:
    if requested in (Outcome.MET, Outcome.LATE):
        return Outcome.MET if at <= due_at else Outcome.LATE
    return requested


def on_report(at: datetime, targets: Targets) -> ClockPlan:
    return ClockPlan(
        stops=(),
        starts=(
            ClockStart(Clock.RESPONSE, Level.NEIGHBOURHOOD, due(at, targets.response_hours)),
            ClockStart(Clock.RESOLUTION, Level.NEIGHBOURHOOD, due(at, targets.resolution_hours)),
        ),
    )


_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def starts_response_clock(step: Step) -> bool:
    """Whether `on_step` starts a response clock for `step`: only then is a response target needed."""
    return any(start.clock == Clock.RESPONSE for start in on_step(step, _ANY_TIME, Targets(1.0, 1.0)).starts)


def on_step(step: Step, at: datetime, targets: Targets) -> ClockPlan:
    """Which clocks stop and start when `step` happens at `at`."""
    t = step.transition
    stops: list[ClockStop] = []
    starts: list[ClockStart] = []
    resume: Level | None = None
    responded = step.from_state in AWAITING_RESPONSE and t in (
        Transition.ACKNOWLEDGE,
        Transition.START,
        Transition.ESCALATE,
        Transition.DISPATCH,
        Transition.REJECT,
        Transition.MERGE,
    )
    if responded:
        stops.append(ClockStop(Clock.RESPONSE, step.from_level, Outcome.MET))
    if t == Transition.AUTO_ESCALATE and step.from_state in AWAITING_RESPONSE:
        stops.append(ClockStop(Clock.RESPONSE, step.from_level, Outcome.BREACHED))
    if t in (Transition.ESCALATE, Transition.AUTO_ESCALATE):
        stops.append(ClockStop(Clock.RESOLUTION, step.from_level, Outcome.HANDED_OVER))
        starts.append(ClockStart(Clock.RESPONSE, Level.SUBDISTRICT, due(at, targets.response_hours)))
        starts.append(ClockStart(Clock.RESOLUTION, Level.SUBDISTRICT, due(at, targets.resolution_hours)))
    elif t in (Transition.DISPATCH, Transition.GRID_RESUMED):
        if t == Transition.DISPATCH:
            stops.append(ClockStop(Clock.RESOLUTION, step.from_level, Outcome.HANDED_OVER))
        starts.append(ClockStart(Clock.RESOLUTION, Level.GRID, due(at, targets.resolution_hours)))
        if t == Transition.GRID_RESUMED:
            stops.append(ClockStop(Clock.RESOLUTION, step.from_level, Outcome.HANDED_OVER))
    elif t in (Transition.GRID_RETURNED, Transition.GRID_FAILED):
        stops.append(ClockStop(Clock.RESOLUTION, Level.GRID, Outcome.HANDED_OVER))
        resume = step.to_level
    elif t in (Transition.RESOLVE, Transition.GRID_CLOSED):
        stops.append(ClockStop(Clock.RESOLUTION, step.from_level, Outcome.MET))
    elif t in (Transition.REJECT, Transition.MERGE):
        stops.append(ClockStop(Clock.RESOLUTION, step.from_level, Outcome.CANCELLED))
    elif t == Transition.REOPEN:
        starts.append(ClockStart(Clock.RESPONSE, Level.NEIGHBOURHOOD, due(at, targets.response_hours)))
        starts.append(ClockStart(Clock.RESOLUTION, Level.NEIGHBOURHOOD, due(at, targets.resolution_hours)))
    return ClockPlan(tuple(stops), tuple(starts), resume)


def starts_new_round(step: Step) -> bool:
    return step.transition == Transition.REOPEN


class EscalationPolicy(StrEnum):
    """When a breach escalates the issue one level by itself."""

    OFF = "off"
    RESPONSE = "response"  # a neighbourhood that has not responded in time
    RESPONSE_AND_RESOLUTION = "response_and_resolution"


def should_auto_escalate(
    policy: EscalationPolicy,
    clock: Clock,
    level: Level,
    state: State,
    issue_level: Level,
    already_auto_escalated_this_round: bool,
) -> bool:
    """One level up, once: only a neighbourhood-level breach, only while the issue still sits there."""
    if policy == EscalationPolicy.OFF or already_auto_escalated_this_round:
        return False
    if level != Level.NEIGHBOURHOOD or issue_level != Level.NEIGHBOURHOOD:
        return False
    if clock == Clock.RESPONSE:
        return state in (State.REPORTED, State.REOPENED)
    if policy == EscalationPolicy.RESPONSE_AND_RESOLUTION:
        return state in (
            State.REPORTED,
            State.REOPENED,
            State.ACKNOWLEDGED,
            State.IN_PROGRESS,
            State.RETURNED_FROM_GRID,
        )
    return False


def notified_level(level: Level, dispatch_level: Level | None) -> str:
    """The level told about a breach: the one above the level that breached."""
    if level == Level.NEIGHBOURHOOD:
        return "subdistrict"
    if level == Level.SUBDISTRICT:
        return "district"
    # The grid's own lateness goes back to whoever dispatched it.
    return (dispatch_level or Level.NEIGHBOURHOOD).value


def is_overdue(response_due_at: datetime | None, resolution_due_at: datetime | None, now: datetime) -> bool:
    return any(d is not None and d < now for d in (response_due_at, resolution_due_at))
