"""Polls: valid questions and ballots, when a poll is open, when its results may be shown."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

SINGLE = "single"
MULTIPLE = "multiple"
RESIDENT = "resident"
HOUSEHOLD = "household"

QUESTION_MAX = 200
OPTION_MAX = 100
OPTIONS_MIN = 2
OPTIONS_MAX = 20
LONGEST = timedelta(days=90)
SHORTEST = timedelta(minutes=1)
# A client's clock may lag: an opening time this far in the past counts as "now".
OPENING_SLACK = timedelta(minutes=5)

SCHEDULED = "scheduled"
OPEN = "open"
CLOSED = "closed"


@dataclass(frozen=True)
class PollSpec:
    question: str
    options: tuple[str, ...]
    kind: str
    max_choices: int
    basis: str
    hide_results_until_close: bool
    opens_at: datetime
    closes_at: datetime


def validate_poll(
    question: str,
    options: Sequence[str],
    kind: str,
    max_choices: int,
    basis: str,
    hide_results_until_close: bool,
    opens_at: datetime | None,
    closes_at: datetime | None,
    now: datetime,
) -> PollSpec:
    question = question.strip()
    if not 1 <= len(question) <= QUESTION_MAX:
        raise InvalidArgument(f"the question must be 1-{QUESTION_MAX} characters", code="poll_question_invalid")
    labels = tuple(option.strip() for option in options)
    if not OPTIONS_MIN <= len(labels) <= OPTIONS_MAX:
        raise InvalidArgument(f"a poll has {OPTIONS_MIN}-{OPTIONS_MAX} options", code="poll_options_count")
    if any(not 1 <= len(label) <= OPTION_MAX for label in labels):
        raise InvalidArgument(f"each option must be 1-{OPTION_MAX} characters", code="poll_option_invalid")
    if len(set(labels)) != len(labels):
        raise InvalidArgument("options must differ", code="poll_options_duplicate")
    if kind == SINGLE:
        if max_choices not in (0, 1):
            raise InvalidArgument("a single-choice poll takes one choice", code="poll_max_choices_invalid")
        max_choices = 1
    elif kind == MULTIPLE:
        max_choices = max_choices or len(labels)
        if not 2 <= max_choices <= len(labels):
            raise InvalidArgument("a multiple-choice poll allows 2 up to all options", code="poll_max_choices_invalid")
    else:
        raise InvalidArgument("kind must be single or multiple", code="poll_kind_invalid")
    if basis not in (RESIDENT, HOUSEHOLD):
        raise InvalidArgument("basis must be resident or household", code="poll_basis_invalid")
    start = opens_at or now
    if start < now - OPENING_SLACK:
        raise InvalidArgument("a poll cannot open in the past", code="poll_opens_in_past")
    start = max(start, now)
    if closes_at is None:
        raise InvalidArgument("give the closing time", code="poll_closes_at_required")
    if closes_at - start < SHORTEST:
        raise InvalidArgument("a poll must close after it opens", code="poll_window_invalid")
    if closes_at - start > LONGEST:
        raise InvalidArgument("a poll runs at most 90 days", code="poll_window_too_long")
    return PollSpec(question, labels, kind, max_choices, basis, hide_results_until_close, start, closes_at)


def state(opens_at: datetime, closes_at: datetime, closed_at: datetime | None, now: datetime) -> str:
    if closed_at is not None or now >= closes_at:
        return CLOSED
    if now < opens_at:
        return SCHEDULED
    return OPEN


def validate_ballot(kind: str, max_choices: int, chosen: Sequence[str], valid: Sequence[str]) -> tuple[str, ...]:
    picks = tuple(dict.fromkeys(chosen))
    if not picks:
        raise InvalidArgument("choose at least one option", code="ballot_empty")
    if len(picks) != len(chosen):
        raise InvalidArgument("an option may be chosen once", code="ballot_duplicate_option")
    if set(picks) - set(valid):
        raise InvalidArgument("an option is not part of this poll", code="ballot_option_unknown")
    if kind == SINGLE and len(picks) != 1:
        raise InvalidArgument("choose exactly one option", code="ballot_too_many_choices")
    if len(picks) > max_choices:
        raise InvalidArgument(f"choose at most {max_choices} options", code="ballot_too_many_choices")
    return picks


def ensure_open(current: str) -> None:
    if current == SCHEDULED:
        raise FailedPrecondition("the poll has not opened yet", code="poll_not_open")
    if current == CLOSED:
        raise FailedPrecondition("the poll is closed", code="poll_closed")


def results_visible(hide_until_close: bool, current: str) -> bool:
    return not hide_until_close or current == CLOSED


def voter_key(basis: str, person_id: str, household_id: str | None) -> str:
    """Who a ballot belongs to: the person, or their household (one ballot per household)."""
    if basis == HOUSEHOLD:
        if not household_id:
            raise FailedPrecondition(
                "your household is not known here yet; ask the committee", code="household_unknown"
            )
        return f"h:{household_id}"
    return f"p:{person_id}"
