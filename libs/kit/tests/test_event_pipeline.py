"""The outbox, relay and consumer against a real NATS server and a real database.

The relay is killed between publishing and marking rows sent (in a real subprocess); after it
restarts the event still reaches the consumer exactly once. Poison messages and handlers that keep
failing end on the dead-letter subject.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_kit.consumer import ConsumerRunner, ConsumerSpec, ReceivedEvent, route
from shequtong_kit.db import create_engine, inbox, kit_metadata, outbox, session_factory
from shequtong_kit.nats_io import ensure_stream
from shequtong_kit.outbox import Outbox, OutboxRelay
from shequtong_kit.testing import Databases, NatsServer, temp_workdir


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with temp_workdir("kit-events-") as path:
        yield path


@pytest.fixture(scope="module")
def nats_server(workdir: Path) -> Iterator[NatsServer]:
    server = NatsServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def database_url(workdir: Path) -> Iterator[str]:
    dbs = Databases(workdir)
    yield dbs.create("kit_events")
    dbs.drop_all()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(kit_metadata.drop_all)
        await conn.run_sync(kit_metadata.create_all)
    yield eng
    await eng.dispose()


async def _write_event(engine: AsyncEngine, code: str) -> str:
    sessions = session_factory(engine)
    async with sessions() as session, session.begin():
        return await Outbox("kit-test").add(
            session, "identity.neighbourhood.created", ev.NeighbourhoodCreated(neighbourhood_id=code, code=code)
        )


RELAY_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    import nats
    from shequtong_kit.db import create_engine, session_factory
    from shequtong_kit.nats_io import ensure_stream
    from shequtong_kit.outbox import OutboxRelay

    async def main():
        engine = create_engine(sys.argv[1])
        nc = await nats.connect(sys.argv[2])
        await ensure_stream(nc.jetstream(), "IDENTITY")
        relay = OutboxRelay(engine, session_factory(engine), nc.jetstream())
        print("drained", await relay.drain_once())
        await nc.close()

    asyncio.run(main())
    """
)


def _run_relay_process(database_url: str, nats_url: str, crash: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHEQUTONG_FAULT_RELAY_CRASH_AFTER_PUBLISH": "1" if crash else "0"}
    return subprocess.run(
        [sys.executable, "-c", RELAY_SCRIPT, database_url, nats_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _consume(engine: AsyncEngine, nats_url: str, spec: ConsumerSpec, until: asyncio.Event) -> None:
    nc = await nats.connect(nats_url)
    runner = ConsumerRunner(nc.jetstream(), session_factory(engine), spec)
    task = asyncio.create_task(runner.run())
    try:
        await asyncio.wait_for(until.wait(), timeout=30)
    finally:
        runner.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nc.close()


async def test_relay_killed_between_publish_and_mark_sent_delivers_once(
    engine: AsyncEngine, database_url: str, nats_server: NatsServer
) -> None:
    code = "crash-1"
    event_id = await _write_event(engine, code)

    crashed = _run_relay_process(database_url, nats_server.url, crash=True)
    assert crashed.returncode == 9, crashed.stderr
    async with session_factory(engine)() as session:
        unsent = await session.scalar(select(func.count()).where(outbox.c.sent_at.is_(None)))
    assert unsent == 1, "the crash came before mark-sent"

    restarted = _run_relay_process(database_url, nats_server.url, crash=False)
    assert restarted.returncode == 0 and "drained 1" in restarted.stdout, restarted.stderr
    async with session_factory(engine)() as session:
        assert await session.scalar(select(func.count()).where(outbox.c.sent_at.is_(None))) == 0

    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    info = await js.stream_info("IDENTITY")
    # Published twice, stored once: JetStream dropped the copy with the same Nats-Msg-Id.
    stored = await js.get_last_msg("IDENTITY", "identity.neighbourhood.created")
    assert stored.headers is not None and stored.headers["ce-id"] == event_id
    # A republish after the dedupe window (simulated with a fresh Nats-Msg-Id) reaches the consumer too.
    await js.publish(
        "identity.neighbourhood.created",
        stored.data,
        headers={**stored.headers, "Nats-Msg-Id": f"{event_id}-late"},
    )
    await nc.close()
    assert info.state.messages >= 1

    handled: list[str] = []
    seen = asyncio.Event()
    done = asyncio.Event()

    async def handle(session: AsyncSession, message: ev.NeighbourhoodCreated, event: ReceivedEvent) -> None:
        if message.code == code:
            handled.append(event.id)
        if event.id == event_id and len(handled) >= 1:
            seen.set()

    spec = ConsumerSpec(
        "kit-test-crash",
        "IDENTITY",
        ["identity.neighbourhood.created"],
        route({"identity.neighbourhood.created": (ev.NeighbourhoodCreated, handle)}),
    )
    consuming = asyncio.create_task(_consume(engine, nats_server.url, spec, done))
    await asyncio.wait_for(seen.wait(), 30)

    # Let the late copy arrive too; it must be skipped by the inbox.
    async def inbox_rows() -> int:
        async with session_factory(engine)() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(inbox).where(inbox.c.consumer == "kit-test-crash")
                )
                or 0
            )

    for _ in range(100):
        nc2 = await nats.connect(nats_server.url)
        consumer = await nc2.jetstream().consumer_info("IDENTITY", "kit-test-crash")
        await nc2.close()
        if consumer.num_pending == 0 and consumer.num_ack_pending == 0:
            break
        await asyncio.sleep(0.05)
    done.set()
    await consuming
    assert handled == [event_id], "handled exactly once"
    assert await inbox_rows() == 1


async def test_poison_and_exhausted_messages_go_to_the_dead_letter_subject(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "BOARDS")
    await ensure_stream(js, "DLQ")
    dlq = await js.subscribe("dlq.boards.>", stream="DLQ", ordered_consumer=True)

    await js.publish(
        "boards.test.poison",
        b"\xff\xfe not protobuf",
        headers={"ce-id": "poison-1", "ce-type": "x", "Nats-Msg-Id": "poison-1"},
    )
    await js.publish(
        "boards.test.flaky",
        ev.NeighbourhoodCreated(code="flaky").SerializeToString(),
        headers={"ce-id": "flaky-1", "ce-type": "x", "Nats-Msg-Id": "flaky-1"},
    )
    attempts: list[int] = []

    async def always_fails(session: AsyncSession, message: ev.NeighbourhoodCreated, event: ReceivedEvent) -> None:
        attempts.append(event.delivery)
        raise RuntimeError("downstream broken")

    async def never_called(session: AsyncSession, message: ev.NeighbourhoodCreated, event: ReceivedEvent) -> None:
        raise AssertionError("a poison message must not reach the handler")

    spec = ConsumerSpec(
        "kit-test-dlq",
        "BOARDS",
        ["boards.test.>"],
        route(
            {
                "boards.test.poison": (ev.RoleGranted, never_called),
                "boards.test.flaky": (ev.NeighbourhoodCreated, always_fails),
            }
        ),
        max_deliver=3,
        backoff=(0.05, 0.05, 0.05),
    )
    done = asyncio.Event()
    consuming = asyncio.create_task(_consume(engine, nats_server.url, spec, done))
    dead: dict[str, dict[str, str]] = {}
    while len(dead) < 2:
        msg = await dlq.next_msg(timeout=20)
        dead[msg.subject] = dict(msg.headers or {})
    done.set()
    await consuming
    await nc.close()

    assert set(dead) == {"dlq.boards.test.poison", "dlq.boards.test.flaky"}
    assert dead["dlq.boards.test.poison"]["dlq-consumer"] == "kit-test-dlq"
    assert "cannot decode" in dead["dlq.boards.test.poison"]["dlq-reason"]
    assert dead["dlq.boards.test.flaky"]["dlq-delivery"] == "3"
    assert attempts == [1, 2, 3]


class CountingRelay(OutboxRelay):
    passes = 0

    async def drain_once(self) -> int:
        self.passes += 1
        return await super().drain_once()


async def _relay_passes(engine: AsyncEngine, nats_url: str, linger: float) -> int:
    """Twelve commits of one event each, 30 ms apart, with the relay running: how many passes published them
    (each is checked to have reached the stream)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_stream(js, "VOLUNTEERS")
    sessions = session_factory(engine)
    relay = CountingRelay(engine, sessions, js, poll_interval=5.0, linger=linger)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0.1)
    relay.passes = 0
    subject = f"volunteers.linger{int(linger * 1000)}.event"
    sub = await js.subscribe(subject, stream="VOLUNTEERS", ordered_consumer=True)
    writer = Outbox("kit-test")
    for i in range(12):
        async with sessions() as session, session.begin():
            await writer.add(session, subject, ev.NeighbourhoodCreated(code=f"r{i}"))
        await asyncio.sleep(0.03)
    codes = [ev.NeighbourhoodCreated.FromString((await sub.next_msg(timeout=10)).data).code for _ in range(12)]
    relay.stop()
    await asyncio.gather(task, return_exceptions=True)
    await nc.close()
    assert codes == [f"r{i}" for i in range(12)]
    return relay.passes


async def test_a_lingering_relay_publishes_a_trickle_of_commits_in_fewer_passes(
    engine: AsyncEngine, nats_server: NatsServer
) -> None:
    at_once = await _relay_passes(engine, nats_server.url, 0.0)
    lingering = await _relay_passes(engine, nats_server.url, 0.2)
    assert lingering <= 6 and lingering < at_once, (lingering, at_once)
