"""Feed pagination benchmark: is a page deep in a feed as fast as the first one?

Loads N posts (default 100,000) into a fresh PostgreSQL database migrated with the boards service's own
Alembic revisions, through the service's own paths (the neighbourhood consumer opens the boards,
`PostRepository.bulk_add` writes the posts), then times:

  * the board feed query (`PostRepository.board_feed`): first page vs a page ~`--depth` rows deep,
    reached by its keyset cursor, and — for contrast — the same deep page by OFFSET;
  * the home feed use case (`PostUseCases.home_feed`: access checks, two keyset scans in one statement, authors and
    likes loaded), first page vs deep page;

and records EXPLAIN (ANALYZE, BUFFERS) of the first and the deep keyset query.

    .venv/bin/python bench/feed/bench_feed.py                # 100k posts, PostgreSQL at 127.0.0.1:5432
    .venv/bin/python bench/feed/bench_feed.py --posts 20000 --depth 10000 --runs 30

This is a benchmark, not a test: it prints a Markdown report (bench/feed/RESULTS.md holds a recorded one).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shequtong_boards.domain.content import FeedKey, feed_key
from shequtong_boards.models import Post
from shequtong_boards.repository import FeedScope, PostRepository
from shequtong_boards.service import BoardsService
from shequtong_boards.usecases.base import Page
from sqlalchemy import event, select, text

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong_kit import regions
from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.clock import SystemClock
from shequtong_kit.db import create_engine, session_factory
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox
from shequtong_kit.pagination import decode_cursor, encode_cursor
from shequtong_kit.testing import Databases

PAGE = 20
MATTERS = "neighbourhood_matters"


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "shequtong_boards:migrations")
    os.environ["DATABASE_URL"] = url
    command.upgrade(config, "head")


class Capture:
    """Remembers the last SQL statement the engine ran (to EXPLAIN exactly what the repository sends)."""

    def __init__(self) -> None:
        self.statement = ""
        self.parameters: Any = None

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statement, self.parameters = statement, parameters


async def timed(fn: Callable[[], Awaitable[Any]], runs: int) -> dict[str, float]:
    for _ in range(3):  # warm the pool, the plan cache and the buffers
        await fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "median": statistics.median(samples),
        "p95": samples[min(len(samples) - 1, int(len(samples) * 0.95))],
        "min": samples[0],
    }


async def load(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = create_engine(url, pool_size=4)
    sessions = session_factory(engine, cache_lineages=True)  # as the service runtime does
    service = BoardsService(sessions, Outbox("boards-bench"), SystemClock())
    district, subdistrict = str(uuid.uuid4()), str(uuid.uuid4())
    neighbourhoods = [str(uuid.uuid4()) for _ in range(args.neighbourhoods)]
    async with sessions() as session, session.begin():
        for index, n in enumerate(neighbourhoods):
            message = identity_ev.NeighbourhoodCreated(
                neighbourhood_id=n,
                code=f"BENCH{index:04d}",
                name=f"bench-{index}",
                kind=1,
                subdistrict_id=subdistrict,
                district_id=district,
            )
            await regions.record_neighbourhood(session, message)
            await service.open_boards_for(session, n)
    operator = Principal("svc:bench", parse_roles(["operator@*"]))
    entry, _ = await service.boards.put_catalogue_entry(
        operator,
        district,
        "district_news",
        "区级新闻",
        "district",
        {"read": ["anyone"], "post": ["district_staff"], "comment": ["member"], "moderate": ["district_staff"]},
    )
    target = neighbourhoods[0]
    boards = {v.board.kind: v.board for v in await service.boards.list_boards(operator, target)}
    all_boards = []
    for n in neighbourhoods:
        all_boards += [v.board for v in await service.boards.list_boards(operator, n) if v.board.neighbourhood_id]
    news = boards[entry.key]

    # Half the posts in the target neighbourhood's 身边事 (the deep feed), a tenth in its other boards, a
    # tenth on the district board, the rest spread over the other neighbourhoods; 1% hidden, a few pinned.
    rng = random.Random(7)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    span = timedelta(days=730).total_seconds()
    target_boards = [b for b in all_boards if b.neighbourhood_id == target and b.kind != MATTERS]
    others = [b for b in all_boards if b.neighbourhood_id != target]
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    repo_sessions = 0
    for i in range(args.posts):
        share = i / args.posts
        board = (
            boards[MATTERS]
            if share < 0.5
            else rng.choice(target_boards)
            if share < 0.6
            else news
            if share < 0.7
            else rng.choice(others)
        )
        rows.append(
            {
                "id": new_id(),
                "board_id": board.id,
                "board_kind": board.kind,
                "neighbourhood_id": board.neighbourhood_id,
                "district_id": district,
                "author_id": f"bench-author-{rng.randrange(2000)}",
                "title": f"帖子 {i}",
                "body": "楼道灯不亮，麻烦看看。" * 4,
                "image_refs": [],
                "tags": [],
                "mentioned_handles": [],
                "status": "hidden" if rng.random() < 0.01 else "visible",
                "pinned": rng.random() < 0.0002,
                "locked": False,
                "like_count": 0,
                "comment_count": 0,
                "official_answer_count": 0,
                "version": 1,
                "created_at": start + timedelta(seconds=rng.random() * span),
            }
        )
        if len(rows) == args.batch:
            async with sessions() as session, session.begin():
                await PostRepository(session).bulk_add(rows)
            repo_sessions += 1
            rows = []
    if rows:
        async with sessions() as session, session.begin():
            await PostRepository(session).bulk_add(rows)
    load_seconds = time.perf_counter() - started
    async with engine.connect() as conn:
        await conn.execute(text("ANALYZE posts"))
        await conn.commit()
    return {
        "engine": engine,
        "sessions": sessions,
        "service": service,
        "operator": operator,
        "target": target,
        "matters": boards[MATTERS],
        "load_seconds": load_seconds,
    }


async def lineage_of(sessions: Any, neighbourhood_id: str) -> Any:
    async with sessions() as session:
        return await regions.lineage(session, neighbourhood_id)


async def explain(engine: Any, capture: Capture, run: Callable[[], Awaitable[Any]]) -> str:
    await run()
    statement, parameters = capture.statement, capture.parameters
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        return "\n".join(row[0] for row in result)


async def bench(args: argparse.Namespace, url: str) -> str:
    ctx = await load(args, url)
    engine, sessions, service = ctx["engine"], ctx["sessions"], ctx["service"]
    board = ctx["matters"].id
    capture = Capture()
    event.listen(engine.sync_engine, "before_cursor_execute", capture)

    async with sessions() as session:
        visible = (
            await session.execute(
                select(text("count(*)")).select_from(Post).where(Post.board_id == board, Post.status == "visible")
            )
        ).scalar_one()
        depth = min(args.depth, int(visible) - PAGE - 1)
        row = (
            await session.execute(
                select(Post.pinned, Post.created_at, Post.id)
                .where(Post.board_id == board, Post.status == "visible")
                .order_by(Post.pinned.desc(), Post.created_at.desc(), Post.id.desc())
                .offset(depth - 1)
                .limit(1)
            )
        ).one()
    deep_key = FeedKey(bool(row[0]), row[1], row[2])

    async def first_page() -> Any:
        async with sessions() as session:
            return await PostRepository(session).board_feed(board, None, PAGE + 1)

    async def deep_page() -> Any:
        async with sessions() as session:
            return await PostRepository(session).board_feed(board, deep_key, PAGE + 1)

    async def offset_page() -> Any:
        async with sessions() as session:
            query = (
                select(Post)
                .where(Post.board_id == board, Post.status == "visible")
                .order_by(Post.pinned.desc(), Post.created_at.desc(), Post.id.desc())
                .offset(depth)
                .limit(PAGE + 1)
            )
            return list((await session.execute(query)).scalars())

    assert [p.id for p in await deep_page()] == [p.id for p in await offset_page()], "keyset and OFFSET disagree"

    # The home feed through the use case (access checks, two keyset scans in one statement, authors/likes/polls).
    operator, target = ctx["operator"], ctx["target"]
    home_deep_cursor = ""
    page = await service.posts.home_feed(operator, target, Page.of("", 100))
    for _ in range(max(0, depth // 100 - 1)):
        if not page.next_cursor:
            break
        page = await service.posts.home_feed(operator, target, Page.of(page.next_cursor, 100))
    home_deep_cursor = page.next_cursor

    home_key = feed_key(decode_cursor(home_deep_cursor))
    lineage = await lineage_of(sessions, target)

    local, district = FeedScope(target), FeedScope(lineage.district_id)

    async def feed(neighbourhood: FeedScope | None, wide: FeedScope | None, after: FeedKey | None) -> Any:
        async with sessions() as session:
            return await PostRepository(session).home_feed(neighbourhood, wide, after, PAGE + 1)

    async def scans_first() -> Any:
        return await feed(local, district, None)

    async def scans_deep() -> Any:
        return await feed(local, district, home_key)

    async def local_deep() -> Any:
        return await feed(local, None, home_key)

    async def district_deep() -> Any:
        return await feed(None, district, home_key)

    async def home_first() -> Any:
        return await service.posts.home_feed(operator, target, Page.of("", PAGE))

    async def home_deep() -> Any:
        return await service.posts.home_feed(operator, target, Page.of(home_deep_cursor, PAGE))

    results = {
        "board feed, first page (keyset)": await timed(first_page, args.runs),
        f"board feed, page at row {depth:,} (keyset cursor)": await timed(deep_page, args.runs),
        f"board feed, page at row {depth:,} (OFFSET, for contrast)": await timed(offset_page, args.runs),
        "home feed statement (neighbourhood + district scans in one), first page": await timed(scans_first, args.runs),
        f"home feed statement, page at row ~{depth:,} (cursor)": await timed(scans_deep, args.runs),
        "home feed use case, first page": await timed(home_first, args.runs),
        f"home feed use case, page at row ~{depth:,} (cursor)": await timed(home_deep, args.runs),
    }
    plan_first = await explain(engine, capture, first_page)
    plan_deep = await explain(engine, capture, deep_page)
    plan_offset = await explain(engine, capture, offset_page)
    plan_local = await explain(engine, capture, local_deep)
    plan_district = await explain(engine, capture, district_deep)
    async with engine.connect() as conn:
        version = (await conn.execute(text("SELECT version()"))).scalar_one()
        total = (await conn.execute(text("SELECT count(*) FROM posts"))).scalar_one()
    await engine.dispose()

    lines = [
        "# Feed pagination benchmark",
        "",
        f"- recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `bench/feed/bench_feed.py "
        f"--posts {args.posts} --depth {args.depth} --runs {args.runs}`",
        f"- {version.split(',')[0]}; Python {platform.python_version()}; {platform.machine()}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} when the timings started",
        f"- {total:,} posts loaded through `PostRepository.bulk_add` in {ctx['load_seconds']:.1f} s; the deep board "
        f"(身边事 of one neighbourhood) holds {visible:,} visible posts",
        f"- page size {PAGE} (+1 to know whether more follow); each timing is {args.runs} runs after 3 warm-ups, "
        "in milliseconds, wall clock from the service process (one asyncpg round trip per query)",
        "",
        "| query | median ms | p95 ms | min ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [f"| {name} | {r['median']:.2f} | {r['p95']:.2f} | {r['min']:.2f} |" for name, r in results.items()]
    lines += [
        "",
        "## EXPLAIN (ANALYZE, BUFFERS): first page",
        "",
        "```",
        plan_first,
        "```",
        "",
        f"## EXPLAIN (ANALYZE, BUFFERS): page at row {depth:,} by keyset cursor",
        "",
        "```",
        plan_deep,
        "```",
        "",
        f"## EXPLAIN (ANALYZE, BUFFERS): page at row {depth:,} by OFFSET (what the cursor avoids)",
        "",
        "```",
        plan_offset,
        "```",
        "",
        f"## EXPLAIN (ANALYZE, BUFFERS): home feed at row ~{depth:,}, the neighbourhood scan",
        "",
        "```",
        plan_local,
        "```",
        "",
        f"## EXPLAIN (ANALYZE, BUFFERS): home feed at row ~{depth:,}, the district scan",
        "",
        "```",
        plan_district,
        "```",
        "",
        f"(cursor of the deep page as a client would send it: `{encode_cursor(*deep_key.encode())}`)",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=40_000, help="how deep the deep page is (rows)")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--neighbourhoods", type=int, default=20)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--database-url", default="", help="an empty PostgreSQL database (default: a fresh one)")
    parser.add_argument("--output", default="", help="write the report here as well as to stdout")
    args = parser.parse_args()

    dbs = None
    url = args.database_url
    if not url:
        dbs = Databases(Path(tempfile.mkdtemp(prefix="bench-feed-")))
        if not dbs.use_postgres:
            print("PostgreSQL is not reachable at 127.0.0.1:5432; the benchmark needs it", file=sys.stderr)
            return 2
        url = dbs.create("boards_feed_bench")
    try:
        migrate(url)
        report = asyncio.run(bench(args, url))
    finally:
        if dbs is not None:
            dbs.drop_all()
    print(report)
    if args.output:
        Path(args.output).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
