"""Refresh-token families and login throttling. Pure decisions; the service stores the state."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_kit.errors import ResourceExhausted, Unauthenticated

MAX_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=15)


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class RefreshState:
    """A stored refresh token as the decision needs it."""

    used: bool
    family_revoked: bool
    expires_at: datetime


REVOKE_FAMILY = "revoke_family"
ROTATE = "rotate"


def refresh_decision(state: RefreshState | None, now: datetime) -> str:
    """ROTATE a live token; REVOKE_FAMILY when an already-rotated token comes back (it was copied);
    otherwise raise. The caller raises `refresh_token_reused` after revoking the family."""
    if state is None:
        raise Unauthenticated("refresh token not recognised", code="refresh_token_invalid")
    if state.family_revoked:
        raise Unauthenticated("this session was ended", code="session_revoked")
    if state.used:
        return REVOKE_FAMILY
    if now >= state.expires_at:
        raise Unauthenticated("refresh token expired", code="refresh_token_expired")
    return ROTATE


@dataclass(frozen=True)
class Throttle:
    failures: int
    window_started_at: datetime | None
    locked_until: datetime | None


def ensure_not_locked(throttle: Throttle | None, now: datetime) -> None:
    if throttle and throttle.locked_until and now < throttle.locked_until:
        raise ResourceExhausted(
            "too many wrong passwords; try again later", code="too_many_attempts", retry_after=throttle.locked_until
        )


def after_failure(throttle: Throttle | None, now: datetime) -> Throttle:
    """Counts a wrong password. After the 5th wrong one in a row inside 15 minutes the phone is locked
    for 15 minutes, so the 6th attempt (even with the right password) is refused."""
    if throttle is None or throttle.window_started_at is None or now - throttle.window_started_at >= THROTTLE_WINDOW:
        throttle = Throttle(0, now, None)
    failures = throttle.failures + 1
    locked = now + THROTTLE_WINDOW if failures >= MAX_FAILURES else None
    return Throttle(failures, throttle.window_started_at, locked)
