"""In-process comparisons of two ways to do one thing, alternated in the same process so that a noisy
machine moves both alike (the whole-stack bench cannot separate a 10% change from this VM's drift).

  * sessions: a use case of two small reads through `sessions()` (a transaction: BEGIN … ROLLBACK) and
    through `reading_sessions()` (autocommit), on PostgreSQL;
  * a list parameter: 20 ids looked up by an expanding `IN` and by `matches_any` (one array parameter), and
    that statement sent straight to asyncpg (`DriverRead`), alone and with the reading session around it;
  * routing: matching gateway paths against the app's flat table of shaped routes and against the same
    routers included the FastAPI way (matched twice, with scope bookkeeping per candidate);
  * counter deltas: insights' upsert of a transaction's counters as a multi-row `INSERT … ON CONFLICT`
    (compiled on every call) and as arrays unnested into rows, compiled once (`kit.db.unnested_insert`);
  * spans: one server span recorded, and not recorded (the kit's sampler when nothing exports traces).

    .venv/bin/python -m bench.micro.bench_micro [--rounds 4] [--uses 2000]

A benchmark, not a test: it prints a Markdown report (bench/micro/RESULTS.md holds a recorded one).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import pkgutil
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, Date, Integer, MetaData, String, Table, bindparam, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import Match

from shequtong_kit.db import (
    CompiledOnce,
    DriverRead,
    as_arrays,
    create_engine,
    matches_any,
    reading_sessions,
    session_factory,
    unnested_insert,
)
from shequtong_kit.testing import Databases, temp_workdir

ROUTED_PATHS = ("/v1/neighbourhoods/n1/feed", "/v1/posts/p1", "/v1/posts/p1/comments", "/v1/boards/b1/posts")


async def _use(factory: async_sessionmaker[AsyncSession], uses: int) -> tuple[float, float]:
    """Microseconds of this process's CPU and of wall time per use of two point reads."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(uses):
        async with factory() as session:
            await session.execute(select(literal(1)))
            await session.execute(select(literal(2)))
    return (time.process_time() - cpu) / uses * 1e6, (time.perf_counter() - wall) / uses * 1e6


async def _lookups(factory: async_sessionmaker[AsyncSession], statement: Any, uses: int) -> tuple[float, float]:
    """Microseconds of CPU and of wall time per lookup of 20 ids."""
    ids = [f"id-{i:03d}" for i in range(0, 200, 10)]
    read = statement.rows if isinstance(statement, DriverRead) else None
    cpu, wall = time.process_time(), time.perf_counter()
    async with factory() as session:
        for _ in range(uses):
            found = (
                await read(session, {"ids": ids}) if read else (await session.execute(statement, {"ids": ids})).all()
            )
            assert len(found) == len(ids)
    return (time.process_time() - cpu) / uses * 1e6, (time.perf_counter() - wall) / uses * 1e6


async def _page_reads(factory: async_sessionmaker[AsyncSession], statement: Any, uses: int) -> tuple[float, float]:
    """Microseconds of CPU and of wall time per use case of one session and one lookup of 20 ids (what a
    kept feed page does twice: its versions, its counters)."""
    ids = [f"id-{i:03d}" for i in range(0, 200, 10)]
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(uses):
        async with factory() as session:
            if isinstance(statement, DriverRead):
                found = await statement.rows(session, {"ids": ids})
            else:
                found = list(await session.execute(statement, {"ids": ids}))
            assert len(found) == len(ids)
    return (time.process_time() - cpu) / uses * 1e6, (time.perf_counter() - wall) / uses * 1e6


async def _upserts(
    factory: async_sessionmaker[AsyncSession],
    write: Callable[[AsyncSession, list[tuple[Any, ...]]], Awaitable[None]],
    uses: int,
) -> tuple[float, float]:
    """Microseconds of CPU and of wall time per transaction adding 6 counter deltas (as insights' consumers do)."""
    day = datetime(2026, 3, 2, tzinfo=UTC).date()
    cpu, wall = time.process_time(), time.perf_counter()
    for use in range(uses):
        rows = [(f"n-{(use + k) % 50:02d}", day, f"metric-{k}", 1) for k in range(6)]
        async with factory() as session, session.begin():
            await write(session, sorted(rows))
    return (time.process_time() - cpu) / uses * 1e6, (time.perf_counter() - wall) / uses * 1e6


def _counter_writes(counters: Table) -> dict[str, Callable[[AsyncSession, list[tuple[Any, ...]]], Awaitable[None]]]:
    columns = ("n", "d", "m", "v")

    async def multi_row(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
        stmt = postgresql.insert(counters).values([dict(zip(columns, row, strict=True)) for row in rows])
        await session.execute(
            stmt.on_conflict_do_update(index_elements=["n", "d", "m"], set_={"v": counters.c.v + stmt.excluded.v})
        )

    unnested = unnested_insert(counters, columns)
    once = CompiledOnce(
        unnested.on_conflict_do_update(index_elements=["n", "d", "m"], set_={"v": counters.c.v + unnested.excluded.v})
    )

    async def arrays(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
        await once.execute(session, as_arrays(columns, rows))

    return {
        "6 counter deltas: multi-row INSERT … ON CONFLICT (compiled per call)": multi_row,
        "6 counter deltas: unnested arrays, compiled once (insights)": arrays,
    }


async def compare_database(rounds: int, uses: int) -> dict[str, list[tuple[float, float]]]:
    with temp_workdir("bench-micro-") as workdir:
        dbs = Databases(Path(workdir))
        if not dbs.use_postgres:
            raise SystemExit("these comparisons need PostgreSQL (autocommit reads and arrays are PostgreSQL only)")
        engine = create_engine(dbs.create("micro"))
        metadata = MetaData()
        table = Table("items", metadata, Column("id", String(36), primary_key=True), Column("n", Integer))
        counters = Table(
            "counters",
            metadata,
            *(Column(name, String(48), primary_key=True) for name in ("n", "m")),
            Column("d", Date, primary_key=True),
            Column("v", BigInteger, nullable=False),
        )
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
            await connection.execute(table.insert(), [{"id": f"id-{i:03d}", "n": i} for i in range(1000)])
        sessions = session_factory(engine, cache_lineages=True)
        reads = reading_sessions(sessions)
        by_sqlalchemy = select(table).where(matches_any(table.c.id, "ids", "postgresql"))
        by_driver = DriverRead(by_sqlalchemy)
        ways: dict[str, Callable[[int], Awaitable[tuple[float, float]]]] = {
            "transaction (sessions)": lambda n: _use(sessions, n),
            "autocommit (reading_sessions)": lambda n: _use(reads, n),
            "20 ids by an expanding IN": lambda n: _lookups(
                sessions, select(table).where(table.c.id.in_(bindparam("ids", expanding=True))), n
            ),
            "20 ids by matches_any (= ANY(:array))": lambda n: _lookups(
                sessions, select(table).where(matches_any(table.c.id, "ids", "postgresql")), n
            ),
            "20 ids by matches_any, sent to asyncpg (DriverRead)": lambda n: _lookups(sessions, by_driver, n),
            "a reading session and 20 ids through SQLAlchemy": lambda n: _page_reads(reads, by_sqlalchemy, n),
            "a reading session and 20 ids sent to asyncpg (DriverRead)": lambda n: _page_reads(reads, by_driver, n),
            **{
                name: (lambda n, write=write: _upserts(sessions, write, n))
                for name, write in _counter_writes(counters).items()
            },
        }
        for way in ways.values():
            await way(200)  # warm: connections, prepared statements
        found: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, way in ways.items():
                found[name].append(await way(uses))
        await engine.dispose()
        dbs.drop_all()
    return found


def _apps() -> dict[str, Any]:
    from fastapi import FastAPI
    from shequtong_api_gateway import routes
    from shequtong_api_gateway.routing import add_routes

    flat, included = FastAPI(), FastAPI()
    for module_info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        router = getattr(importlib.import_module(f"{routes.__name__}.{module_info.name}"), "router", None)
        if router is not None:
            add_routes(flat, router)
            included.include_router(router)
    return {"flat table of shaped routes (the gateway's)": flat, "included routers (FastAPI's way)": included}


def _route_once(app: Any, path: str) -> None:
    """What the router does before the handler runs: match in order, then an included router matches again."""
    from fastapi.routing import _IncludedRouter

    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b""}
    for route in app.router.routes:
        match, _ = route.matches(scope)
        if match == Match.FULL:
            if isinstance(route, _IncludedRouter):
                route._match(scope)
            return


def _alternated(ways: dict[str, Any], timed: Callable[[Any], float], rounds: int) -> dict[str, list[float]]:
    """Each way timed once to warm up, then `rounds` times, the ways alternating."""
    for way in ways.values():
        timed(way)
    found: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, way in ways.items():
            found[name].append(timed(way))
    return found


def compare_routing(rounds: int, uses: int) -> dict[str, list[float]]:
    apps = _apps()

    def timed(app: Any) -> float:
        started = time.perf_counter()
        for _ in range(uses):
            for path in ROUTED_PATHS:
                _route_once(app, path)
        return (time.perf_counter() - started) / (uses * len(ROUTED_PATHS)) * 1e6

    return _alternated(apps, timed, rounds)


def compare_spans(rounds: int, uses: int) -> dict[str, list[float]]:
    """A span as the gRPC server instrumentation makes one (attributes, status, end), from a provider that
    records it and from the kit's provider without an exporter (`ParentBased(ALWAYS_OFF)`)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
    from opentelemetry.trace import SpanKind, StatusCode

    tracers = {
        "span recorded (no exporter: kept for nobody)": TracerProvider().get_tracer("micro"),
        "span not recorded (ParentBased(ALWAYS_OFF), ids kept)": TracerProvider(
            sampler=ParentBased(ALWAYS_OFF)
        ).get_tracer("micro"),
    }
    attributes = {"rpc.system": "grpc", "rpc.service": "issues.v1.IssuesService", "rpc.method": "ReportIssue"}

    def timed(tracer: Any) -> float:
        started = time.perf_counter()
        for _ in range(uses):
            with tracer.start_as_current_span("ReportIssue", kind=SpanKind.SERVER, attributes=attributes) as span:
                span.set_attribute("rpc.grpc.status_code", 0)
                span.set_status(StatusCode.OK)
        return (time.perf_counter() - started) / uses * 1e6

    return _alternated(tracers, timed, rounds)


def report(
    sessions: dict[str, list[tuple[float, float]]],
    routing: dict[str, list[float]],
    spans: dict[str, list[float]],
    args: Any,
) -> str:
    lines = [
        "# In-process comparisons (bench/micro)",
        "",
        f"- recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.micro.bench_micro --rounds "
        f"{args.rounds} --uses {args.uses}`; Python {platform.python_version()}, {platform.machine()}",
        "- each way measured `rounds` times, alternating with the other; min and median of the rounds",
        "",
        "| PostgreSQL: two point reads in one use case; then 20 ids in one statement | CPU µs: min / median "
        "| wall µs: min / median |",
        "| --- | ---: | ---: |",
    ]
    for name, runs in sessions.items():
        cpu, wall = [c for c, _ in runs], [w for _, w in runs]
        cpu_cell, wall_cell = (f"{min(xs):.0f} / {statistics.median(xs):.0f}" for xs in (cpu, wall))
        lines.append(f"| {name} | {cpu_cell} | {wall_cell} |")
    lines += [
        "",
        f"| routing one of {len(ROUTED_PATHS)} gateway paths | µs per request: min / median |",
        "| --- | ---: |",
    ]
    for name, runs in routing.items():
        lines.append(f"| {name} | {min(runs):.0f} / {statistics.median(runs):.0f} |")
    lines += ["", "| one server span | µs: min / median |", "| --- | ---: |"]
    for name, runs in spans.items():
        lines.append(f"| {name} | {min(runs):.1f} / {statistics.median(runs):.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--uses", type=int, default=2000)
    parser.add_argument("--output", default="", help="write the report here as well as to stdout")
    args = parser.parse_args()
    text = report(
        asyncio.run(compare_database(args.rounds, args.uses)),
        compare_routing(args.rounds, args.uses),
        compare_spans(args.rounds, args.uses * 10),
        args,
    )
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
