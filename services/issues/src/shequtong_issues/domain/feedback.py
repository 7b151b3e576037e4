"""The reporter's verdict (结果反馈): rated once per round, inside a window after resolution."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_issues.domain.reports import MAX_COMMENT, clean_text
from shequtong_kit.errors import FailedPrecondition, InvalidArgument

LOW_RATING = 2


@dataclass(frozen=True)
class Verdict:
    rating: int
    fixed: bool
    comment: str

    @property
    def reopens(self) -> bool:
        """A low rating or "not fixed" sends the issue back."""
        return self.rating <= LOW_RATING or not self.fixed


def validate(rating: int, fixed: bool, comment: str) -> Verdict:
    if not 1 <= rating <= 5:
        raise InvalidArgument("rate from 1 to 5", code="rating_invalid")
    return Verdict(rating, fixed, clean_text(comment, MAX_COMMENT, "comment_invalid", "a comment", required=False))


def feedback_due(resolved_at: datetime, window_hours: float) -> datetime:
    return resolved_at + timedelta(hours=window_hours)


def ensure_open(feedback_due_at: datetime | None, now: datetime) -> None:
    if feedback_due_at is None:
        raise FailedPrecondition("the issue is not waiting for your verdict", code="not_awaiting_feedback")
    if now > feedback_due_at:
        raise FailedPrecondition("the time to rate this issue has passed", code="feedback_window_closed")


def expired(feedback_due_at: datetime | None, now: datetime) -> bool:
    return feedback_due_at is not None and now > feedback_due_at
