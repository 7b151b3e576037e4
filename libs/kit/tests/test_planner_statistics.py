"""Bulk imports keep the planner's statistics of the tables they grow current (autovacuum may be off, and
is late anyway): a table is analyzed once it grew by half since its last analyze, not per batch."""

from __future__ import annotations

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
