"""The grid case workflow (网格化 closed loop) as a pure state machine.

Main path: 受理 received → 立案 filed → 派遣 dispatched → 处置 handled → 核查结案 closed.
Side paths: 注销 cancelled (not filed), 退回 returned (re-dispatched), 延期 deferred,
返工 reopened. The Open311 status and the FixMyStreet-style external_status_code of each
stage follow the "Suggested mapping" table of the grid/Open311 reference notes exactly;
the grid gateway translates those codes back into issue events, so they must not drift.

No I/O and no clock here: the engine applies these rules and records the updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Stage(StrEnum):
    RECEIVED = "received"  # 受理
    FILED = "filed"  # 立案
    DISPATCHED = "dispatched"  # 派遣
    HANDLED = "handled"  # 处置 / 处理反馈
    CLOSED = "closed"  # 核查结案
    CANCELLED = "cancelled"  # 注销 / 不予立案
    RETURNED = "returned"  # 退回
    DEFERRED = "deferred"  # 挂账 / 延期
    REOPENED = "reopened"  # 返工


class Action(StrEnum):
    ADVANCE = "advance"
    REJECT = "reject"
    RETURN = "return"
    DEFER = "defer"
    REOPEN = "reopen"


@dataclass(frozen=True)
class StageInfo:
    label: str
    status: Literal["open", "closed"]
    external_status_code: str | None


STAGE_INFO: dict[Stage, StageInfo] = {
    # The table gives no extended status for 受理: the POST response is the acknowledgement.
    Stage.RECEIVED: StageInfo("受理", "open", None),
    Stage.FILED: StageInfo("立案", "open", "INVESTIGATING"),
    Stage.DISPATCHED: StageInfo("派遣", "open", "ACTION_SCHEDULED"),
    Stage.HANDLED: StageInfo("处置", "open", "IN_PROGRESS"),
    Stage.CLOSED: StageInfo("核查结案", "closed", "FIXED"),
    Stage.CANCELLED: StageInfo("注销", "closed", "NOT_COUNCILS_RESPONSIBILITY"),
    Stage.RETURNED: StageInfo("退回", "open", "INTERNAL_REFERRAL"),
    Stage.DEFERRED: StageInfo("延期", "open", "NO_FURTHER_ACTION"),
    Stage.REOPENED: StageInfo("返工", "open", "REOPEN"),
}

# Where "advance" leads from each stage. Side-path stages rejoin the main path: a returned
# case is re-dispatched, a deferred or reworked case is handled again and re-verified.
_ADVANCE: dict[Stage, Stage] = {
    Stage.RECEIVED: Stage.FILED,
    Stage.FILED: Stage.DISPATCHED,
    Stage.DISPATCHED: Stage.HANDLED,
    Stage.HANDLED: Stage.CLOSED,
    Stage.RETURNED: Stage.DISPATCHED,
    Stage.DEFERRED: Stage.HANDLED,
    Stage.REOPENED: Stage.HANDLED,
}

# Side actions: the stages they may start from, and where they lead.
_SIDE: dict[Action, tuple[frozenset[Stage], Stage]] = {
    # The centre refuses to file at the filing check, before any department is involved.
    Action.REJECT: (frozenset({Stage.RECEIVED, Stage.FILED}), Stage.CANCELLED),
    # Only a department holding the case can hand it back as not its responsibility.
    Action.RETURN: (frozenset({Stage.DISPATCHED}), Stage.RETURNED),
    Action.DEFER: (frozenset({Stage.DISPATCHED, Stage.REOPENED}), Stage.DEFERRED),
    # Verification fails on a handled case, or a closed case is reopened later.
    Action.REOPEN: (frozenset({Stage.HANDLED, Stage.CLOSED}), Stage.REOPENED),
}

_ALIASES: dict[str, Stage] = {
    **{s.value: s for s in Stage},
    **{info.label: s for s, info in STAGE_INFO.items()},
    "结案": Stage.CLOSED,
    "核查": Stage.CLOSED,
    "处理反馈": Stage.HANDLED,
    "不予立案": Stage.CANCELLED,
    "挂账": Stage.DEFERRED,
}

MAIN_PATH: tuple[Stage, ...] = (
    Stage.RECEIVED,
    Stage.FILED,
    Stage.DISPATCHED,
    Stage.HANDLED,
    Stage.CLOSED,
)


class TransitionError(ValueError):
    """The action is not allowed from the current stage."""


def is_terminal(stage: Stage) -> bool:
    """True when "advance" cannot move the case any further."""
    return stage not in _ADVANCE


def parse_stage(text: str) -> Stage:
    try:
        return _ALIASES[text.strip().lower() if text.isascii() else text.strip()]
    except KeyError:
        raise ValueError(f"unknown stage {text!r}") from None


def apply(stage: Stage, action: Action) -> Stage:
    if action is Action.ADVANCE:
        if stage not in _ADVANCE:
            raise TransitionError(f"a {stage.value} case cannot advance")
        return _ADVANCE[stage]
    allowed, target = _SIDE[action]
    if stage not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise TransitionError(f"cannot {action.value} a {stage.value} case (only from: {names})")
    return target


def path_to(stage: Stage, target: Stage) -> list[Stage]:
    """The stages "advance" passes through from `stage` up to and including `target`."""
    path: list[Stage] = []
    current = stage
    while current != target:
        if current not in _ADVANCE:
            raise TransitionError(f"{target.value} cannot be reached by advancing a {stage.value} case")
        current = _ADVANCE[current]
        path.append(current)
        if len(path) > len(_ADVANCE):  # pragma: no cover - the graph has no cycles on advance
            raise TransitionError("advance loop")
    if not path:
        raise TransitionError(f"the case is already {target.value}")
    return path


def external_status_code(stage: Stage, *, duplicate: bool = False) -> str | None:
    # 注销 of a duplicate report carries DUPLICATE so our side can tell it from a refusal.
    if stage is Stage.CANCELLED and duplicate:
        return "DUPLICATE"
    return STAGE_INFO[stage].external_status_code
