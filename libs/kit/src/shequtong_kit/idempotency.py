"""Safe retries: a write with an idempotency key runs once; a retry gets the stored response.

The key row commits in the same transaction as the change it guards, so a crash leaves either both
or neither. The gateway passes the client's `Idempotency-Key` header down as gRPC metadata.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_kit.clock import Clock, SystemClock
from shequtong_kit.db import idempotency_keys
from shequtong_kit.errors import Conflict, DomainError, InvalidArgument

R = TypeVar("R", bound=Message)

IDEMPOTENCY_METADATA = "idempotency-key"


def fingerprint(request: Message) -> str:
    return hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()


async def _stored(session: AsyncSession, scope: str, key: str) -> tuple[str, bytes] | None:
    row = (
        await session.execute(
            select(idempotency_keys.c.fingerprint, idempotency_keys.c.response).where(
                idempotency_keys.c.scope == scope, idempotency_keys.c.key == key
            )
        )
    ).first()
    return (row[0], row[1]) if row else None


async def run_once(
    sessions: async_sessionmaker[AsyncSession],
    key: str | None,
    scope: str,
    request: Message,
    response_type: type[R],
    work: Callable[[AsyncSession], Awaitable[R]],
    clock: Clock | None = None,
) -> R:
    """Run `work` in one transaction; with a key, at most once per (scope, key)."""
    if not key:
        async with sessions() as session, session.begin():
            return await work(session)
    if len(key) > 200 or not key.isprintable():
        raise InvalidArgument(
            "Idempotency-Key must be printable and at most 200 characters", code="idempotency_key_invalid"
        )
    digest = fingerprint(request)
    clock = clock or SystemClock()

    def replay(found: tuple[str, bytes]) -> R:
        if found[0] != digest:
            raise Conflict("this Idempotency-Key was used for a different request", code="idempotency_key_reused")
        return response_type.FromString(found[1])

    try:
        # The lookup shares the work's transaction: a first attempt, by far the common case, then costs
        # one statement more, not a connection checkout and a transaction of its own.
        async with sessions() as session, session.begin():
            found = await _stored(session, scope, key)
            if found is None:
                result = await work(session)
                await session.execute(
                    insert(idempotency_keys).values(
                        scope=scope,
                        key=key,
                        fingerprint=digest,
                        response=result.SerializeToString(),
                        created_at=clock.now(),
                    )
                )
    except (IntegrityError, DomainError):
        # A concurrent retry with the same key may have committed first: then its answer is ours. The
        # loser fails either on the key's row (IntegrityError) or earlier, on the effect the winner just
        # made (e.g. `phone_taken` for a registration retried concurrently); either way, replay it.
        async with sessions() as session:
            found = await _stored(session, scope, key)
        if found:
            return replay(found)
        raise
    return result if found is None else replay(found)
