"""The deliberation chain (议事) as a state machine: which stage may follow which, and what each step needs.

提出议题 proposed → 把关筛选 review → 开展协商 consultation → 形成项目 project → 推动实施 implementation
→ 效果评估 evaluation → 建立公约 convention. Review may decline; consultation and evaluation may conclude
without a convention. Every step names who took it and why; anything else is an illegal jump.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

PROPOSED = "proposed"
REVIEW = "review"
CONSULTATION = "consultation"
PROJECT = "project"
IMPLEMENTATION = "implementation"
EVALUATION = "evaluation"
CONVENTION = "convention"
DECLINED = "declined"
CONCLUDED = "concluded"

CHAIN = (PROPOSED, REVIEW, CONSULTATION, PROJECT, IMPLEMENTATION, EVALUATION, CONVENTION)
STAGES = (*CHAIN, DECLINED, CONCLUDED)
TERMINAL = frozenset({CONVENTION, DECLINED, CONCLUDED})

TRANSITIONS: dict[str, frozenset[str]] = {
    PROPOSED: frozenset({REVIEW}),
    REVIEW: frozenset({CONSULTATION, DECLINED}),
    CONSULTATION: frozenset({PROJECT, CONCLUDED}),
    PROJECT: frozenset({IMPLEMENTATION}),
    IMPLEMENTATION: frozenset({EVALUATION}),
    EVALUATION: frozenset({CONVENTION, CONCLUDED}),
}

TITLE_MAX = 80
DESCRIPTION_MAX = 5000
REASON_MIN = 2
REASON_MAX = 1000
BUDGET_NOTE_MAX = 1000
MILESTONES_MAX = 20
MILESTONE_TITLE_MAX = 100
SUMMARY_MAX = 5000
CONVENTION_TEXT_MAX = 20000
RATING_COMMENT_MAX = 500


@dataclass(frozen=True)
class MilestonePlan:
    title: str
    due_at: datetime | None


@dataclass(frozen=True)
class ProjectPlan:
    owner_id: str
    budget_note: str
    milestones: tuple[MilestonePlan, ...]


@dataclass(frozen=True)
class ConventionDraft:
    title: str
    text: str
    poll_id: str


@dataclass(frozen=True)
class TopicFacts:
    """What the rules need to know about a topic besides its stage."""

    milestone_progress: tuple[int, ...] = ()
    evaluation_summary: str = ""


def validate_proposal(title: str, description: str) -> tuple[str, str]:
    title, description = title.strip(), description.strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise InvalidArgument(f"the topic title must be 1-{TITLE_MAX} characters", code="topic_title_invalid")
    if not 1 <= len(description) <= DESCRIPTION_MAX:
        raise InvalidArgument(f"describe the topic in 1-{DESCRIPTION_MAX} characters", code="topic_description_invalid")
    return title, description


def validate_reason(reason: str) -> str:
    reason = reason.strip()
    if len(reason) < REASON_MIN:
        raise InvalidArgument("every step records why: give a reason", code="topic_reason_required")
    if len(reason) > REASON_MAX:
        raise InvalidArgument(f"the reason must be at most {REASON_MAX} characters", code="topic_reason_too_long")
    return reason


def validate_plan(owner_id: str, budget_note: str, milestones: Sequence[tuple[str, datetime | None]]) -> ProjectPlan:
    if not owner_id.strip():
        raise InvalidArgument("a project needs an owner", code="project_owner_required")
    if len(budget_note.strip()) > BUDGET_NOTE_MAX:
        raise InvalidArgument("the budget note is too long", code="project_budget_note_too_long")
    if not 1 <= len(milestones) <= MILESTONES_MAX:
        raise InvalidArgument(f"a project has 1-{MILESTONES_MAX} milestones", code="project_milestones_count")
    plans = []
    for title, due in milestones:
        title = title.strip()
        if not 1 <= len(title) <= MILESTONE_TITLE_MAX:
            raise InvalidArgument("each milestone needs a short title", code="milestone_title_invalid")
        plans.append(MilestonePlan(title, due))
    return ProjectPlan(owner_id.strip(), budget_note.strip(), tuple(plans))


def validate_draft(title: str, text: str, poll_id: str) -> ConventionDraft:
    title, text = title.strip(), text.strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise InvalidArgument(f"the convention title must be 1-{TITLE_MAX} characters", code="convention_title_invalid")
    if not 1 <= len(text) <= CONVENTION_TEXT_MAX:
        raise InvalidArgument("the convention needs its text", code="convention_text_invalid")
    if not poll_id.strip():
        raise InvalidArgument("a convention is adopted by a vote: give the poll", code="convention_poll_required")
    return ConventionDraft(title, text, poll_id.strip())


def check_transition(
    current: str,
    target: str,
    facts: TopicFacts,
    plan: ProjectPlan | None = None,
    draft: ConventionDraft | None = None,
) -> None:
    """Refuses an illegal jump, or a legal one whose stage is not ready."""
    if target not in STAGES:
        raise InvalidArgument("unknown stage", code="topic_stage_invalid")
    if current in TERMINAL:
        raise FailedPrecondition(f"the topic is {current}; it moves no further", code="topic_closed")
    if target not in TRANSITIONS.get(current, frozenset()):
        raise FailedPrecondition(
            f"a topic in {current} cannot move to {target}",
            code="topic_transition_illegal",
            current=current,
            target=target,
        )
    if target == PROJECT and plan is None:
        raise InvalidArgument("forming a project needs its plan", code="project_plan_required")
    if target == EVALUATION and any(progress < 100 for progress in facts.milestone_progress):
        raise FailedPrecondition("every milestone must be complete before evaluation", code="milestones_incomplete")
    if target == CONVENTION:
        if not facts.evaluation_summary:
            raise FailedPrecondition(
                "the committee summarises the evaluation first", code="evaluation_summary_required"
            )
        if draft is None:
            raise InvalidArgument("a convention needs its text and vote", code="convention_draft_required")


def ensure_stage(current: str, expected: str, what: str) -> None:
    if current != expected:
        raise FailedPrecondition(
            f"{what} happens during {expected}; the topic is in {current}", code="topic_wrong_stage"
        )


def validate_progress(progress: int, note: str) -> tuple[int, str]:
    if not 0 <= progress <= 100:
        raise InvalidArgument("progress is a percentage from 0 to 100", code="milestone_progress_invalid")
    note = note.strip()
    if len(note) > REASON_MAX:
        raise InvalidArgument("the note is too long", code="milestone_note_too_long")
    return progress, note


def validate_rating(rating: int, comment: str) -> tuple[int, str]:
    if not 1 <= rating <= 5:
        raise InvalidArgument("rate from 1 to 5", code="rating_invalid")
    comment = comment.strip()
    if len(comment) > RATING_COMMENT_MAX:
        raise InvalidArgument("the comment is too long", code="rating_comment_too_long")
    return rating, comment


def validate_summary(summary: str) -> str:
    summary = summary.strip()
    if not 1 <= len(summary) <= SUMMARY_MAX:
        raise InvalidArgument("write the evaluation summary", code="evaluation_summary_invalid")
    return summary


def ensure_poll_closed(poll_state: str) -> None:
    """A text is adopted by a vote that has finished."""
    if poll_state != "closed":
        raise FailedPrecondition("the adopting vote has not closed yet", code="convention_poll_open")
