"""In-process comparisons of two ways to do one thing, alternated in the same process so that a noisy
machine moves both alike (the whole-stack bench cannot separate a 10% change from this VM's drift).

  * sessions: a use case of two small reads through `sessions()` (a transaction: BEGIN … ROLLBACK) and
    through `reading_sessions()` (autocommit), on PostgreSQL;
  * a list parameter: 20 ids looked up by an expanding `IN` and by `matches_any` (one array parameter);
  * routing: matching gateway paths against the app's flat table of shaped routes and against the same
    routers included the FastAPI way (matched twice, with scope bookkeeping per candidate).

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

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.routing import Match

from shequtong_kit.db import create_engine, matches_any, reading_sessions, session_factory
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
    cpu, wall = time.process_time(), time.perf_counter()
    async with factory() as session:
        for _ in range(uses):
            assert len((await session.execute(statement, {"ids": ids})).all()) == len(ids)
    return (time.process_time() - cpu) / uses * 1e6, (time.perf_counter() - wall) / uses * 1e6


async def compare_database(rounds: int, uses: int) -> dict[str, list[tuple[float, float]]]:
    with temp_workdir("bench-micro-") as workdir:
        dbs = Databases(Path(workdir))
        if not dbs.use_postgres:
            raise SystemExit("these comparisons need PostgreSQL (autocommit reads and arrays are PostgreSQL only)")
        engine = create_engine(dbs.create("micro"))
        table = Table("items", MetaData(), Column("id", String(36), primary_key=True), Column("n", Integer))
        async with engine.begin() as connection:
            await connection.run_sync(table.metadata.create_all)
            await connection.execute(table.insert(), [{"id": f"id-{i:03d}", "n": i} for i in range(1000)])
        sessions = session_factory(engine, cache_lineages=True)
        reads = reading_sessions(sessions)
        ways: dict[str, Callable[[int], Awaitable[tuple[float, float]]]] = {
            "transaction (sessions)": lambda n: _use(sessions, n),
            "autocommit (reading_sessions)": lambda n: _use(reads, n),
            "20 ids by an expanding IN": lambda n: _lookups(
                sessions, select(table).where(table.c.id.in_(bindparam("ids", expanding=True))), n
            ),
            "20 ids by matches_any (= ANY(:array))": lambda n: _lookups(
                sessions, select(table).where(matches_any(table.c.id, "ids", "postgresql")), n
            ),
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


def compare_routing(rounds: int, uses: int) -> dict[str, list[float]]:
    apps = _apps()
    found: dict[str, list[float]] = {name: [] for name in apps}

    def timed(app: Any) -> float:
        started = time.perf_counter()
        for _ in range(uses):
            for path in ROUTED_PATHS:
                _route_once(app, path)
        return (time.perf_counter() - started) / (uses * len(ROUTED_PATHS)) * 1e6

    for app in apps.values():
        timed(app)
    for _ in range(rounds):
        for name, app in apps.items():
            found[name].append(timed(app))
    return found


def report(sessions: dict[str, list[tuple[float, float]]], routing: dict[str, list[float]], args: Any) -> str:
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
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--uses", type=int, default=2000)
    parser.add_argument("--output", default="", help="write the report here as well as to stdout")
    args = parser.parse_args()
    text = report(asyncio.run(compare_database(args.rounds, args.uses)), compare_routing(args.rounds, args.uses), args)
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
