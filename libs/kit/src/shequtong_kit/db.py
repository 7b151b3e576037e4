"""Async SQLAlchemy 2 for PostgreSQL (asyncpg) and SQLite (aiosqlite) from one DATABASE_URL,
plus the kit's own tables (outbox, inbox, idempotency, region directory) and Alembic helpers."""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Enum,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    any_,
    bindparam,
    cast,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import ColumnElement, TextClause
from sqlalchemy.sql.selectable import CompoundSelect, Select
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")


def normalize_url(url: str) -> str:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def is_sqlite(url_or_engine: str | AsyncEngine) -> bool:
    name = url_or_engine.dialect.name if isinstance(url_or_engine, AsyncEngine) else normalize_url(url_or_engine)
    return str(name).startswith("sqlite")


def create_engine(url: str, pool_size: int = 20, max_overflow: int = 0, null_pool: bool = False) -> AsyncEngine:
    url = normalize_url(url)
    kwargs: dict[str, Any] = {}
    if null_pool:
        kwargs["poolclass"] = NullPool
    elif not url.startswith("sqlite"):
        # No pre-ping: on asyncpg it costs three round trips (BEGIN, a ping, ROLLBACK) at every checkout, i.e.
        # on every request. A connection that died with a database restart fails its first statement instead;
        # SQLAlchemy then invalidates the whole pool, the kit answers that request UNAVAILABLE (retryable) and
        # the next one gets a fresh connection (tests/resilience/test_postgres_restart.py).
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800)
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def once_per_transaction(session: AsyncSession, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
    """`compute()` at most once in the session's current transaction, its value for the rest of it.

    For work every step of a transaction would repeat (a shared lock, rules read at several steps): a new
    transaction, even on the same session, computes again."""
    transaction = session.get_transaction()
    kept = session.info.get(key)
    if transaction is not None and kept is not None and kept[0] is transaction:
        return kept[1]  # type: ignore[no-any-return]
    value = await compute()
    session.info[key] = (session.get_transaction(), value)
    return value


class PlannerStatistics:
    """Keeps PostgreSQL's planner statistics of bulk-loaded tables current, from the import that loads them.

    Autovacuum analyzes a table once enough of it changed, at its next nap, and only where it runs at all
    (this project's development and CI machines run PostgreSQL with autovacuum off). A bulk import grows
    tables by orders of magnitude in minutes; planned with the statistics of an empty table, an index
    lookup of 1,000 keys became a filter over every row (11 s per batch at 360,000 residents). Each import
    reports the rows it wrote; a table is analyzed once it has grown by half since its last analyze (and by
    at least `minimum` rows), so a load into millions of rows analyzes a dozen times, not per batch.

    Replicas importing into the same table each count their own rows: before analyzing, a process looks at
    the size the table's last analyze recorded (`pg_class.reltuples`, transactional, no delay); when another
    process analyzed since, it counts from there instead (each replica analyzed on its own count: twice the
    ANALYZEs, a seventh of PostgreSQL's time while residents were imported on two replicas)."""

    def __init__(self, minimum: int = 10_000, growth: float = 0.5) -> None:
        self.minimum = minimum
        self.growth = growth
        self._pending: dict[str, int] = {}
        self._analyzed_at: dict[str, int] = {}
        # reltuples as this process last saw it after an analyze (None: never looked)
        self._seen: dict[str, float] = {}

    async def wrote(self, session: AsyncSession, rows: int, *tables: str) -> list[str]:
        """Counts `rows` written to each of `tables` (our own table names); analyzes those that grew enough.
        Returns the tables analyzed (inside the caller's transaction: ANALYZE may run in one)."""
        if rows <= 0 or session.get_bind().dialect.name != "postgresql":
            return []
        due = []
        for table in tables:
            pending = self._pending.get(table, 0) + rows
            known = self._analyzed_at.get(table, 0)
            if pending >= max(self.minimum, self.growth * known):
                # Reset before awaiting: concurrent batches of this process must not analyze it twice.
                self._analyzed_at[table], self._pending[table] = known + pending, 0
                due.append(table)
            else:
                self._pending[table] = pending
        analyzed = []
        for table in due:
            recorded = await self._recorded_size(session, table)
            if recorded >= 0 and recorded != self._seen.get(table):
                # Another process analyzed it since this one last looked: count from what it saw.
                self._seen[table] = recorded
                self._analyzed_at[table] = int(recorded)
                continue
            await session.execute(text(f'ANALYZE "{table}"'))
            self._seen[table] = await self._recorded_size(session, table)
            self._analyzed_at[table] = max(0, int(self._seen[table]))
            analyzed.append(table)
        return analyzed

    @staticmethod
    async def _recorded_size(session: AsyncSession, table: str) -> float:
        """The rows the table's last analyze counted; -1 when it was never analyzed."""
        return float((await session.execute(_RECORDED_SIZE, {"table": f'"{table}"'})).scalar_one())


_RECORDED_SIZE = text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)")


def session_factory(engine: AsyncEngine, *, cache_lineages: bool = False) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep their objects after a commit; with `cache_lineages`, sessions share one
    process-wide cache of the region directory (see `regions.LineageCache`)."""
    if not cache_lineages:
        return async_sessionmaker(engine, expire_on_commit=False)
    from shequtong_kit.regions import LINEAGE_CACHE, LineageCache

    return async_sessionmaker(engine, expire_on_commit=False, info={LINEAGE_CACHE: LineageCache()})


class ReadingSession(Session):
    """A session that refuses to write: its statements commit one by one (see `reading_sessions`), so a
    write in it would not be undone with the rest of a failed use case."""


# Text statements are let through when they plainly read; a write hidden in a CTE is the caller's own risk.
_READING_TEXT = re.compile(r"\s*(select|show|values|explain)\b", re.IGNORECASE)


@event.listens_for(ReadingSession, "do_orm_execute")
def _refuse_writes(state: ORMExecuteState) -> None:
    statement = state.statement
    if statement.is_dml or (isinstance(statement, TextClause) and not _READING_TEXT.match(statement.text)):
        raise RuntimeError("a reading session only reads")


@event.listens_for(ReadingSession, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a reading session only reads")


def reading_sessions(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    """Sessions like `sessions` for use cases that only read. On PostgreSQL their statements run without
    a transaction around them (autocommit), which saves the BEGIN and the ROLLBACK round trips of every
    read (an eighth of boards' event loop in the home feed's profile; bench/micro compares the two). Reads
    lose nothing: under READ
    COMMITTED each statement sees what was committed when it started, in a transaction or not. On SQLite
    (the embedded default) they keep their transaction."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "postgresql":
        return async_sessionmaker(**{**sessions.kw, "sync_session_class": ReadingSession})
    return async_sessionmaker(
        **{
            **sessions.kw,
            "bind": bind.execution_options(isolation_level="AUTOCOMMIT"),
            "sync_session_class": ReadingSession,
        }
    )


class CompiledOnce:
    """A fixed PostgreSQL statement compiled once per process and sent as the driver's own SQL.

    For the statements SQLAlchemy will not cache: its PostgreSQL `INSERT … ON CONFLICT` opts out of the
    compiled cache, so each execution compiles it again (~170 µs for the consumers' inbox claim here).
    Parameters reach the driver as they are — only values asyncpg takes natively (str, int, a date, lists of those,
    an aware datetime); no type of ours processes them. Elsewhere (SQLite) the statement runs through
    SQLAlchemy as usual."""

    def __init__(self, statement: UpdateBase | Select[Any] | CompoundSelect[Any]) -> None:
        self.statement = statement
        self._compiled: tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]] | None = None

    async def rows(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        return list((await self._run(session, params)).all())

    async def execute(self, session: AsyncSession, params: dict[str, Any]) -> None:
        """For a statement that returns no rows."""
        await self._run(session, params)

    async def _run(self, session: AsyncSession, params: dict[str, Any]) -> Any:
        connection = await session.connection()
        if connection.dialect.name != "postgresql":
            return await session.execute(self.statement, params)
        sql, arguments = self._compile(connection.dialect)
        return await connection.exec_driver_sql(sql, arguments(params))

    def _compile(self, dialect: Dialect) -> tuple[str, Callable[[dict[str, Any]], tuple[Any, ...]]]:
        """The SQL, and how to order a call's parameters for it (a literal in the statement keeps its value)."""
        if self._compiled is None:
            compiled = self.statement.compile(dialect=dialect)
            names, fixed = tuple(compiled.positiontup or ()), dict(compiled.params)

            def arguments(params: dict[str, Any]) -> tuple[Any, ...]:
                return tuple(params[name] if name in params else fixed[name] for name in names)

            self._compiled = (str(compiled), arguments)
        return self._compiled


class DriverRead(CompiledOnce):
    """A fixed read that a hot path runs on every request, sent on PostgreSQL straight to asyncpg on the
    session's own connection: no cursor adapter, no result processing, asyncpg's own prepared statement.
    Through SQLAlchemy two such statements were a quarter of boards' CPU on a kept home-feed page
    (bench/micro compares the ways).

    Only for reads, and only of values asyncpg returns as they are meant (text, numbers, flags, times the
    caller only compares): no type of ours processes the results. A statement sent outside SQLAlchemy is
    not inside a transaction SQLAlchemy has not begun yet; under READ COMMITTED a read sees the same either
    way (what was committed when it started, and on the same connection this session's own writes, if it
    made any — then its transaction has begun). Objects added and not flushed yet are flushed first, as
    autoflush would. Rows answer by position (`row[0]`), on both databases; elsewhere (SQLite) the
    statement runs through SQLAlchemy."""

    async def rows(self, session: AsyncSession, params: dict[str, Any]) -> list[Any]:
        if session.autoflush and (session.new or session.dirty or session.deleted):
            await session.flush()  # what autoflush does before an ORM statement (a Core one would not flush)
        connection = await session.connection()
        if connection.dialect.name != "postgresql":
            return list((await session.execute(self.statement, params)).all())
        sql, arguments = self._compile(connection.dialect)
        sync = connection.sync_connection
        # A connection checked out holds its DBAPI connection: reading it needs no I/O, so no greenlet
        # (`get_raw_connection` spawns one to read the same attribute).
        raw = sync.connection if sync is not None and not sync.invalidated else await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            return list(await driver.fetch(sql, *arguments(params)))
        except Exception as exc:
            if not driver.is_closed():
                raise
            # What SQLAlchemy does with a statement whose connection is gone (its asyncpg dialect asks the same
            # question): the connection leaves the pool, and the caller gets the OperationalError that says
            # "unavailable, try again".
            await connection.invalidate(exc)
            raise OperationalError(sql, None, exc) from exc


class Upsert:
    """`INSERT … ON CONFLICT (keys) DO UPDATE SET updated = excluded.updated` of one row, built once per
    dialect: on PostgreSQL compiled once (`CompiledOnce`, so the values are of types asyncpg takes natively),
    on SQLite run through SQLAlchemy. For the projections a consumer writes per event."""

    def __init__(self, table: Table, columns: Sequence[str], keys: Sequence[str], updated: Sequence[str]) -> None:
        values: dict[str, Any] = {name: bindparam(name) for name in columns}
        postgres = postgresql.insert(table).values(values)
        self._postgres = CompiledOnce(
            postgres.on_conflict_do_update(
                index_elements=list(keys), set_={name: postgres.excluded[name] for name in updated}
            )
        )
        lite = sqlite.insert(table).values(values)
        self._sqlite = lite.on_conflict_do_update(
            index_elements=list(keys), set_={name: lite.excluded[name] for name in updated}
        )

        self._columns = list(columns)
        self._keys = list(keys)
        many = unnested_insert(table, columns)
        self._postgres_many = CompiledOnce(
            many.on_conflict_do_update(index_elements=list(keys), set_={name: many.excluded[name] for name in updated})
        )

    async def execute(self, session: AsyncSession, values: dict[str, Any]) -> None:
        if session.get_bind().dialect.name == "postgresql":
            await self._postgres.execute(session, values)
        else:
            await session.execute(self._sqlite, values)

    async def later(self, session: AsyncSession, values: dict[str, Any]) -> None:
        """In a consumer batch that flushes at its commit: the row is kept and written with the batch's other
        rows of this upsert in one statement (`write_later`; the last values per key win, as upserting them
        in turn would). Elsewhere: `execute` now. A repository that also reads or changes the table in such
        a batch calls `write_later` first."""
        if flushes_each_event(session):
            await self.execute(session, values)
            return
        kept: dict[Upsert, dict[tuple[Any, ...], dict[str, Any]]] = session.info.setdefault(_LATER, {})
        kept.setdefault(self, {})[tuple(values[key] for key in self._keys)] = values

    async def many(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Upserts the rows now, one statement per 1,000 on PostgreSQL (a key given twice: the last values)."""
        latest = {tuple(row[key] for key in self._keys): row for row in rows}
        if latest:
            await self._write_many(session, list(latest.values()))

    async def _write_many(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        # In key order: two replicas' batches upserting overlapping keys then wait for each other instead of
        # each holding a row the other needs (a deadlock, and the batch handled again one event at a time).
        rows = sorted(rows, key=lambda row: tuple("" if row[key] is None else row[key] for key in self._keys))
        if session.get_bind().dialect.name == "postgresql":
            for start in range(0, len(rows), 1000):
                chunk = [[row[name] for name in self._columns] for row in rows[start : start + 1000]]
                await self._postgres_many.execute(session, as_arrays(self._columns, chunk))
        else:
            await session.execute(self._sqlite, rows)


class InsertMany:
    """A bulk import's `INSERT` of many rows, built once per dialect: with `keys`, `ON CONFLICT (keys) DO
    NOTHING` (a re-sent batch inserts nothing twice); with `returned`, the values of that column of the rows
    this call inserted. On PostgreSQL one unnested statement per 1,000 rows, compiled once
    (`unnested_insert`): SQLAlchemy's multi-row VALUES renders and processes every row's parameters again
    on each call, most of an import's own CPU. The rows give every column of the table, as values asyncpg
    takes natively (see `CompiledOnce`); JSON columns' values are encoded here. On SQLite SQLAlchemy's
    insert."""

    def __init__(self, table: Table, keys: Sequence[str] = (), returned: str | None = None) -> None:
        self._table = table
        self._columns = [column.name for column in table.columns]
        # As SQLAlchemy binds them: None is JSON's null unless the column says none_as_null.
        self._json = {
            column.name: bool(column.type.none_as_null) for column in table.columns if isinstance(column.type, JSON)
        }
        self._returned = returned
        self._keys = list(keys)
        # One statement per set of columns whose value a chunk shares (see `_postgres_for`).
        self._postgres: dict[frozenset[str], CompiledOnce] = {}
        lite: Any = sqlite.insert(table)
        if keys:
            lite = lite.on_conflict_do_nothing(index_elements=list(keys))
        if returned is not None:
            lite = lite.returning(table.c[returned])
        self._sqlite = lite

    def _postgres_for(self, shared: frozenset[str]) -> CompiledOnce:
        """The statement taking the `shared` columns as one value each and the rest as arrays. An import's
        rows share many columns (a status, zero counts, NULLs, an empty list): sent as arrays, asyncpg encoded
        each of those values again — half of the comment import's columns and most of a post's."""
        statement = self._postgres.get(shared)
        if statement is None:
            many: Any = unnested_insert(self._table, self._columns, shared)
            if self._keys:
                many = many.on_conflict_do_nothing(index_elements=self._keys)
            if self._returned is not None:
                many = many.returning(self._table.c[self._returned])
            statement = CompiledOnce(many)
            if len(self._postgres) < _SHAPES_KEPT:
                self._postgres[shared] = statement
        return statement

    async def rows(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[Any]:
        """Inserts the rows (each with a value for every column of the table); returns the `returned` values of
        those this call inserted (none without it)."""
        inserted: set[Any] = set()
        postgres = session.get_bind().dialect.name == "postgresql"
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            if not postgres:
                result = await session.execute(self._sqlite, list(chunk))
                if self._returned is not None:
                    inserted.update(result.scalars().all())
                continue
            arrays = {name: [row[name] for row in chunk] for name in self._columns}
            for name, none_as_null in self._json.items():
                arrays[name] = [None if value is None and none_as_null else _json_text(value) for value in arrays[name]]
            # The first column always varies: unnest needs an array, and a chunk of one row shares every column.
            shared = frozenset(
                name for name in self._columns[1:] if arrays[name].count(arrays[name][0]) == len(arrays[name])
            )
            params = {name: values[0] if name in shared else values for name, values in arrays.items()}
            statement = self._postgres_for(shared)
            if self._returned is None:
                await statement.execute(session, params)
            else:
                inserted.update(row[0] for row in await statement.rows(session, params))
        return inserted


@functools.cache
def insert_many(table: Table, keys: tuple[str, ...] = (), returned: str | None = None) -> InsertMany:
    """The table's `InsertMany` of that shape, built on first use (for a repository that inserts into any of
    its tables)."""
    return InsertMany(table, keys, returned)


# Statements an InsertMany keeps per table (sets of shared columns); a rarer shape is compiled each time.
_SHAPES_KEPT = 32


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# True in a consumer transaction whose writes are flushed together at its commit (ConsumerSpec.flush_each).
_DEFERRED_FLUSH = "shequtong.consumer.deferred_flush"
# The rows `Upsert.later` keeps until `write_later`.
_LATER = "shequtong.db.upserts_later"


def defer_flush(session: AsyncSession, deferred: bool) -> None:
    """Marks a consumer transaction whose writes are flushed together at its commit (or not)."""
    session.info[_DEFERRED_FLUSH] = deferred


def flushes_each_event(session: AsyncSession) -> bool:
    """False inside a consumer transaction whose writes are flushed together at its commit (a handler that
    flushes to turn a database error into its own verdict, e.g. a poison message, leaves it to the retry
    one event per transaction)."""
    return not session.info.get(_DEFERRED_FLUSH, False)


async def write_later(session: AsyncSession) -> None:
    """Writes the rows `Upsert.later` kept in this session, one statement per upsert (and 1,000 rows)."""
    kept: dict[Upsert, dict[tuple[Any, ...], dict[str, Any]]] = session.info.pop(_LATER, None) or {}
    for upsert, rows in kept.items():
        await upsert._write_many(session, list(rows.values()))


def _unbounded(item_type: Any) -> Any:
    """A string keeps no length: PostgreSQL's cast to `VARCHAR(n)` cuts a longer value silently (a look-up
    would then match another key, an insert store a cut value), where the column itself refuses it ("value
    too long")."""
    if isinstance(item_type, String) and not isinstance(item_type, Enum) and item_type.length is not None:
        return String()
    return item_type


def array_of(item_type: Any) -> postgresql.ARRAY[Any]:
    """The type of an array parameter of a column's values (strings without their length: `_unbounded`)."""
    return postgresql.ARRAY(_unbounded(item_type))


def unnested_insert(table: Table, columns: Sequence[str], shared: frozenset[str] = frozenset()) -> Any:
    """PostgreSQL's `INSERT INTO table (columns) SELECT * FROM unnest(:column, …)`: each parameter, named as
    its column, is the array of that column's values — one statement text for any number of rows (a
    multi-row VALUES is a statement per row count). The `shared` columns (not all of them) take one value,
    the same for every row. Add `.on_conflict_…` and run it with `CompiledOnce`, the parameters from
    `as_arrays`."""
    varying = [name for name in columns if name not in shared]
    arrays = (bindparam(name, type_=array_of(table.c[name].type)) for name in varying)
    rows = func.unnest(*arrays).table_valued(*varying).render_derived()
    values = [
        cast(bindparam(name, type_=_unbounded(table.c[name].type)), _unbounded(table.c[name].type))
        if name in shared
        else rows.c[name]
        for name in columns
    ]
    return postgresql.insert(table).from_select(list(columns), select(*values))


def as_arrays(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    """Rows as one list per column: the parameters of an `unnested_insert`."""
    return {name: [row[i] for row in rows] for i, name in enumerate(columns)}


def matches_any(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[bool]:
    """`column` among the list bound as `name`, for a statement built once per dialect. On PostgreSQL one
    array parameter (`= ANY(:name)`): an expanding `IN` is rendered again, one placeholder per item, on
    every execution (a twelfth of boards' event loop on a kept home-feed page), and each list length is a
    statement of its own. Elsewhere (SQLite has no arrays) the expanding `IN`."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=array_of(column.type)))
    return column.in_(bindparam(name, expanding=True))


async def rows_among(
    session: AsyncSession, columns: Sequence[ColumnElement[Any]], key: ColumnElement[Any], values: Sequence[Any]
) -> list[Any]:
    """`SELECT columns WHERE key IN values` for a long list (a bulk import's keys), 1,000 values per
    statement through `matches_any`. Give Core columns (`Model.__table__.c`): ORM attributes make SQLAlchemy
    build result objects per row."""
    if not values:
        return []
    statement = _among(tuple(columns), key, session.get_bind().dialect.name)
    found: list[Any] = []
    for start in range(0, len(values), 1000):
        found.extend((await session.execute(statement, {"values": list(values[start : start + 1000])})).all())
    return found


@functools.lru_cache(maxsize=512)
def _among(columns: tuple[ColumnElement[Any], ...], key: ColumnElement[Any], dialect: str) -> Any:
    """`rows_among`'s statement, built once: SQLAlchemy keeps a statement's cache key with the statement, and
    built per call its key was computed again each time (a thirtieth of the comment import's CPU)."""
    return select(*columns).where(matches_any(key, "values", dialect))


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on PostgreSQL and on SQLite (which forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use UTC-aware datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The kit's tables live in every service's database (created by each service's first migration).
kit_metadata = MetaData()

outbox = Table(
    "outbox",
    kit_metadata,
    Column("id", String(36), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("type", String(200), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
)
Index(
    "ix_outbox_unsent",
    outbox.c.id,
    postgresql_where=outbox.c.sent_at.is_(None),
    sqlite_where=outbox.c.sent_at.is_(None),
)

inbox = Table(
    "inbox",
    kit_metadata,
    Column("consumer", String(120), primary_key=True),
    Column("event_id", String(64), primary_key=True),
    Column("handled_at", UtcDateTime, nullable=False),
)

idempotency_keys = Table(
    "idempotency_keys",
    kit_metadata,
    Column("scope", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

region_directory = Table(
    "region_directory",
    kit_metadata,
    Column("neighbourhood_id", String(36), primary_key=True),
    Column("subdistrict_id", String(36), nullable=False, index=True),
    Column("district_id", String(36), nullable=False, index=True),
    Column("kind", Integer, nullable=False),
    Column("code", String(64), nullable=False),
    Column("name", String(200), nullable=False),
)


def create_kit_tables(connection: Connection) -> None:
    """Called from each service's first Alembic migration: `create_kit_tables(op.get_bind())`."""
    kit_metadata.create_all(connection)


def drop_kit_tables(connection: Connection) -> None:
    kit_metadata.drop_all(connection)


# --- Alembic --------------------------------------------------------------------------------------


def run_alembic_env(target_metadata: MetaData | list[MetaData]) -> None:
    """The whole body of each service's migrations/env.py."""
    from alembic import context

    config = context.config
    url = os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("DATABASE_URL is required to run migrations")
    metadatas = target_metadata if isinstance(target_metadata, list) else [target_metadata]
    url = normalize_url(url)

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=metadatas,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadatas, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return

    async def online() -> None:
        engine = create_engine(url, null_pool=True)
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(online())


def upgrade_head(alembic_ini: Path, database_url: str | None = None) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(alembic_ini))
    config.set_main_option("script_location", str(alembic_ini.parent / "migrations"))
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    command.upgrade(config, "head")
