"""Open affairs: elections (换届) and owners'-committee formation (业委会组建) as published processes.

Each kind has a fixed procedure of stages taken one at a time, in order; members follow every step.
"""

from __future__ import annotations

from dataclasses import dataclass

from shequtong_boards.domain.catalogue import AFFAIRS_DISCLOSURE, OWNERS_COMMITTEE_LINE
from shequtong_kit.errors import FailedPrecondition, InvalidArgument

ELECTION = "election"
OWNERS_COMMITTEE_FORMATION = "owners_committee_formation"


@dataclass(frozen=True)
class AffairProcess:
    kind: str
    board_kind: str
    stages: tuple[tuple[str, str], ...]
    # Stage during which candidates are put forward, and the one at which results are recorded.
    nomination_stage: str
    results_stage: str

    def stage_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.stages)

    def name_of(self, key: str) -> str:
        return dict(self.stages)[key]


PROCESSES: dict[str, AffairProcess] = {
    ELECTION: AffairProcess(
        ELECTION,
        AFFAIRS_DISCLOSURE,
        (
            ("announced", "换届公告"),
            ("voter_registration", "选民登记"),
            ("nomination", "候选人提名"),
            ("voting", "投票选举"),
            ("results", "结果公示"),
            ("completed", "换届完成"),
        ),
        nomination_stage="nomination",
        results_stage="results",
    ),
    OWNERS_COMMITTEE_FORMATION: AffairProcess(
        OWNERS_COMMITTEE_FORMATION,
        OWNERS_COMMITTEE_LINE,
        (
            ("announced", "筹备公告"),
            ("preparatory_group", "成立筹备组"),
            ("nomination", "候选人产生"),
            ("owners_meeting", "业主大会表决"),
            ("results", "结果公示"),
            ("filed", "备案完成"),
        ),
        nomination_stage="nomination",
        results_stage="results",
    ),
}

TITLE_MAX = 80
TEXT_MAX = 5000
NOTE_MAX = 1000
NAME_MAX = 40


def process_of(kind: str) -> AffairProcess:
    process = PROCESSES.get(kind)
    if process is None:
        raise InvalidArgument("kind must be election or owners_committee_formation", code="affair_kind_invalid")
    return process


def validate_affair(title: str, purpose: str, policy_basis: str, procedure: str) -> tuple[str, str, str, str]:
    title = title.strip()
    if not 1 <= len(title) <= TITLE_MAX:
        raise InvalidArgument(f"the title must be 1-{TITLE_MAX} characters", code="affair_title_invalid")
    texts = [purpose.strip(), policy_basis.strip(), procedure.strip()]
    if not texts[0]:
        raise InvalidArgument("state the purpose", code="affair_purpose_required")
    if any(len(text) > TEXT_MAX for text in texts):
        raise InvalidArgument("a text is too long", code="affair_text_too_long")
    return title, texts[0], texts[1], texts[2]


def next_stage(process: AffairProcess, current: str, target: str) -> str:
    keys = process.stage_keys()
    if target not in keys:
        raise InvalidArgument("unknown stage for this kind of affair", code="affair_stage_invalid")
    index = keys.index(current)
    if index == len(keys) - 1:
        raise FailedPrecondition("the affair is complete", code="affair_completed")
    if keys.index(target) != index + 1:
        raise FailedPrecondition(
            f"the next stage is {keys[index + 1]}, stages are not skipped or repeated",
            code="affair_stage_out_of_order",
        )
    return target


def is_complete(process: AffairProcess, stage: str) -> bool:
    return stage == process.stage_keys()[-1]


def ensure_nominating(process: AffairProcess, stage: str) -> None:
    if stage != process.nomination_stage:
        raise FailedPrecondition("candidates are added during nomination", code="affair_not_nominating")


def ensure_results_stage(process: AffairProcess, stage: str) -> None:
    if stage != process.results_stage:
        raise FailedPrecondition("results are recorded at the results stage", code="affair_not_at_results")


def validate_candidate(name: str, statement: str) -> tuple[str, str]:
    name, statement = name.strip(), statement.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidArgument("the candidate's name is required", code="candidate_name_invalid")
    if len(statement) > TEXT_MAX:
        raise InvalidArgument("the statement is too long", code="candidate_statement_too_long")
    return name, statement


def validate_note(note: str) -> str:
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise InvalidArgument("the note is too long", code="affair_note_too_long")
    return note
