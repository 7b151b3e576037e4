"""The region directory's lineages are cached per process (a neighbourhood never moves); a neighbourhood
not known yet is read again on the next call, so one that arrives later is found."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shequtong.common.v1.common_pb2 import NEIGHBOURHOOD_KIND_VILLAGE as VILLAGE
from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_kit import regions
from shequtong_kit.db import create_engine, kit_metadata, session_factory


async def _directory(tmp_path: Path) -> tuple[AsyncEngine, list[str], async_sessionmaker[AsyncSession]]:
    """An empty region directory, the statements sent to it, and sessions that cache lineages."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'kit.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(kit_metadata.create_all)
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    return engine, statements, session_factory(engine, cache_lineages=True)


async def test_a_lineage_is_read_once_and_an_unknown_one_each_time(tmp_path: Path) -> None:
    engine, statements, sessions = await _directory(tmp_path)
    created = ev.NeighbourhoodCreated(neighbourhood_id="n-1", subdistrict_id="s-1", district_id="d-1", code="c")

    async with sessions() as session:
        assert await regions.find_lineage(session, "n-1") is None
    async with sessions() as session, session.begin():
        await regions.record_neighbourhood(session, created)
    reads_before = len(statements)
    for _ in range(3):
        async with sessions() as session:
            found = await regions.lineage(session, "n-1")
            assert (found.subdistrict_id, found.district_id) == ("s-1", "d-1")
    assert len(statements) - reads_before == 1, "read from the directory once, then from memory"

    async with session_factory(engine)() as session:  # a session without the cache reads every time
        await regions.lineage(session, "n-1")
    assert len(statements) - reads_before == 2
    await engine.dispose()


async def test_a_kind_is_kept_with_its_lineage(tmp_path: Path) -> None:
    engine, statements, sessions = await _directory(tmp_path)
    village = ev.NeighbourhoodCreated(
        neighbourhood_id="v-1", subdistrict_id="s-1", district_id="d-1", code="v", kind=VILLAGE
    )
    async with sessions() as session, session.begin():
        await regions.record_neighbourhood(session, village)

    reads_before = len(statements)
    async with sessions() as session:
        assert await regions.neighbourhood_kind(session, "v-1") == VILLAGE
        assert (await regions.lineage(session, "v-1")).district_id == "d-1"
        assert await regions.neighbourhood_kind(session, "nowhere") == 0
    async with sessions() as session:
        assert await regions.neighbourhood_kind(session, "v-1") == VILLAGE
    assert len(statements) - reads_before == 2, "the kind and the lineage in one read; the unknown one read once"

    async with session_factory(engine)() as session:  # a session without the cache reads the directory
        assert await regions.neighbourhood_kind(session, "v-1") == VILLAGE
    await engine.dispose()
