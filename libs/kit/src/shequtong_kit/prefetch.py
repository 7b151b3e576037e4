"""Rows a consumer's batch will read, loaded in one statement before its handlers run.

A projection handler reads the row its event is about, then changes it or adds it: per event a SELECT
and, when each event's writes are flushed alone, an INSERT or UPDATE. A bulk import upstream sends such
events by the hundred thousand. `ConsumerSpec.prefetch` loads the rows of the whole batch at once
(`load`, in key order, locked when the handlers lock), remembering the keys that have no row; handlers
ask `get` (the row, None when there is none, the database only for a key the prefetch did not cover) and
hand new rows to `add`, so a second event about the same key in the batch finds the first one's row.

The remembered rows live in the session's `info`: one transaction, never across.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")

_ROWS = "shequtong.prefetched_rows"
CHUNK = 1000


def _known(session: AsyncSession, model: type[Any]) -> dict[Any, Any]:
    rows: dict[type[Any], dict[Any, Any]] = session.info.setdefault(_ROWS, {})
    return rows.setdefault(model, {})


def _key_column(model: type[Any]) -> Any:
    (column,) = inspect(model).primary_key  # one-column primary keys only
    return column


async def load(session: AsyncSession, model: type[T], keys: Iterable[Any], *, lock: bool = False) -> None:
    """The rows of `model` with these primary keys, and which of the keys have none (`lock`: FOR UPDATE,
    taken in key order like every other writer's)."""
    known = _known(session, model)
    wanted = sorted({key for key in keys if key and key not in known})
    column = _key_column(model)
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        query = select(model).where(column.in_(chunk)).order_by(column)
        if lock:
            query = query.with_for_update()
        found = {getattr(row, column.key): row for row in (await session.execute(query)).scalars()}
        for key in chunk:
            known[key] = found.get(key)


async def get(session: AsyncSession, model: type[T], key: Any, *, lock: bool = False) -> T | None:
    """The row (None: there is none), from the prefetch when it covered `key`, else from the database —
    exactly `session.get` then, and not remembered: outside a prefetched batch (a repository shared with
    request paths) a key read as absent may be added later in the same session by other code."""
    known = _known(session, model)
    if key in known:
        row: T | None = known[key]
        return row
    return await session.get(model, key, with_for_update=True if lock else None)


def remembered(session: AsyncSession, model: type[T]) -> list[T | None]:
    """What the batch's prefetches and `add`s know of `model`: its rows, None for each key without one."""
    return list(_known(session, model).values())


def add(session: AsyncSession, row: Any) -> None:
    """A new row: added to the session and remembered under its key for the rest of the batch."""
    session.add(row)
    _known(session, type(row))[getattr(row, _key_column(type(row)).key)] = row


def forget(session: AsyncSession, model: type[Any], key: Any) -> None:
    """A row written behind the prefetch's back (an `INSERT … ON CONFLICT DO NOTHING`, an upsert): later
    reads of `key` in this batch ask the database."""
    _known(session, model).pop(key, None)
