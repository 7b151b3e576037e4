"""`db.CompiledOnce`: an INSERT … ON CONFLICT (which SQLAlchemy compiles anew on every execution) compiled
once and sent as driver SQL on PostgreSQL, with the same effect as through SQLAlchemy; on SQLite it runs
through SQLAlchemy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from shequtong_kit.db import (
    CompiledOnce,
    Upsert,
    create_engine,
    defer_flush,
    inbox,
    kit_metadata,
    session_factory,
    write_later,
)


@pytest.fixture(scope="module", params=["database", "sqlite"])
def url(request: pytest.FixtureRequest, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database (PostgreSQL where it runs, as in CI) and always an SQLite file."""
    return (
        database_url
        if request.param == "database"
        else f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('once') / 'once.db'}"
    )


async def with_new_table(url: str, table: Table) -> AsyncEngine:
    """An engine on the database with `table` created anew (left from an earlier run: dropped first)."""
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(table.drop, checkfirst=True)
        await connection.run_sync(table.create)
    return engine


async def test_an_upsert_compiled_once_inserts_and_skips_as_sqlalchemy_would(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(kit_metadata.create_all)
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    claim = CompiledOnce(
        dialect.insert(inbox)
        .values(consumer=bindparam("consumer"), event_id=bindparam("event_id"), handled_at=bindparam("now"))
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine.Engine")
    claimed = []
    for event_id in ("e1", "e2", "e1"):
        async with sessions() as session, session.begin():
            rows = await claim.rows(session, {"consumer": "c", "event_id": event_id, "now": now})
        claimed.append([row[0] for row in rows])
    assert claimed == [["e1"], ["e2"], []], "e1 was claimed before"
    async with sessions() as session:
        stored = (await session.execute(text("SELECT event_id FROM inbox ORDER BY event_id"))).scalars().all()
    assert stored == ["e1", "e2"]
    executions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[")]
    compiled_each_time = [m for m in executions if "no key" in m]
    if engine.dialect.name == "postgresql":
        assert executions and not compiled_each_time, executions  # driver SQL: "[raw sql]"
    else:
        assert len(compiled_each_time) == 3  # through SQLAlchemy, which compiles an upsert every time
    await engine.dispose()


async def test_rows_as_arrays_unnested_add_up_on_conflict(database_url: str) -> None:
    """`unnested_insert` with `as_arrays`: any number of rows through one statement, compiled once."""
    from sqlalchemy import BigInteger, Column, Date, MetaData, String, Table

    from shequtong_kit.db import as_arrays, unnested_insert

    if not database_url.startswith("postgresql"):
        pytest.skip("arrays are PostgreSQL's; the kit's PostgreSQL run covers this")
    tally = Table(
        "tally",
        MetaData(),
        Column("place", String(36), primary_key=True),
        Column("day", Date, primary_key=True),
        Column("count", BigInteger, nullable=False),
    )
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(tally.metadata.create_all)
    insert = unnested_insert(tally, ("place", "day", "count"))
    add = CompiledOnce(
        insert.on_conflict_do_update(
            index_elements=["place", "day"], set_={"count": tally.c.count + insert.excluded.count}
        )
    )
    day = datetime(2026, 3, 2, tzinfo=UTC).date()
    sessions = session_factory(engine)
    for batch in ([("n1", day, 2), ("n2", day, 1)], [("n1", day, 3)], [("n2", day, 4), ("n3", day, 1), ("n4", day, 9)]):
        async with sessions() as session, session.begin():
            await add.execute(session, as_arrays(("place", "day", "count"), batch))
    async with sessions() as session:
        stored = (await session.execute(text("SELECT place, count FROM tally ORDER BY place"))).all()
    assert [tuple(row) for row in stored] == [("n1", 5), ("n2", 5), ("n3", 1), ("n4", 9)]
    assert add._compiled is not None and "unnest" in add._compiled[0]
    await engine.dispose()


async def test_upserts_kept_for_the_commit_end_with_the_last_values_per_key_on_either_database(url: str) -> None:
    """`Upsert.later` in a transaction flushed at its commit keeps the rows; `write_later` writes them in one
    statement (an unnested multi-row upsert on PostgreSQL); outside such a transaction it writes at once."""
    tally = Table("kit_test_later", MetaData(), Column("code", String(10), primary_key=True), Column("n", Integer))
    engine = await with_new_table(url, tally)
    upsert = Upsert(tally, ["code", "n"], ["code"], ["n"])
    sessions = session_factory(engine)

    async def stored() -> list[tuple[str, int]]:
        async with sessions() as session:
            return [tuple(row) for row in await session.execute(select(tally.c.code, tally.c.n).order_by("code"))]

    async with sessions() as session, session.begin():
        await upsert.later(session, {"code": "a", "n": 0})  # no batch: written at once
    assert await stored() == [("a", 0)]
    async with sessions() as session, session.begin():
        defer_flush(session, True)
        for code, n in [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]:
            await upsert.later(session, {"code": code, "n": n})
        async with sessions() as other:  # nothing written yet
            assert [tuple(row) for row in await other.execute(select(tally.c.code, tally.c.n))] == [("a", 0)]
        await write_later(session)
        await write_later(session)  # nothing kept twice
    assert await stored() == [("a", 3), ("b", 5), ("c", 4)]
    await engine.dispose()


async def test_new_rows_inserted_once_by_key_and_read_back_among_a_long_list_on_either_database(url: str) -> None:
    """`InsertMany`: rows whose key exists are skipped, the ids of those inserted are returned, JSON values
    and times are stored as SQLAlchemy would; `rows_among` finds them among more values than one statement
    takes (1,000)."""
    from sqlalchemy import JSON

    from shequtong_kit.db import InsertMany, UtcDateTime, rows_among

    table = Table(
        "kit_test_insert_new",
        MetaData(),
        Column("id", String(36), primary_key=True),
        Column("ref", String(100), unique=True),
        Column("tags", JSON),
        Column("at", UtcDateTime, nullable=True),
    )
    engine = await with_new_table(url, table)
    insert = InsertMany(table, ["ref"], "id")
    sessions = session_factory(engine)
    at = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    first = [{"id": f"i{n}", "ref": f"r{n}", "tags": ["邻里", n], "at": at} for n in range(1500)]
    async with sessions() as session, session.begin():
        assert await insert.rows(session, first) == {f"i{n}" for n in range(1500)}
    again = [{"id": "x1", "ref": "r1", "tags": [], "at": None}, {"id": "x2", "ref": "new", "tags": [], "at": None}]
    async with sessions() as session, session.begin():
        assert await insert.rows(session, again) == {"x2"}, "r1 was inserted before"
    async with sessions() as session:
        wanted = [f"r{n}" for n in range(0, 1500, 2)] + ["missing"] * 600
        found = await rows_among(session, (table.c.ref, table.c.tags, table.c.at), table.c.ref, wanted)
    assert sorted((row[0], row[1][1], row[2]) for row in found) == sorted((f"r{n}", n, at) for n in range(0, 1500, 2))
    await engine.dispose()


async def test_a_value_longer_than_its_column_is_refused_never_cut_on_either_database(url: str) -> None:
    """Array parameters keep no string length: PostgreSQL's cast to `VARCHAR(n)[]` would cut a longer value
    silently — an insert storing the cut value, a look-up matching another key. The column refuses it
    (SQLite keeps no length, and stores it whole); a look-up by a longer key finds nothing on either."""
    from sqlalchemy.exc import DBAPIError

    from shequtong_kit.db import InsertMany, rows_among

    table = Table("kit_test_lengths", MetaData(), Column("code", String(5), primary_key=True), Column("n", Integer))
    engine = await with_new_table(url, table)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await InsertMany(table).rows(session, [{"code": "abcde", "n": 1}])
    postgres = engine.dialect.name == "postgresql"
    for write in (
        lambda session: InsertMany(table, ["code"]).rows(session, [{"code": "abcdefgh", "n": 2}]),
        lambda session: Upsert(table, ["code", "n"], ["code"], ["n"]).many(session, [{"code": "abcdefgh", "n": 3}]),
    ):
        if postgres:
            with pytest.raises(DBAPIError, match="too long"):
                async with sessions() as session, session.begin():
                    await write(session)
        else:
            async with sessions() as session, session.begin():
                await write(session)
    async with sessions() as session:
        stored = {tuple(row) for row in (await session.execute(select(table.c.code, table.c.n))).all()}
        found = await rows_among(session, (table.c.code,), table.c.code, ["abcdefgh", "abcdexyz"])
    assert stored == ({("abcde", 1)} if postgres else {("abcde", 1), ("abcdefgh", 3)})
    assert [tuple(row) for row in found] == ([] if postgres else [("abcdefgh",)])
    await engine.dispose()


async def test_columns_every_row_of_a_chunk_shares_are_sent_once_and_stored_as_given_on_either_database(
    url: str,
) -> None:
    """`InsertMany` sends a column whose value every row of a chunk shares as one value (asyncpg encoded
    each copy again): strings, numbers, flags, times, JSON and NULLs are stored exactly as sent as arrays,
    and a shared string longer than its column is refused, never cut."""
    from sqlalchemy import JSON, Boolean
    from sqlalchemy.exc import DBAPIError

    from shequtong_kit.db import InsertMany, UtcDateTime

    table = Table(
        "kit_test_shared_columns",
        MetaData(),
        Column("id", String(36), primary_key=True),
        Column("status", String(8)),
        Column("n", Integer),
        Column("flag", Boolean),
        Column("at", UtcDateTime, nullable=True),
        Column("tags", JSON),
        Column("note", String(20), nullable=True),
    )
    engine = await with_new_table(url, table)
    insert = InsertMany(table, ["id"], "id")
    sessions = session_factory(engine)
    at = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    shared = [
        {"id": f"s{n}", "status": "visible", "n": 0, "flag": False, "at": at, "tags": ["邻里"], "note": None}
        for n in range(3)
    ]
    mixed = [
        {"id": "m0", "status": "hidden", "n": 1, "flag": True, "at": None, "tags": [], "note": "a"},
        {"id": "m1", "status": "visible", "n": 1, "flag": False, "at": at, "tags": [], "note": None},
    ]
    async with sessions() as session, session.begin():
        assert await insert.rows(session, shared) == {"s0", "s1", "s2"}
        assert await insert.rows(session, mixed) == {"m0", "m1"}
        assert await insert.rows(session, shared[:1]) == set(), "a row of one: every column shared, its key too"
    async with sessions() as session:
        stored = [tuple(row) for row in await session.execute(select(table).order_by(table.c.id))]
    assert stored == [
        ("m0", "hidden", 1, True, None, [], "a"),
        ("m1", "visible", 1, False, at, [], None),
        *[(f"s{n}", "visible", 0, False, at, ["邻里"], None) for n in range(3)],
    ]
    postgres = engine.dialect.name == "postgresql"
    if postgres:  # the shapes the chunks had: which columns went as one value
        assert set(insert._postgres) == {
            frozenset({"status", "n", "flag", "at", "tags", "note"}),
            frozenset({"n", "tags"}),
        }
    too_long = [{**row, "id": f"t{n}", "status": "far too long"} for n, row in enumerate(shared)]
    if postgres:  # SQLite keeps no length
        with pytest.raises(DBAPIError, match="too long"):
            async with sessions() as session, session.begin():
                await insert.rows(session, too_long)
        async with sessions() as session:
            assert (await session.execute(select(table.c.id).where(table.c.id.like("t%")))).all() == []
    await engine.dispose()


async def test_a_driver_read_answers_what_sqlalchemy_answers_by_position_on_either_database(url: str) -> None:
    """`DriverRead`: a union with a literal in it and an array parameter, read in autocommit and inside a
    transaction that wrote first (its own write is seen: same connection), the same rows as SQLAlchemy's."""
    from sqlalchemy import literal, union_all
    from sqlalchemy.orm import registry

    from shequtong_kit.db import DriverRead, matches_any, reading_sessions

    places = Table(
        "kit_test_driver_read", MetaData(), Column("place", String(10), primary_key=True), Column("n", Integer)
    )
    engine = await with_new_table(url, places)
    dialect = engine.dialect.name
    statement = union_all(
        select(literal("total").label("place"), bindparam("total", type_=Integer).label("n")),
        select(places.c.place, places.c.n).where(matches_any(places.c.place, "wanted", dialect)),
    )
    read = DriverRead(statement)
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        await session.execute(places.insert(), [{"place": p, "n": n} for p, n in [("a", 1), ("b", 2), ("c", 3)]])
    params = {"total": 7, "wanted": ["a", "c", "z"]}
    async with reading_sessions(sessions)() as session:
        driven = sorted(tuple(row) for row in await read.rows(session, params))
        through_sqlalchemy = sorted(tuple(row) for row in await session.execute(statement, params))
    assert driven == through_sqlalchemy == [("a", 1), ("c", 3), ("total", 7)]
    async with sessions() as session, session.begin():
        await session.execute(places.update().where(places.c.place == "a").values(n=10))
        assert sorted(tuple(row) for row in await read.rows(session, params)) == [("a", 10), ("c", 3), ("total", 7)]
        await session.rollback()
    async with reading_sessions(sessions)() as session:
        assert [row[1] for row in await read.rows(session, {"total": 0, "wanted": ["a"]}) if row[0] == "a"] == [1]

    class Place:  # an ORM object added and not flushed: the read flushes it first, as autoflush would
        def __init__(self, place: str, n: int) -> None:
            self.place, self.n = place, n

    registry().map_imperatively(Place, places)
    async with sessions() as session, session.begin():
        session.add(Place("d", 4))
        assert sorted(tuple(row) for row in await read.rows(session, {"total": 0, "wanted": ["d"]})) == [
            ("d", 4),
            ("total", 0),
        ]
        await session.rollback()
    await engine.dispose()


async def test_a_driver_read_on_a_connection_gone_is_unavailable_and_the_next_read_gets_a_new_one(
    database_url: str,
) -> None:
    """The connection a `DriverRead` finds closed (PostgreSQL restarted, the backend terminated) leaves the
    pool, and the read raises the OperationalError the kit answers UNAVAILABLE (retryable)."""
    from sqlalchemy.exc import OperationalError

    from shequtong_kit.db import DriverRead
    from shequtong_kit.grpc_server import database_unavailable

    engine = create_engine(database_url, pool_size=1)  # the next read would get the first connection again
    if engine.dialect.name != "postgresql":
        await engine.dispose()
        pytest.skip("the driver is only bypassed on PostgreSQL (on SQLite a DriverRead is SQLAlchemy's read)")
    backend = DriverRead(select(func.pg_backend_pid()))
    sessions = session_factory(engine)
    async with sessions() as session:
        first = (await backend.rows(session, {}))[0][0]
    killer = create_engine(database_url, null_pool=True)
    async with killer.connect() as connection:
        assert (await connection.execute(text(f"SELECT pg_terminate_backend({int(first)})"))).scalar_one()
    await killer.dispose()
    with pytest.raises(OperationalError) as raised:
        async with sessions() as session:
            await backend.rows(session, {})
    assert database_unavailable(raised.value)
    async with sessions() as session:
        second = (await backend.rows(session, {}))[0][0]
    assert second != first
    await engine.dispose()
