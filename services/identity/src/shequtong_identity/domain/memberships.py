"""Membership states: pending → verified | rejected; pending/verified → left."""

from __future__ import annotations

from shequtong.identity.v1 import identity_pb2
from shequtong_kit.errors import FailedPrecondition, InvalidArgument

PENDING = identity_pb2.MEMBERSHIP_STATE_PENDING
VERIFIED = identity_pb2.MEMBERSHIP_STATE_VERIFIED
REJECTED = identity_pb2.MEMBERSHIP_STATE_REJECTED
LEFT = identity_pb2.MEMBERSHIP_STATE_LEFT
ACTIVE = (PENDING, VERIFIED)
MAX_REASON = 500


def ensure_reviewable(state: int) -> None:
    if state != PENDING:
        raise FailedPrecondition("only a pending registration can be reviewed", code="membership_not_pending")


def rejection_reason(reason: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise InvalidArgument("a rejection needs a reason", code="reason_required")
    if len(cleaned) > MAX_REASON:
        raise InvalidArgument(f"a reason has at most {MAX_REASON} characters", code="reason_too_long")
    return cleaned


def ensure_may_leave(state: int) -> None:
    if state not in ACTIVE:
        raise FailedPrecondition("this membership is not active", code="membership_not_active")
