"""The deliberation chain as a state machine (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest
from shequtong_boards.domain import deliberation as chain
from shequtong_boards.domain.deliberation import TopicFacts, check_transition

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

PLAN = chain.validate_plan(
    "owner-1", "约2万元，街道专项", [("设计方案", None), ("施工", datetime(2026, 9, 1, tzinfo=UTC))]
)
DRAFT = chain.validate_draft("停车公约", "一、……", "poll-1")
READY = TopicFacts(milestone_progress=(100, 100), evaluation_summary="居民满意")


def test_the_seven_stages_in_order() -> None:
    facts = READY
    path = list(chain.CHAIN)
    for current, target in pairwise(path):
        check_transition(current, target, facts, PLAN, DRAFT)
    assert path == ["proposed", "review", "consultation", "project", "implementation", "evaluation", "convention"]


def test_every_jump_outside_the_chain_is_illegal() -> None:
    legal = {(a, b) for a, targets in chain.TRANSITIONS.items() for b in targets}
    for current in chain.STAGES:
        for target in chain.STAGES:
            if (current, target) in legal:
                continue
            with pytest.raises(FailedPrecondition) as caught:
                check_transition(current, target, READY, PLAN, DRAFT)
            expected = "topic_closed" if current in chain.TERMINAL else "topic_transition_illegal"
            assert caught.value.code == expected, (current, target)


def test_review_accepts_or_declines_and_declined_is_final() -> None:
    check_transition("review", "consultation", READY)
    check_transition("review", "declined", READY)
    with pytest.raises(FailedPrecondition) as caught:
        check_transition("declined", "review", READY)
    assert caught.value.code == "topic_closed"


def test_stage_preconditions() -> None:
    with pytest.raises(InvalidArgument) as plan:
        check_transition("consultation", "project", READY, None)
    assert plan.value.code == "project_plan_required"
    with pytest.raises(FailedPrecondition) as unfinished:
        check_transition("implementation", "evaluation", TopicFacts((100, 40)))
    assert unfinished.value.code == "milestones_incomplete"
    with pytest.raises(FailedPrecondition) as summary:
        check_transition("evaluation", "convention", TopicFacts((100,), ""), None, DRAFT)
    assert summary.value.code == "evaluation_summary_required"
    with pytest.raises(InvalidArgument) as draft:
        check_transition("evaluation", "convention", READY, None, None)
    assert draft.value.code == "convention_draft_required"
    check_transition("evaluation", "concluded", TopicFacts((), ""))
    with pytest.raises(InvalidArgument) as unknown:
        check_transition("review", "voting", READY)
    assert unknown.value.code == "topic_stage_invalid"


def test_inputs_of_each_step_are_validated() -> None:
    for call, code in [
        (lambda: chain.validate_reason(" a "), "topic_reason_required"),
        (lambda: chain.validate_proposal("", "x"), "topic_title_invalid"),
        (lambda: chain.validate_proposal("t", ""), "topic_description_invalid"),
        (lambda: chain.validate_plan("", "", [("a", None)]), "project_owner_required"),
        (lambda: chain.validate_plan("o", "", []), "project_milestones_count"),
        (lambda: chain.validate_plan("o", "", [(" ", None)]), "milestone_title_invalid"),
        (lambda: chain.validate_draft("t", "text", ""), "convention_poll_required"),
        (lambda: chain.validate_progress(101, ""), "milestone_progress_invalid"),
        (lambda: chain.validate_rating(6, ""), "rating_invalid"),
        (lambda: chain.validate_summary(""), "evaluation_summary_invalid"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            call()
        assert caught.value.code == code
    with pytest.raises(FailedPrecondition) as stage:
        chain.ensure_stage("project", "evaluation", "rating")
    assert stage.value.code == "topic_wrong_stage"
    with pytest.raises(FailedPrecondition) as poll:
        chain.ensure_poll_closed("open")
    assert poll.value.code == "convention_poll_open"
