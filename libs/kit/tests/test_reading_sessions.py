"""`db.reading_sessions`: on PostgreSQL a read-only use case's statements run without a transaction around
them (no BEGIN, no ROLLBACK round trips); on SQLite they keep it; on either, a write is refused before it
reaches the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_kit.db import create_engine, reading_sessions, session_factory


async def _transaction_times(sessions: async_sessionmaker[AsyncSession]) -> tuple[object, object]:
    """now() twice with a pause between: the same value inside one transaction, two values without."""
    async with sessions() as session:
        first = (await session.execute(text("SELECT now()"))).scalar()
        await session.execute(text("SELECT pg_sleep(0.01)"))
        second = (await session.execute(text("SELECT now()"))).scalar()
    return first, second


async def test_reads_run_without_a_transaction_on_postgresql_and_keep_it_elsewhere(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine, cache_lineages=True)
    reads = reading_sessions(sessions)
    async with sessions() as session, session.begin():
        await session.execute(text("CREATE TABLE notes (id integer PRIMARY KEY, body text)"))
        await session.execute(text("INSERT INTO notes VALUES (1, 'kept')"))
    async with reads() as session:
        assert (await session.execute(text("SELECT body FROM notes"))).scalar() == "kept"
        assert session.info.keys() == sessions().info.keys()  # the lineage cache is shared
    if engine.dialect.name == "postgresql":
        first, second = await _transaction_times(reads)
        assert first != second, "each statement ran on its own"
        first, second = await _transaction_times(sessions)
        assert first == second, "a writing session still runs in one transaction"
        # and the pool's connections go back to transactions after a read borrowed them
        async with sessions() as session:
            level = (await session.execute(text("SHOW transaction_isolation"))).scalar()
            in_transaction = (await session.execute(text("SELECT now() = statement_timestamp()"))).scalar()
        assert level == "read committed" and in_transaction is False
    await engine.dispose()


@pytest.mark.parametrize(
    "write",
    ["INSERT INTO notes VALUES (2, 'written')", "UPDATE notes SET body = 'changed'", "DELETE FROM notes"],
)
async def test_a_reading_session_refuses_to_write(database_url: str, write: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await session.execute(text("CREATE TABLE IF NOT EXISTS notes (id integer PRIMARY KEY, body text)"))
        await session.execute(text("DELETE FROM notes"))
        await session.execute(text("INSERT INTO notes VALUES (1, 'kept')"))
    async with reading_sessions(sessions)() as session:
        with pytest.raises(RuntimeError, match="only reads"):
            await session.execute(text(write))
    async with sessions() as session:
        assert (await session.execute(text("SELECT id, body FROM notes"))).all() == [(1, "kept")]
    await engine.dispose()


async def test_on_sqlite_reads_keep_their_transaction_and_refuse_writes(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await session.execute(text("CREATE TABLE notes (id integer PRIMARY KEY, body text)"))
    reads = reading_sessions(sessions)
    assert reads.kw["bind"] is engine
    async with reads() as session:
        assert (await session.execute(text("SELECT count(*) FROM notes"))).scalar() == 0
        with pytest.raises(RuntimeError, match="only reads"):
            await session.execute(text("INSERT INTO notes VALUES (1, 'x')"))
    await engine.dispose()
