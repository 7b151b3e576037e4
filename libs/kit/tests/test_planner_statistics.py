"""Bulk imports keep the planner's statistics of the tables they grow current (autovacuum may be off, and
is late anyway): a table is analyzed once it grew by half since its last analyze, not per batch."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from shequtong_kit.db import PlannerStatistics, create_engine, session_factory


async def test_a_growing_table_is_analyzed_at_growth_steps_and_the_planner_sees_its_size(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await session.execute(text("CREATE TABLE loaded (id integer PRIMARY KEY, ref text)"))
    stats = PlannerStatistics(minimum=1_000, growth=0.5)
    analyzed: list[list[str]] = []
    written = 0
    for _batch in range(12):
        async with sessions() as session, session.begin():
            await session.execute(
                text("INSERT INTO loaded (id, ref) VALUES (:id, :ref)"),
                [{"id": i, "ref": f"r{i}"} for i in range(written, written + 500)],
            )
            written += 500
            analyzed.append(await stats.wrote(session, 500, "loaded"))
    if engine.dialect.name != "postgresql":
        assert analyzed == [[]] * 12  # SQLite has no ANALYZE worth running here
        await engine.dispose()
        return
    # At 1,000 rows (the minimum), then each time it grew by the larger of the minimum and half of what the
    # last analyze saw: 2,000, 3,000, 4,500 (the next would be at 6,750): four analyzes for twelve batches.
    steps = [index for index, tables in enumerate(analyzed) if tables == ["loaded"]]
    assert steps == [1, 3, 5, 8], analyzed
    async with sessions() as session:
        estimated = (await session.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'loaded'"))).scalar()
    assert estimated == 4_500, "the planner knows the size the last analyze saw (the empty table's was 0)"
    await engine.dispose()


async def test_replicas_loading_one_table_count_from_the_last_analyze_either_made(database_url: str) -> None:
    """Two processes importing into one table (the chart's two replicas) each count only their own rows;
    one that finds the table analyzed by the other since it last looked counts from there instead of
    analyzing again."""
    engine = create_engine(database_url)
    if engine.dialect.name != "postgresql":
        await engine.dispose()
        pytest.skip("only PostgreSQL keeps planner statistics (CI runs PostgreSQL; the test above covers SQLite)")
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await session.execute(text("CREATE TABLE shared_load (id integer PRIMARY KEY)"))
    replicas = [PlannerStatistics(minimum=1_000, growth=0.5), PlannerStatistics(minimum=1_000, growth=0.5)]
    analyzed: list[tuple[int, list[str]]] = []
    for batch in range(12):  # the replicas take turns, 500 rows a batch
        async with sessions() as session, session.begin():
            await session.execute(
                text("INSERT INTO shared_load (id) VALUES (:id)"), [{"id": batch * 500 + i} for i in range(500)]
            )
            analyzed.append((batch % 2, await replicas[batch % 2].wrote(session, 500, "shared_load")))
    # Replica 0 analyzes at its 1,000th row (1,500 in the table) and at its next 1,000 (3,500); replica 1,
    # due by its own count right after each, finds the table analyzed since and counts from there.
    assert [batch for batch, (_, tables) in enumerate(analyzed) if tables] == [2, 6], analyzed
    assert {replica for replica, tables in analyzed if tables} == {0}
    async with sessions() as session:
        size = (await session.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'shared_load'"))).scalar()
    assert size == 3_500
    await engine.dispose()
