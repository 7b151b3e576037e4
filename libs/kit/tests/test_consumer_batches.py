"""The consumer's batches against a real NATS server and a real database.

A fetched batch commits in one transaction with its inbox rows and is acked after the commit. These
tests hold the guarantees that batching must not weaken: one poisoned or failing event does not fail
its neighbours, a redelivered event that was handled before changes nothing, and a consumer that dies
between its commit and its acks (a real process, killed) causes no second effect. A consumer that
prefetches its batch's rows and flushes once at the commit has the effects of one event at a time.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import CheckConstraint, Integer, String, func, select
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_kit import prefetch
from shequtong_kit.consumer import (
    ConsumerRunner,
    ConsumerSpec,
    PoisonMessage,
    ReceivedEvent,
    flushes_each_event,
    route,
)
from shequtong_kit.db import Upsert, create_engine, inbox, kit_metadata, outbox, session_factory
from shequtong_kit.nats_io import ensure_stream
from shequtong_kit.outbox import Outbox
from shequtong_kit.testing import Databases, NatsServer, temp_workdir

EFFECT = "volunteers.effect.recorded"  # the handlers' effect: an outbox row (a fresh id each time)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with temp_workdir("kit-batches-") as path:
        yield path


@pytest.fixture(scope="module")
def nats_server(workdir: Path) -> Iterator[NatsServer]:
    server = NatsServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def database_url(workdir: Path) -> Iterator[str]:
    dbs = Databases(workdir)
    yield dbs.create("kit_batches")
    dbs.drop_all()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(kit_metadata.drop_all)
        await conn.run_sync(kit_metadata.create_all)
    yield eng
    await eng.dispose()


async def _publish(js: object, subject: str, code: str, event_id: str, msg_id: str | None = None) -> None:
    await js.publish(  # type: ignore[attr-defined]
        subject,
        ev.NeighbourhoodCreated(neighbourhood_id=code, code=code).SerializeToString(),
        headers={
            "ce-id": event_id,
            "ce-type": "x",
            "ce-time": "2026-11-26T00:00:00+00:00",
            "Nats-Msg-Id": msg_id or event_id,
        },
    )


async def _effects(engine: AsyncEngine) -> dict[str, int]:
    """How many times each code's effect committed."""
    async with session_factory(engine)() as session:
        rows = (await session.execute(select(outbox.c.payload).where(outbox.c.subject == EFFECT))).all()
    counts: dict[str, int] = {}
    for (payload,) in rows:
        code = ev.NeighbourhoodCreated.FromString(payload).code
        counts[code] = counts.get(code, 0) + 1
    return counts


async def _inbox_rows(engine: AsyncEngine, consumer: str) -> int:
    async with session_factory(engine)() as session:
        count = await session.scalar(select(func.count()).select_from(inbox).where(inbox.c.consumer == consumer))
    return int(count or 0)


async def _settled(nats_url: str, stream: str, durable: str, within: float = 30) -> None:
    """Until the durable has nothing pending and nothing waiting for an ack."""
    nc = await nats.connect(nats_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            try:
                info = await nc.jetstream().consumer_info(stream, durable)
            except NotFoundError:
                info = None  # the runner has not created its durable yet
            if info is not None and info.num_pending == 0 and info.num_ack_pending == 0:
                return
            assert loop.time() < deadline, f"{durable}: not settled: {info}"
            await asyncio.sleep(0.05)
    finally:
        await nc.close()


class Running:
    """A ConsumerRunner on its own connection, stopped on exit."""

    def __init__(self, engine: AsyncEngine, nats_url: str, spec: ConsumerSpec, linger: float = 0.0) -> None:
        self.engine, self.nats_url, self.spec, self.linger = engine, nats_url, spec, linger

    async def __aenter__(self) -> Running:
        self.nc = await nats.connect(self.nats_url)
        self.runner = ConsumerRunner(self.nc.jetstream(), session_factory(self.engine), self.spec, linger=self.linger)
        self.task = asyncio.create_task(self.runner.run())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.runner.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.nc.close()


def _recording_handler(
    calls: list[tuple[str, int]], committed: list[str], poison: set[str], flaky: set[str], sessions: list[int]
):  # type: ignore[no-untyped-def]
    """A handler whose effect is an outbox row; it records its calls, its sessions and, per commit, the
    codes whose effect committed (in order)."""
    effects = Outbox("kit-test")

    async def handle(session: AsyncSession, message: ev.NeighbourhoodCreated, event: ReceivedEvent) -> None:
        calls.append((message.code, event.delivery))
        if message.code in poison:
            raise PoisonMessage("this one can never be handled")
        if message.code in flaky and event.delivery == 1:
            raise RuntimeError("downstream hiccup")
        await effects.add(session, EFFECT, ev.NeighbourhoodCreated(code=message.code))
        sessions.append(id(session))
        pending = session.info.setdefault("codes", [])
        if not pending:
            sa_event.listen(session.sync_session, "after_commit", lambda _s: committed.extend(pending), once=True)
        pending.append(message.code)

    return handle


async def test_a_poisoned_event_in_a_batch_does_not_fail_the_others(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "VOLUNTEERS")
    await ensure_stream(js, "DLQ")
    dlq = await js.subscribe("dlq.volunteers.batch.>", stream="DLQ", ordered_consumer=True)
    codes = [f"b{i}" for i in range(12)]
    for code in codes:  # all stored before the consumer starts: they arrive in one batch
        await _publish(js, "volunteers.batch.event", code, f"batch-{code}")

    calls: list[tuple[str, int]] = []
    committed: list[str] = []
    sessions: list[int] = []
    handler = _recording_handler(calls, committed, poison={"b4"}, flaky={"b8"}, sessions=sessions)
    spec = ConsumerSpec(
        "kit-test-batch-poison",
        "VOLUNTEERS",
        ["volunteers.batch.>"],
        route({"volunteers.batch.event": (ev.NeighbourhoodCreated, handler)}),
        max_deliver=3,
        backoff=(0.05, 0.05, 0.05),
    )
    async with Running(engine, nats_server.url, spec):
        dead = await dlq.next_msg(timeout=20)
        for _ in range(400):  # the flaky one comes back after its nak delay
            if "b8" in committed:
                break
            await asyncio.sleep(0.05)
        await _settled(nats_server.url, "VOLUNTEERS", spec.name)
    await nc.close()

    assert dead.subject == "dlq.volunteers.batch.event"
    assert dead.headers is not None and dead.headers["ce-id"] == "batch-b4"
    assert "can never be handled" in dead.headers["dlq-reason"]
    effects = await _effects(engine)
    assert effects == {code: 1 for code in codes if code != "b4"}, "every other event committed exactly once"
    # The flaky one failed on its first delivery without taking its neighbours down, then succeeded;
    # nobody else was redelivered, and the poisoned one was dead-lettered on its first delivery.
    assert ("b8", 1) in calls and ("b8", 2) in calls
    assert {delivery for code, delivery in calls if code != "b8"} == {1}
    assert [delivery for code, delivery in calls if code == "b4"] == [1]
    # The neighbours committed in delivery order; the flaky one came back after them.
    assert [c for c in committed if c != "b8"] == [c for c in codes if c not in {"b4", "b8"}]
    assert committed[-1] == "b8"
    assert await _inbox_rows(engine, spec.name) == len(codes) - 1  # the poisoned one is not marked handled
    # Fewer transactions than events: the good ones were committed in batches.
    assert len(set(sessions)) < len(codes) - 1


async def test_a_redelivered_event_handled_before_changes_nothing(engine: AsyncEngine, nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "BOARDS")
    calls: list[tuple[str, int]] = []
    committed: list[str] = []
    sessions: list[int] = []
    handler = _recording_handler(calls, committed, poison=set(), flaky=set(), sessions=sessions)
    spec = ConsumerSpec(
        "kit-test-batch-redelivery",
        "BOARDS",
        ["boards.redelivery.>"],
        route({"boards.redelivery.event": (ev.NeighbourhoodCreated, handler)}),
    )
    await _publish(js, "boards.redelivery.event", "r-first", "redelivery-first")
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "BOARDS", spec.name)
    assert await _effects(engine) == {"r-first": 1}

    # Republished after the dedupe window (a fresh Nats-Msg-Id, the same event id), in one batch with
    # new events, one of which also arrives twice inside the batch.
    await _publish(js, "boards.redelivery.event", "r-first", "redelivery-first", msg_id="redelivery-first-late")
    await _publish(js, "boards.redelivery.event", "r-new", "redelivery-new")
    await _publish(js, "boards.redelivery.event", "r-new", "redelivery-new", msg_id="redelivery-new-copy")
    await _publish(js, "boards.redelivery.event", "r-other", "redelivery-other")
    calls.clear()
    sessions.clear()
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "BOARDS", spec.name)
    await nc.close()

    assert await _effects(engine) == {"r-first": 1, "r-new": 1, "r-other": 1}
    assert sorted(code for code, _ in calls) == ["r-new", "r-other"], "the handler never saw a copy"
    assert len(set(sessions)) == 1, "the batch's new events committed in one transaction"
    assert await _inbox_rows(engine, spec.name) == 3


async def test_work_left_for_before_commit_is_written_once_per_transaction_and_once_per_event(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    """Handlers leave their effect in the session for `before_commit` to write in one go (insights folds
    its counters this way). Its first call fails: the runner retries the events one per transaction, and
    each event's effect still commits exactly once."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "ISSUES")
    codes = [f"f{i}" for i in range(10)]
    for code in codes:
        await _publish(js, "issues.fold.event", code, f"fold-{code}")
    effects = Outbox("kit-test")
    folds: list[list[str]] = []

    async def handle(session: AsyncSession, message: ev.NeighbourhoodCreated, _event: ReceivedEvent) -> None:
        session.info.setdefault("fold", []).append(message.code)

    async def write_fold(session: AsyncSession) -> None:
        fold = session.info.pop("fold", [])
        folds.append(list(fold))
        if len(folds) == 1:
            raise RuntimeError("the folded write failed once")
        for code in fold:
            await effects.add(session, EFFECT, ev.NeighbourhoodCreated(code=code))

    spec = ConsumerSpec(
        "kit-test-batch-fold",
        "ISSUES",
        ["issues.fold.>"],
        route({"issues.fold.event": (ev.NeighbourhoodCreated, handle)}),
        before_commit=write_fold,
    )
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "ISSUES", spec.name)
    await nc.close()

    assert len(folds[0]) > 1, "the first transaction folded several events"
    assert all(len(fold) == 1 for fold in folds[1 : 1 + len(folds[0])]), "then one event per transaction"
    assert await _effects(engine) == {code: 1 for code in codes}
    assert await _inbox_rows(engine, spec.name) == len(codes)


CRASHING_CONSUMER = textwrap.dedent(
    """
    import asyncio, sys
    import nats
    from shequtong.events.v1 import identity_events_pb2 as ev
    from shequtong_kit.consumer import ConsumerRunner, ConsumerSpec, route
    from shequtong_kit.db import create_engine, session_factory
    from shequtong_kit.outbox import Outbox

    async def main():
        engine = create_engine(sys.argv[1])
        nc = await nats.connect(sys.argv[2])
        effects = Outbox("kit-test")

        async def handle(session, message, event):
            await effects.add(session, "volunteers.effect.recorded", ev.NeighbourhoodCreated(code=message.code))

        spec = ConsumerSpec(
            "kit-test-batch-crash", "GRID", ["grid.crash.>"],
            route({"grid.crash.event": (ev.NeighbourhoodCreated, handle)}), ack_wait=2.0,
        )
        await ConsumerRunner(nc.jetstream(), session_factory(engine), spec).run()

    asyncio.run(main())
    """
)


async def test_a_consumer_killed_between_commit_and_ack_causes_no_second_effect(
    engine: AsyncEngine, database_url: str, nats_server: NatsServer
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "GRID")
    codes = ["c1", "c2", "c3"]
    for code in codes:
        await _publish(js, "grid.crash.event", code, f"crash-{code}")

    env = {**os.environ, "SHEQUTONG_FAULT_CONSUMER_CRASH_AFTER_COMMIT": "1"}
    crashed = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CRASHING_CONSUMER, database_url, nats_server.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr
    assert await _effects(engine) == dict.fromkeys(codes, 1), "the batch committed before the crash"
    info = await js.consumer_info("GRID", "kit-test-batch-crash")
    assert info.ack_floor is not None and not info.ack_floor.consumer_seq, "…and none of it was acked"

    calls: list[tuple[str, int]] = []
    handler = _recording_handler(calls, [], poison=set(), flaky=set(), sessions=[])
    spec = ConsumerSpec(
        "kit-test-batch-crash",
        "GRID",
        ["grid.crash.>"],
        route({"grid.crash.event": (ev.NeighbourhoodCreated, handler)}),
        ack_wait=2.0,
    )
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "GRID", spec.name)  # redelivered after ack_wait, then acked
    await nc.close()

    assert calls == [], "the redelivered events were skipped by the inbox"
    assert await _effects(engine) == dict.fromkeys(codes, 1)
    assert await _inbox_rows(engine, spec.name) == len(codes)


async def _trickle(engine: AsyncEngine, nats_url: str, linger: float) -> int:
    """Twelve events published 50 ms apart to a consumer lingering `linger`: how many transactions took
    them (each event is checked to have committed exactly once)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, "VOLUNTEERS")
    committed: list[str] = []
    handler = _recording_handler([], committed, poison=set(), flaky=set(), sessions=[])
    transactions: list[int] = []

    async def counting(session: AsyncSession, message: ev.NeighbourhoodCreated, event: ReceivedEvent) -> None:
        if "counted" not in session.info:  # a session per batch transaction
            session.info["counted"] = True
            transactions.append(len(transactions))
        await handler(session, message, event)

    name = f"trickle{int(linger * 1000)}"
    subject = f"volunteers.{name}.event"
    spec = ConsumerSpec(
        f"kit-test-{name}", "VOLUNTEERS", [subject], route({subject: (ev.NeighbourhoodCreated, counting)})
    )
    codes = [f"{name}-{i}" for i in range(12)]
    async with Running(engine, nats_url, spec, linger=linger):
        for code in codes:
            await _publish(js, subject, code, f"{name}-{code}")
            await asyncio.sleep(0.05)
        await _settled(nats_url, "VOLUNTEERS", spec.name)
    await nc.close()
    effects = await _effects(engine)
    assert {code: effects.get(code) for code in codes} == {code: 1 for code in codes}
    return len(transactions)


async def test_a_trickle_of_events_shares_transactions_when_the_consumer_lingers(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    """Events arriving every few milliseconds: without a linger each tends to be a transaction of its own;
    with one, those of the linger's span share one — and every event still commits exactly once."""
    alone = await _trickle(engine, nats_server.url, 0.0)
    shared = await _trickle(engine, nats_server.url, 0.3)
    assert shared <= 6 and shared < alone, (shared, alone)


async def _ack_pending_reaches(nats_url: str, stream: str, durable: str, count: int, within: float = 10) -> bool:
    """Whether the durable comes to hold `count` messages delivered and not yet acked, within `within` s."""
    nc = await nats.connect(nats_url)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            if (await nc.jetstream().consumer_info(stream, durable)).num_ack_pending >= count:
                return True
            await asyncio.sleep(0.05)
        return False
    finally:
        await nc.close()


async def _published(nats_url: str, word: str, count: int) -> list[str]:
    """`count` events on `volunteers.<word>.event`, stored before any consumer starts; their codes in order."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, "VOLUNTEERS")
    codes = [f"{word}{i:02d}" for i in range(count)]
    for code in codes:
        await _publish(js, f"volunteers.{word}.event", code, f"{word}-{code}")
    await nc.close()
    return codes


def _ahead_spec(name: str, subject: str, handled: list[str], at_batch_end: Any) -> ConsumerSpec:
    """Batches of 4; records each code handled and awaits `at_batch_end()` after the first batch's last."""
    effects = Outbox("kit-test")

    async def handle(session: AsyncSession, message: ev.NeighbourhoodCreated, _event: ReceivedEvent) -> None:
        await effects.add(session, EFFECT, ev.NeighbourhoodCreated(code=message.code))
        handled.append(message.code)
        if len(handled) == 4:
            await at_batch_end()

    return ConsumerSpec(
        name, "VOLUNTEERS", [subject], route({subject: (ev.NeighbourhoodCreated, handle)}), batch=4, ack_wait=60
    )


async def test_under_load_the_next_batch_is_fetched_while_one_is_handled_and_order_is_kept(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    """A full batch: the next one is delivered while it is handled (8 messages out at once, not 4), and is
    handled after it — every event once, in the order published."""
    codes = await _published(nats_server.url, "ahead", 12)
    handled: list[str] = []
    overlapped: list[bool] = []
    name = "kit-test-fetch-ahead"

    async def at_batch_end() -> None:
        overlapped.append(await _ack_pending_reaches(nats_server.url, "VOLUNTEERS", name, 8))

    spec = _ahead_spec(name, "volunteers.ahead.event", handled, at_batch_end)
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "VOLUNTEERS", name)
    assert overlapped == [True]
    assert handled == codes
    assert await _effects(engine) == dict.fromkeys(codes, 1)


async def test_a_batch_fetched_ahead_goes_back_at_once_when_the_runner_stops(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    """Stopped while a batch waits behind the one being handled: the waiting batch is nak'd, so the next
    runner handles it now, not after the 60 s ack_wait — and nothing is handled twice."""
    codes = await _published(nats_server.url, "back", 8)
    name = "kit-test-fetch-ahead-stop"
    handled: list[str] = []
    first = Running(engine, nats_server.url, ConsumerSpec(name, "VOLUNTEERS", [], route({})))

    async def stop_when_the_next_batch_is_out() -> None:
        assert await _ack_pending_reaches(nats_server.url, "VOLUNTEERS", name, 8)
        first.runner.stop()

    first.spec = _ahead_spec(name, "volunteers.back.event", handled, stop_when_the_next_batch_is_out)
    await first.__aenter__()
    await asyncio.wait_for(first.task, 20)  # returns by itself once stopped
    await first.nc.close()
    assert handled == codes[:4]
    async with Running(engine, nats_server.url, _ahead_spec(name, "volunteers.back.event", handled, _nothing)):
        await _settled(nats_server.url, "VOLUNTEERS", name, within=20)
    assert handled == codes
    assert await _effects(engine) == dict.fromkeys(codes, 1)


async def _nothing() -> None:
    return None


# --- prefetching consumers: rows loaded for the batch, writes flushed at the commit --------------------


class TallyBase(DeclarativeBase):
    pass


class Tally(TallyBase):
    __tablename__ = "kit_test_tallies"
    __table_args__ = (CheckConstraint("count < 100", name="ck_kit_test_tallies_small"),)

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


@pytest.fixture
async def tallies(engine: AsyncEngine) -> AsyncIterator[AsyncEngine]:
    async with engine.begin() as conn:
        await conn.run_sync(TallyBase.metadata.drop_all)
        await conn.run_sync(TallyBase.metadata.create_all)
    yield engine


def _tally_spec(name: str, subject: str, flush_modes: list[bool]) -> ConsumerSpec:
    """Counts events per code in `Tally` and sends an event for each; the code "boom" sets a count the table
    refuses."""
    effects = Outbox("kit-test")

    async def handle(session: AsyncSession, message: ev.NeighbourhoodCreated, _event: ReceivedEvent) -> None:
        flush_modes.append(flushes_each_event(session))
        await effects.add(session, EFFECT, ev.NeighbourhoodCreated(code=message.code))
        row = await prefetch.get(session, Tally, message.code, lock=True)
        if row is None:
            prefetch.add(session, Tally(code=message.code, count=500 if message.code == "boom" else 1))
        else:
            row.count += 1

    async def load(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        codes = [m.code for m in (e.peek(ev.NeighbourhoodCreated) for e in events) if m is not None]
        await prefetch.load(session, Tally, codes, lock=True)

    return ConsumerSpec(
        name,
        "VOLUNTEERS",
        [subject],
        route({subject: (ev.NeighbourhoodCreated, handle)}),
        prefetch=load,
        flush_each=False,
        max_deliver=2,
        backoff=(0.05,),
    )


async def _tallies(engine: AsyncEngine) -> dict[str, int]:
    async with session_factory(engine)() as session:
        return {code: count for code, count in (await session.execute(select(Tally.code, Tally.count))).all()}


def _statements_on_tallies(engine: AsyncEngine) -> list[str]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "kit_test_tallies" in statement:
            seen.append(statement.split()[0].upper())
        elif statement.startswith("INSERT INTO outbox"):
            seen.append("INSERT INTO outbox")

    sa_event.listen(engine.sync_engine, "before_cursor_execute", record)
    return seen


async def test_a_prefetched_batch_has_the_effects_of_one_event_at_a_time_in_fewer_statements(
    tallies: AsyncEngine, nats_server: NatsServer
) -> None:
    engine = tallies
    async with session_factory(engine)() as session, session.begin():
        session.add(Tally(code="old", count=10))
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "VOLUNTEERS")
    codes = ["a", "b", "a", "old", "c", "a", "b", "new", "old"]
    for index, code in enumerate(codes):  # stored before the consumer starts: one batch
        await _publish(js, "volunteers.tally.batch", code, f"tally-{index}")
    statements = _statements_on_tallies(engine)
    modes: list[bool] = []
    spec = _tally_spec("kit-test-prefetch", "volunteers.tally.batch", modes)
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "VOLUNTEERS", spec.name)
    await nc.close()
    ran = list(statements)

    assert await _tallies(engine) == {"a": 3, "b": 2, "c": 1, "new": 1, "old": 12}
    assert await _effects(engine) == {"a": 3, "b": 2, "c": 1, "new": 1, "old": 2}, "every event sent its own"
    assert modes == [False] * len(codes), "one transaction, its writes flushed at the commit"
    # One SELECT for the batch, one INSERT of its four new rows, one UPDATE (of the row that existed), and
    # the nine events it sent in one INSERT.
    assert sorted(ran) == ["INSERT", "INSERT INTO outbox", "SELECT", "UPDATE"], ran


async def test_a_write_refused_at_the_commit_fails_its_own_event_only(
    tallies: AsyncEngine, nats_server: NatsServer
) -> None:
    engine = tallies
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "VOLUNTEERS")
    await ensure_stream(js, "DLQ")
    codes = ["x", "y", "boom", "x", "z"]
    for index, code in enumerate(codes):
        await _publish(js, "volunteers.tally.refused", code, f"refused-{index}")
    modes: list[bool] = []
    spec = _tally_spec("kit-test-prefetch-refused", "volunteers.tally.refused", modes)
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "VOLUNTEERS", spec.name)
    await nc.close()

    assert await _tallies(engine) == {"x": 2, "y": 1, "z": 1}, "every other event counted exactly once"
    assert await _effects(engine) == {"x": 2, "y": 1, "z": 1}, "and sent its event once; the refused one none"
    assert modes[: len(codes)] == [False] * len(codes), "first the batch, flushed at its commit"
    assert set(modes[len(codes) :]) == {True}, "then one event per transaction, each flushed alone"


async def test_a_durable_takes_the_subjects_a_new_version_of_its_consumer_filters(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    """A service that learns a new subject (e.g. a packed import event) updates its existing durable's
    filter when it starts. Events of that subject the durable passed before are not delivered: a consumer
    must be deployed before the producer that starts sending the subject (docs/DEVELOPING.md)."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "ISSUES")
    calls: list[tuple[str, int]] = []
    handler = _recording_handler(calls, [], poison=set(), flaky=set(), sessions=[])
    table = {
        "issues.grow.old": (ev.NeighbourhoodCreated, handler),
        "issues.grow.new": (ev.NeighbourhoodCreated, handler),
    }
    before = ConsumerSpec("kit-test-growing-filter", "ISSUES", ["issues.grow.old"], route(table))
    await _publish(js, "issues.grow.old", "g-old-1", "grow-old-1")
    await _publish(js, "issues.grow.new", "g-new-early", "grow-new-early")  # no version filters it yet
    await _publish(js, "issues.grow.old", "g-old-2", "grow-old-2")
    async with Running(engine, nats_server.url, before):
        await _settled(nats_server.url, "ISSUES", before.name)
    assert sorted(code for code, _ in calls) == ["g-old-1", "g-old-2"]

    after = ConsumerSpec(before.name, "ISSUES", ["issues.grow.old", "issues.grow.new"], route(table))
    async with Running(engine, nats_server.url, after):
        for _ in range(400):  # until the runner has updated the durable
            info = await js.consumer_info("ISSUES", after.name)
            if "issues.grow.new" in (info.config.filter_subjects or []):
                break
            await asyncio.sleep(0.05)
        await _publish(js, "issues.grow.new", "g-new", "grow-new")
        await _publish(js, "issues.grow.old", "g-old-3", "grow-old-3")
        for _ in range(400):
            if len(calls) == 4:
                break
            await asyncio.sleep(0.05)
        await _settled(nats_server.url, "ISSUES", after.name)
    await nc.close()

    assert sorted(info.config.filter_subjects or []) == ["issues.grow.new", "issues.grow.old"]
    assert sorted(code for code, _ in calls) == ["g-new", "g-old-1", "g-old-2", "g-old-3"]
    assert (await _effects(engine)).get("g-new-early") is None


_SET_TALLY = Upsert(Tally.__table__, ["code", "count"], ["code"], ["count"])


async def test_upserts_kept_for_the_commit_are_written_once_with_the_last_values_per_key(
    tallies: AsyncEngine, nats_server: NatsServer
) -> None:
    """`Upsert.later` in a batch flushed at its commit: one statement for the batch, the values of the last
    event per key (as upserting in turn would); a row the table refuses fails its own event only."""
    engine = tallies
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "VOLUNTEERS")
    await ensure_stream(js, "DLQ")
    sets = [("a", 5), ("b", 7), ("a", 9), ("c", 500), ("b", 8)]  # c: more than the table takes
    for index, (code, count) in enumerate(sets):
        await js.publish(
            "volunteers.tally.set",
            ev.NeighbourhoodCreated(code=code, kind=count).SerializeToString(),  # type: ignore[arg-type]
            headers={"ce-id": f"set-{index}", "ce-type": "x", "Nats-Msg-Id": f"set-{index}"},
        )

    async def handle(session: AsyncSession, message: ev.NeighbourhoodCreated, _event: ReceivedEvent) -> None:
        await _SET_TALLY.later(session, {"code": message.code, "count": int(message.kind)})

    spec = ConsumerSpec(
        "kit-test-upsert-later",
        "VOLUNTEERS",
        ["volunteers.tally.set"],
        route({"volunteers.tally.set": (ev.NeighbourhoodCreated, handle)}),
        flush_each=False,
        max_deliver=2,
        backoff=(0.05,),
    )
    statements = _statements_on_tallies(engine)
    async with Running(engine, nats_server.url, spec):
        await _settled(nats_server.url, "VOLUNTEERS", spec.name)
    await nc.close()
    ran = list(statements)

    assert await _tallies(engine) == {"a": 9, "b": 8}
    # The batch's one statement (refused: c), then one event per transaction, each written alone, and c's
    # second (last) delivery.
    assert ran == ["INSERT"] * (1 + len(sets) + 1), ran


def test_a_batch_sends_runs_of_grants_packed_in_order_and_within_the_size() -> None:
    """`outbox.packed_runs`: two or more `identity.role.granted` in a row become `identity.role.granted_many`
    events holding them in order (split by size); a lone one, and every other subject, stay as they were."""
    from shequtong_kit.outbox import packed_runs
    from shequtong_kit.packs import PACKS, ROLES_GRANTED_MANY

    def row(subject: str, message: Any, n: int) -> dict[str, Any]:
        return {"id": f"e{n:02d}", "subject": subject, "payload": message.SerializeToString(), "headers": {"n": n}}

    def grant(n: int) -> dict[str, Any]:
        person = f"p{n:02d}-" + "x" * 40
        return row("identity.role.granted", ev.RoleGranted(person_id=person, role="volunteer", scope="n:1"), n)

    revoked = row("identity.role.revoked", ev.RoleRevoked(person_id="p03", role="volunteer"), 3)
    rows = [grant(1), grant(2), revoked, grant(4), row("identity.person.updated", ev.PersonProfileUpdated(), 5)]
    rows += [grant(n) for n in range(6, 16)]
    one_grant = len(rows[-1]["payload"]) + 8
    sent = packed_runs(rows, limit=4 * one_grant)
    assert [(r["subject"].rsplit(".", 1)[1], r["id"]) for r in sent] == [
        ("granted_many", "e01"),
        ("revoked", "e03"),
        ("granted", "e04"),
        ("updated", "e05"),
        ("granted_many", "e06"),
        ("granted_many", "e10"),
        ("granted_many", "e14"),
    ]
    packed = [r for r in sent if r["subject"] == ROLES_GRANTED_MANY]
    assert {r["type"] for r in packed} == {"shequtong.events.v1.RolesGranted"}
    assert [r["headers"]["n"] for r in packed] == [1, 6, 10, 14], "the first item's trace headers"
    assert {(r["headers"]["ce-subject"], r["headers"]["ce-type"]) for r in packed} == {
        (ROLES_GRANTED_MANY, "shequtong.events.v1.RolesGranted")
    }
    held = [list(PACKS[ROLES_GRANTED_MANY].items(ev.RolesGranted.FromString(r["payload"]))) for r in packed]
    assert [len(items) for items in held] == [2, 4, 4, 2]
    persons = [item.person_id[:3] for items in held for _, item in items]
    assert persons == ["p01", "p02"] + [f"p{n:02d}" for n in range(6, 16)]
    assert {subject for items in held for subject, _ in items} == {"identity.role.granted"}


def test_pack_items_gives_every_event_a_pack_stands_for_in_order_whatever_its_subject() -> None:
    """A consumer that reads subjects by pattern (every `issues.issue.<transition>` is a state change) opens
    a pack with `pack_items`: every item with the subject it stands for, in order; an item of a kind this
    reader does not know is left out; a delivery that is not a pack gives None; a pack that does not decode
    is poison (a prefetch's peek gives nothing instead)."""
    from shequtong.events.v1 import issues_events_pb2 as iss
    from shequtong_kit.consumer import pack_items
    from shequtong_kit.packs import ISSUES_IMPORTED

    def received(subject: str, payload: bytes) -> ReceivedEvent:
        return ReceivedEvent("e1", subject, "", "issues", "2026-01-01T00:00:00+00:00", payload, {}, 1)

    pack = iss.IssueEventsImported(
        events=[
            iss.ImportedIssueEvent(subject="issues.issue.reported", reported=iss.IssueReported(issue_id="i1")),
            iss.ImportedIssueEvent(subject="issues.record.assigned", assigned=iss.IssueAssigned(issue_id="i1")),
            iss.ImportedIssueEvent(subject="issues.issue.from_the_future"),  # no payload this reader knows
            iss.ImportedIssueEvent(
                subject="issues.issue.acknowledged", state_changed=iss.IssueStateChanged(issue_id="i1", round=1)
            ),
            iss.ImportedIssueEvent(subject="issues.issue.rated", rated=iss.IssueRated(issue_id="i2", rating=5)),
        ]
    )
    items = pack_items(received(ISSUES_IMPORTED, pack.SerializeToString()))
    assert items is not None
    assert [(subject, type(message).__name__, message.issue_id) for subject, message in items] == [
        ("issues.issue.reported", "IssueReported", "i1"),
        ("issues.record.assigned", "IssueAssigned", "i1"),
        ("issues.issue.acknowledged", "IssueStateChanged", "i1"),
        ("issues.issue.rated", "IssueRated", "i2"),
    ]
    single = iss.IssueReported(issue_id="i3").SerializeToString()
    assert pack_items(received("issues.issue.reported", single)) is None
    with pytest.raises(PoisonMessage):
        pack_items(received(ISSUES_IMPORTED, b"\xff\xff"))
    assert pack_items(received(ISSUES_IMPORTED, b"\xff\xff"), peek=True) == []


def test_events_packed_before_they_are_written_come_out_as_the_rows_packed_at_the_commit() -> None:
    """`outbox.packed_events` (a batch that builds its events itself: `Outbox.add_all`) packs exactly as
    `packed_runs` packs the rows `Outbox.add` kept: the same subjects in the same order, the same items."""
    from shequtong_kit.outbox import packed_events, packed_runs
    from shequtong_kit.packs import PACKS, ROLES_GRANTED_MANY

    def grant(n: int) -> tuple[str, Any]:
        return "identity.role.granted", ev.RoleGranted(person_id=f"p{n:02d}-" + "x" * 40, role="volunteer")

    events = [grant(1), grant(2), ("identity.role.revoked", ev.RoleRevoked(person_id="p03")), grant(4)]
    events += [("identity.person.updated", ev.PersonProfileUpdated(person_id="p05"))]
    events += [grant(n) for n in range(6, 16)]
    limit = 4 * (events[-1][1].ByteSize() + 8)
    rows = [
        {"id": f"e{n:02d}", "subject": subject, "payload": message.SerializeToString(), "headers": {}}
        for n, (subject, message) in enumerate(events)
    ]

    def opened(subject: str, payload: bytes) -> list[tuple[str, bytes]]:
        if subject in PACKS:
            pack = PACKS[subject]
            return [(s, m.SerializeToString()) for s, m in pack.items(pack.message.FromString(payload))]
        return [(subject, payload)]

    built = packed_events(events, limit=limit)
    assert [subject for subject, _ in built] == [row["subject"] for row in packed_runs(rows, limit=limit)]
    assert [s for s, _ in built].count(ROLES_GRANTED_MANY) == 4
    assert [opened(s, m.SerializeToString()) for s, m in built] == [
        opened(row["subject"], row["payload"]) for row in packed_runs(rows, limit=limit)
    ]
