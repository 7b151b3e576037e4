"""Join codes: random, expiring, revocable, usage-counted."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from shequtong_kit.errors import FailedPrecondition, InvalidArgument

DEFAULT_TTL = timedelta(days=7)
MAX_TTL = timedelta(days=90)
DEFAULT_MAX_USES = 500
MAX_USES = 100_000
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: readable aloud and on paper


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(12))


def terms(ttl_seconds: int, max_uses: int) -> tuple[timedelta, int]:
    if ttl_seconds < 0 or max_uses < 0:
        raise InvalidArgument("ttl_seconds and max_uses must not be negative", code="join_code_terms_invalid")
    ttl = timedelta(seconds=ttl_seconds) if ttl_seconds else DEFAULT_TTL
    if ttl < timedelta(minutes=1) or ttl > MAX_TTL:
        raise InvalidArgument("a join code lives between one minute and 90 days", code="join_code_terms_invalid")
    uses = max_uses or DEFAULT_MAX_USES
    if uses > MAX_USES:
        raise InvalidArgument(f"a join code allows at most {MAX_USES} uses", code="join_code_terms_invalid")
    return ttl, uses


def ensure_usable(revoked: bool, expires_at: datetime, use_count: int, max_uses: int, now: datetime) -> None:
    if revoked:
        raise FailedPrecondition("this join code was revoked", code="join_code_revoked")
    if now >= expires_at:
        raise FailedPrecondition("this join code has expired", code="join_code_expired")
    if use_count >= max_uses:
        raise FailedPrecondition("this join code has been used up", code="join_code_used_up")


def usable(revoked: bool, expires_at: datetime, use_count: int, max_uses: int, now: datetime) -> bool:
    return not revoked and now < expires_at and use_count < max_uses
