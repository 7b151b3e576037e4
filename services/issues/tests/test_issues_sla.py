"""SLA maths: which clocks start, stop and escalate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_issues.domain import sla
from shequtong_issues.domain.sla import Clock, ClockStart, ClockStop, EscalationPolicy, Outcome, Targets
from shequtong_issues.domain.states import Level, Position, State, Transition, plan

from shequtong_kit.errors import DomainError, InvalidArgument

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TARGETS = Targets(response_hours=15, resolution_hours=48)
N, SUB, GRID = Level.NEIGHBOURHOOD, Level.SUBDISTRICT, Level.GRID


def test_a_report_starts_the_neighbourhood_clocks() -> None:
    p = sla.on_report(T0, TARGETS)
    assert p.stops == ()
    assert set(p.starts) == {
        ClockStart(Clock.RESPONSE, N, T0 + timedelta(hours=15)),
        ClockStart(Clock.RESOLUTION, N, T0 + timedelta(hours=48)),
    }


def test_acknowledging_stops_the_response_clock_only() -> None:
    step = plan(Position(State.REPORTED, N), Transition.ACKNOWLEDGE)
    p = sla.on_step(step, T0, TARGETS)
    assert p.stops == (ClockStop(Clock.RESPONSE, N, Outcome.MET),)
    assert p.starts == ()


def test_starting_work_after_acknowledging_touches_no_clock() -> None:
    step = plan(Position(State.ACKNOWLEDGED, N), Transition.START)
    assert sla.on_step(step, T0, TARGETS) == sla.ClockPlan((), ())


def test_escalation_hands_over_and_starts_the_subdistrict_clocks() -> None:
    step = plan(Position(State.ACKNOWLEDGED, N), Transition.ESCALATE)
    p = sla.on_step(step, T0, TARGETS)
    assert p.stops == (ClockStop(Clock.RESOLUTION, N, Outcome.HANDED_OVER),)
    assert set(p.starts) == {
        ClockStart(Clock.RESPONSE, SUB, T0 + timedelta(hours=15)),
        ClockStart(Clock.RESOLUTION, SUB, T0 + timedelta(hours=48)),
    }


def test_escalating_without_acknowledging_counts_as_the_response() -> None:
    step = plan(Position(State.REPORTED, N), Transition.ESCALATE)
    p = sla.on_step(step, T0, TARGETS)
    assert ClockStop(Clock.RESPONSE, N, Outcome.MET) in p.stops


def test_automatic_escalation_marks_the_response_as_breached() -> None:
    step = plan(Position(State.REPORTED, N), Transition.AUTO_ESCALATE)
    p = sla.on_step(step, T0, TARGETS)
    assert ClockStop(Clock.RESPONSE, N, Outcome.BREACHED) in p.stops
    assert ClockStop(Clock.RESOLUTION, N, Outcome.HANDED_OVER) in p.stops
    assert {s.level for s in p.starts} == {SUB}


def test_dispatch_and_the_way_back_from_the_grid() -> None:
    dispatch = plan(Position(State.ESCALATED, SUB), Transition.DISPATCH)
    p = sla.on_step(dispatch, T0, TARGETS)
    assert ClockStop(Clock.RESPONSE, SUB, Outcome.MET) in p.stops
    assert ClockStop(Clock.RESOLUTION, SUB, Outcome.HANDED_OVER) in p.stops
    assert p.starts == (ClockStart(Clock.RESOLUTION, GRID, T0 + timedelta(hours=48)),)
    back = plan(Position(State.DISPATCHED, GRID, State.ESCALATED, SUB), Transition.GRID_RETURNED)
    p = sla.on_step(back, T0, TARGETS)
    assert p.stops == (ClockStop(Clock.RESOLUTION, GRID, Outcome.HANDED_OVER),)
    assert p.starts == ()
    assert p.resume_resolution_at == SUB


def test_resolution_by_the_grid_stops_the_grid_clock() -> None:
    step = plan(Position(State.DISPATCHED, GRID, State.ACKNOWLEDGED, N), Transition.GRID_CLOSED)
    assert sla.on_step(step, T0, TARGETS).stops == (ClockStop(Clock.RESOLUTION, GRID, Outcome.MET),)


def test_reject_cancels_resolution_but_counts_as_a_response() -> None:
    step = plan(Position(State.REPORTED, N), Transition.REJECT)
    p = sla.on_step(step, T0, TARGETS)
    assert set(p.stops) == {
        ClockStop(Clock.RESPONSE, N, Outcome.MET),
        ClockStop(Clock.RESOLUTION, N, Outcome.CANCELLED),
    }


def test_reopening_starts_a_new_round_at_the_neighbourhood() -> None:
    step = plan(Position(State.RESOLVED, GRID), Transition.REOPEN)
    assert sla.starts_new_round(step)
    p = sla.on_step(step, T0, TARGETS)
    assert {(s.clock, s.level) for s in p.starts} == {(Clock.RESPONSE, N), (Clock.RESOLUTION, N)}


def test_met_or_late_is_decided_by_the_due_time() -> None:
    due = T0 + timedelta(hours=15)
    assert sla.stop_outcome(Outcome.MET, due, due) == Outcome.MET
    assert sla.stop_outcome(Outcome.MET, due, due + timedelta(seconds=1)) == Outcome.LATE
    assert sla.stop_outcome(Outcome.HANDED_OVER, due, due + timedelta(days=1)) == Outcome.HANDED_OVER


def test_the_most_specific_response_target_wins() -> None:
    assert sla.effective_response_hours(None, None, None) == 15
    assert sla.effective_response_hours(1, None, None) == 1
    assert sla.effective_response_hours(15, 8, None) == 8
    assert sla.effective_response_hours(15, 8, 4) == 4


@pytest.mark.parametrize("hours", [0, -1, 24 * 366])
def test_targets_must_be_sane(hours: float) -> None:
    with pytest.raises(InvalidArgument) as bad:
        sla.validate_hours(hours, "response_hours_invalid")
    assert bad.value.code == "response_hours_invalid"


def test_auto_escalation_policy_is_one_level_and_once() -> None:
    esc = sla.should_auto_escalate
    on = EscalationPolicy.RESPONSE
    assert esc(on, Clock.RESPONSE, N, State.REPORTED, N, False)
    assert esc(on, Clock.RESPONSE, N, State.REOPENED, N, False)
    assert not esc(on, Clock.RESPONSE, N, State.REPORTED, N, True), "once per round"
    assert not esc(on, Clock.RESPONSE, SUB, State.ESCALATED, SUB, False), "nothing above the sub-district"
    assert not esc(on, Clock.RESPONSE, N, State.ACKNOWLEDGED, N, False), "someone responded"
    assert not esc(on, Clock.RESOLUTION, N, State.IN_PROGRESS, N, False), "resolution breaches notify only"
    assert esc(EscalationPolicy.RESPONSE_AND_RESOLUTION, Clock.RESOLUTION, N, State.IN_PROGRESS, N, False)
    assert not esc(EscalationPolicy.OFF, Clock.RESPONSE, N, State.REPORTED, N, False)


def test_the_level_above_is_notified() -> None:
    assert sla.notified_level(N, None) == "subdistrict"
    assert sla.notified_level(SUB, None) == "district"
    assert sla.notified_level(GRID, SUB) == "subdistrict"


def test_overdue() -> None:
    assert sla.is_overdue(T0, None, T0 + timedelta(seconds=1))
    assert not sla.is_overdue(T0, T0 + timedelta(hours=1), T0)
    assert not sla.is_overdue(None, None, T0)


def test_a_response_target_is_needed_exactly_where_a_response_clock_starts() -> None:
    """The use case reads the neighbourhood's response targets only when this says so."""
    needing = set()
    for state in State:
        for level in Level:
            for transition in Transition:
                try:
                    step = plan(Position(state, level), transition)
                except DomainError:  # not a legal step
                    continue
                starts = sla.on_step(step, T0, TARGETS).starts
                assert sla.starts_response_clock(step) == any(s.clock == Clock.RESPONSE for s in starts)
                if sla.starts_response_clock(step):
                    needing.add(transition)
    assert needing == {Transition.ESCALATE, Transition.AUTO_ESCALATE, Transition.REOPEN}
