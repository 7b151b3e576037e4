"""One-time login codes sent by SMS: 6 digits, 5 minutes, single use, at most 5 tries. Pure.

Codes are stored only as an HMAC (keyed by the server, salted with the code's row id), never in clear.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_identity.domain.throttle import Limit
from shequtong_kit.errors import InvalidArgument, ResourceExhausted, Unauthenticated

DIGITS = 6
CODE_TTL = timedelta(minutes=5)
MAX_TRIES = 5
LOGIN = "login"

# Requests for codes: one a minute and five an hour per phone; per client address, see settings.
RESEND_INTERVAL = Limit(1, timedelta(minutes=1))
PER_PHONE_HOURLY = Limit(5, timedelta(hours=1))


def new_code() -> str:
    return f"{secrets.randbelow(10**DIGITS):0{DIGITS}d}"


def normalize_code(raw: str) -> str:
    value = (raw or "").strip()
    if len(value) != DIGITS or not value.isdigit():
        raise InvalidArgument(f"a login code has {DIGITS} digits", code="code_invalid")
    return value


def same_code(stored_hash: str, given_hash: str) -> bool:
    return hmac.compare_digest(stored_hash.encode(), given_hash.encode())


def sms_text(code: str) -> str:
    minutes = int(CODE_TTL.total_seconds() // 60)
    return f"【社区通】您的登录验证码是{code}，{minutes}分钟内有效。请勿告诉他人。"


@dataclass(frozen=True)
class CodeState:
    used: bool
    expires_at: datetime
    attempts: int


def ensure_usable(state: CodeState | None, now: datetime) -> None:
    """Before comparing: a code exists for the phone, is unused, unexpired and has tries left."""
    if state is None or state.used:
        raise Unauthenticated("wrong or unknown code; request a new one", code="code_invalid")
    if now >= state.expires_at:
        raise Unauthenticated("this code has expired; request a new one", code="code_expired")
    if state.attempts >= MAX_TRIES:
        raise ResourceExhausted(
            "too many wrong codes; request a new one", code="code_attempts_exhausted", retry_after=state.expires_at
        )
