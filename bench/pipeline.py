"""Event pipeline: outbox → JetStream → consumer, with two service replicas sharing the relay.

Two "replica" processes each run what a service replica runs for its events: use cases writing events
into the outbox inside their transactions (`Outbox.add`, `events_per_tx` events per transaction) and the
kit's `OutboxRelay` on the same PostgreSQL outbox (rows claimed with FOR UPDATE SKIP LOCKED, so the two
share the work). A consumer process runs the kit's `ConsumerRunner` (durable pull consumer, inbox row
per event in its own database, explicit ack) and records, per event, the lag from `ce-time` (when the
event was written into the outbox) to its handling. Nothing is mocked; it is the kit every service runs,
so the figure holds for each producing service unless its own handler is heavier.

Phases per service stream:
- drain: `backlog` events already in the outbox when the relays start → how fast the pipeline empties it;
- steady: events written at a fixed `rate` for `duration` seconds → throughput and lag p50/p95/p99.

    .venv/bin/python -m bench.pipeline --rate 2000 --duration 10 --backlog 20000
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bench.procs import CpuMeter, postgres_pids
from bench.stats import percentile
from shequtong_kit.settings import ServiceSettings
from shequtong_kit.testing import Databases, NatsServer, temp_workdir

# The relay's and the consumer's settings as every service runs them.
SERVICE_DEFAULTS = {name: field.default for name, field in ServiceSettings.model_fields.items()}

# Seconds after the steady window during which late writers may still write their share.
WRITE_GRACE = 2.0

SERVICE_STREAMS = {
    "identity": "IDENTITY",
    "boards": "BOARDS",
    "issues": "ISSUES",
    "grid": "GRID",
    "volunteers": "VOLUNTEERS",
}


# Transactions a writer replica has in flight at once.
WRITERS = 8

# Pooled as every service is: a pool smaller than the work in flight closes each connection over its size
# on return, and PostgreSQL then starts a backend for the next one (a fork, an empty catalogue cache). With
# 5 kept and 5 more, PostgreSQL spent 0.21 core-seconds per 1,000 events (against 0.06 pooled as the services
# are) and the pipeline carried 3,300 events/s instead of 5,300–5,400.
POOL_SIZE = SERVICE_DEFAULTS["db_pool_size"]
POOL_OVERFLOW = SERVICE_DEFAULTS["db_max_overflow"]


def _uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass


async def _prepare(producer_url: str, consumer_url: str, nats_url: str, stream: str) -> None:
    import nats

    from shequtong_kit.db import create_engine, kit_metadata
    from shequtong_kit.nats_io import ensure_stream

    for url in (producer_url, consumer_url):
        engine = create_engine(url, null_pool=True)
        async with engine.begin() as conn:
            await conn.run_sync(kit_metadata.create_all)
        await engine.dispose()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    # Each phase starts from an empty stream and a new durable: nothing left unacked by the previous
    # phase (its consumer stops between a commit and the acks) is redelivered into this one.
    with contextlib.suppress(Exception):
        await js.delete_stream(stream)
    await ensure_stream(js, stream)
    await nc.close()


def _message(index: int) -> Any:
    from shequtong.events.v1 import identity_events_pb2 as ev

    return ev.NeighbourhoodCreated(neighbourhood_id=f"bench-{index}", code=f"B{index}", name="淞南十村")


async def _write(sessions: Any, outbox: Any, subject: str, start: int, count: int) -> None:
    async with sessions() as session, session.begin():
        if count == 1:
            await outbox.add(session, subject, _message(start))
        else:  # a transaction that writes several events writes them as the bulk paths do: one INSERT
            await outbox.add_many(session, [(subject, _message(start + offset)) for offset in range(count)])


def _replica(
    index: int,
    producer_url: str,
    nats_url: str,
    subject: str,
    rate: float,
    duration: float,
    events_per_tx: int,
    backlog: int,
    relay: bool,
    start_at: float,
    stop: Any,
    queue: Any,
) -> None:
    """One service replica: writes events (its share of `rate`, or the backlog) and relays the outbox."""
    _uvloop()

    async def go() -> dict[str, Any]:
        import nats

        from shequtong_kit.db import create_engine, session_factory
        from shequtong_kit.outbox import Outbox, OutboxRelay

        engine = create_engine(producer_url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
        sessions = session_factory(engine)
        outbox = Outbox("bench")
        written = 0
        if backlog:
            for first in range(0, backlog, 500):
                await _write(sessions, outbox, subject, first, min(500, backlog - first))
                written += min(500, backlog - first)
            await engine.dispose()
            return {"written": written}
        nc = await nats.connect(nats_url)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        relay_task = None
        if relay:
            relay_obj = OutboxRelay(engine, sessions, nc.jetstream(), linger=SERVICE_DEFAULTS["relay_linger_seconds"])
            relay_task = asyncio.create_task(relay_obj.run())
        transactions = int(rate * duration / events_per_tx)
        interval = events_per_tx / rate if rate > 0 else 0
        t0 = time.perf_counter()
        # Writers that fall behind stop when the window closes (+ WRITE_GRACE): what they could not
        # write is reported (`written` < `expected`), never silently stretched over a longer phase.
        closes = t0 + duration + WRITE_GRACE
        late = 0.0
        # Transactions overlap as a service's requests do (up to WRITERS at once, each on its own pooled
        # connection): one writer at a time measured the round trip of a commit, not the pipeline.
        slots = asyncio.Semaphore(WRITERS)
        pending: set[asyncio.Task[None]] = set()

        async def write_one(first: int) -> None:
            try:
                await _write(sessions, outbox, subject, first, events_per_tx)
            finally:
                slots.release()

        for n in range(transactions):
            due = t0 + n * interval
            now = time.perf_counter()
            if now > closes:
                break
            if due > now:
                await asyncio.sleep(due - now)
            await slots.acquire()
            late = max(late, time.perf_counter() - due)
            task = asyncio.create_task(write_one(index * 10_000_000 + written))
            pending.add(task)
            task.add_done_callback(pending.discard)
            written += events_per_tx
        if pending:
            await asyncio.gather(*pending)
        produce_seconds = time.perf_counter() - t0
        queue.put(("written", index, {"written": written}))
        # Keep relaying until the consumer has everything (or gave up); bounded like every run.
        await asyncio.to_thread(stop.wait, 900)
        if relay_task is not None:
            relay_obj.stop()
            await asyncio.wait_for(relay_task, 10)
        await nc.close()
        await engine.dispose()
        return {"written": written, "produce_seconds": round(produce_seconds, 2), "producer_late_max_s": round(late, 3)}

    queue.put(("replica", index, asyncio.run(go())))


def _consumer(consumer_url: str, nats_url: str, stream: str, subject: str, expected: Any, until: float, queue: Any):
    """The consuming service: the kit's ConsumerRunner with its inbox; records each event's lag."""
    _uvloop()

    async def go() -> dict[str, Any]:
        import nats
        from sqlalchemy import event as sa_event

        from shequtong_kit.consumer import ConsumerRunner, ConsumerSpec
        from shequtong_kit.db import create_engine, session_factory

        engine = create_engine(consumer_url, pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
        lags: list[float] = []
        # Each lag's two parts: written → stored in the stream (the relay's), stored → committed (the consumer's).
        to_stream: list[float] = []
        in_consumer: list[float] = []
        handled_at: list[float] = []
        done = asyncio.Event()

        def committed(written: list[tuple[datetime, datetime | None]]) -> None:
            now, wall = datetime.now(UTC), time.time()
            for at, stored in written:
                lags.append((now - at).total_seconds() * 1000)
                if stored is not None:
                    to_stream.append((stored - at).total_seconds() * 1000)
                    in_consumer.append((now - stored).total_seconds() * 1000)
                handled_at.append(wall)
            if len(lags) >= expected.value:
                done.set()

        async def handle(session: Any, event: Any) -> None:
            # The lag ends when the handler's transaction commits (the effect is durable), not when the
            # handler returns: a rolled-back attempt is not counted.
            written = session.info.get("bench_written")
            if written is None:
                written = session.info["bench_written"] = []
                sa_event.listen(session.sync_session, "after_commit", lambda _s: committed(written), once=True)
            written.append((event.occurred_at, event.stored_at))

        # The kit's defaults (batch, max_ack_pending): what every service runs.
        spec = ConsumerSpec(name=f"bench-pipeline-{stream.lower()}", stream=stream, subjects=[subject], handler=handle)
        nc = await nats.connect(nats_url)
        runner = ConsumerRunner(
            nc.jetstream(), session_factory(engine), spec, linger=SERVICE_DEFAULTS["consumer_linger_seconds"]
        )
        task = asyncio.create_task(runner.run())
        queue.put(("consumer-ready", 0, {}))
        # `expected` may drop (writers that fell behind) after the last commit: look again now and then.
        while not done.is_set() and time.time() < until:
            if lags and len(lags) >= expected.value:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), timeout=0.5)
        runner.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nc.close()
        await engine.dispose()
        return {
            "lags": lags,
            "to_stream": to_stream,
            "in_consumer": in_consumer,
            "first": min(handled_at, default=0.0),
            "last": max(handled_at, default=0.0),
        }

    queue.put(("consumer", 0, asyncio.run(go())))


def _phase(
    *,
    producer_url: str,
    consumer_url: str,
    nats: NatsServer,
    stream: str,
    subject: str,
    rate: float,
    duration: float,
    events_per_tx: int,
    backlog: int,
    replicas: int,
    timeout: float,
) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    stop = ctx.Event()
    if backlog:
        filler = ctx.Process(
            target=_replica,
            args=(0, producer_url, nats.url, subject, 0, 0, 1, backlog, False, 0, None, queue),
            daemon=True,
        )
        filler.start()
        queue.get(timeout=300)
        filler.join(10)
    # Exactly what the replicas will write (each writes its share in whole transactions).
    expected = backlog or replicas * int((rate / replicas) * duration / events_per_tx) * events_per_tx
    # What the consumer waits for: the offered count, lowered to what was written once the writers stop.
    to_handle = ctx.Value("q", expected)
    start_at = time.time() + 3.0
    until = start_at + duration + timeout
    consumer = ctx.Process(
        target=_consumer, args=(consumer_url, nats.url, stream, subject, to_handle, until, queue), daemon=True
    )
    consumer.start()
    queue.get(timeout=60)  # the consumer is bound before the events flow
    procs = [
        ctx.Process(
            target=_replica,
            args=(
                i,
                producer_url,
                nats.url,
                subject,
                0 if backlog else rate / replicas,
                duration,
                events_per_tx,
                0,
                True,
                start_at,
                stop,
                queue,
            ),
            daemon=True,
        )
        for i in range(replicas)
    ]
    for proc in procs:
        proc.start()
    meter = CpuMeter(
        {
            "replicas": [p.pid for p in procs if p.pid],
            "consumer": [consumer.pid] if consumer.pid else [],
            "nats-server": [nats.proc.pid] if nats.proc else [],
            "postgres": postgres_pids(),
        }
    ).start()
    results: dict[str, Any] = {"replicas": {}}
    written: dict[int, int] = {}
    pending = replicas + 1
    deadline = until + 60
    while pending and time.time() < deadline:
        try:
            kind, index, payload = queue.get(timeout=max(1.0, deadline - time.time()))
        except Exception:
            break
        if kind == "written":
            written[index] = payload["written"]
            if not backlog and len(written) == replicas:
                to_handle.value = sum(written.values())
            continue
        pending -= 1
        if kind == "consumer":
            results["consumer"] = payload
            stop.set()  # the replicas keep relaying until the consumer is done
        else:
            results["replicas"][index] = payload
    stop.set()
    cpu = meter.stop()
    for proc in [*procs, consumer]:
        proc.join(15)
        if proc.is_alive():
            proc.kill()
    consumed = results.get("consumer", {"lags": [], "first": 0, "last": 0})
    lags = sorted(consumed["lags"])
    to_stream, in_consumer = sorted(consumed.get("to_stream", [])), sorted(consumed.get("in_consumer", []))
    span = max(consumed["last"] - start_at, 1e-6)
    produced = [r for r in results["replicas"].values() if r.get("produce_seconds")]
    total_written = backlog or sum(written.values())
    return {
        "expected": expected,
        "written": total_written,
        # What the replicas managed to write per second (below the offered rate: the writers were the limit).
        "produced_rate": round(sum(r["written"] for r in produced) / max(r["produce_seconds"] for r in produced), 1)
        if produced
        else None,
        "handled": len(lags),
        # Written but not handled within the bound (events the writers could not write are not "lost").
        "lost": max(0, total_written - len(lags)),
        "throughput": round(len(lags) / span, 1) if lags else 0.0,
        "lag_p50_ms": _round(percentile(lags, 50)),
        "lag_p95_ms": _round(percentile(lags, 95)),
        "lag_p99_ms": _round(percentile(lags, 99)),
        "lag_max_ms": _round(lags[-1] if lags else None),
        # Where the lag is spent: until the stream stored the event (the outbox and the relay), then until
        # its handling committed (the consumer).
        "to_stream_p50_ms": _round(percentile(to_stream, 50)),
        "to_stream_p99_ms": _round(percentile(to_stream, 99)),
        "in_consumer_p50_ms": _round(percentile(in_consumer, 50)),
        "in_consumer_p99_ms": _round(percentile(in_consumer, 99)),
        "replicas": results["replicas"],
        "cpu": cpu,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def measure(
    services: list[str] | None = None,
    rate: float = 2000.0,
    duration: float = 10.0,
    backlog: int = 20_000,
    events_per_tx: int = 1,
    replicas: int = 2,
    workdir: Path | None = None,
    log: Any = print,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with temp_workdir("shequtong-bench-pipe-") as tmp:
        work = workdir or tmp
        work.mkdir(parents=True, exist_ok=True)
        databases = Databases(work)
        if not databases.use_postgres:
            return {"skipped": "PostgreSQL is not reachable at 127.0.0.1:5432 (SKIP LOCKED sharing needs it)"}
        nats = NatsServer(work).start()
        try:
            for service in services or ["issues"]:
                stream = SERVICE_STREAMS[service]
                subject = f"{service}.bench.event"
                entry: dict[str, Any] = {"stream": stream, "replicas": replicas, "events_per_tx": events_per_tx}
                for phase, phase_backlog in (("drain", backlog), ("steady", 0)):
                    if phase == "drain" and not backlog:
                        continue
                    producer_url = databases.create(f"pipe_{service}_{phase}_out")
                    consumer_url = databases.create(f"pipe_{service}_{phase}_in")
                    asyncio.run(_prepare(producer_url, consumer_url, nats.url, stream))
                    log(f"pipeline {service} {phase} …")
                    entry[phase] = _phase(
                        producer_url=producer_url,
                        consumer_url=consumer_url,
                        nats=nats,
                        stream=stream,
                        subject=subject,
                        rate=rate,
                        duration=duration,
                        events_per_tx=events_per_tx,
                        backlog=phase_backlog,
                        replicas=replicas,
                        timeout=60.0,
                    )
                    if phase == "steady":
                        entry[phase]["offered_rate"] = rate
                results[service] = entry
        finally:
            nats.stop()
            databases.drop_all()
    return results


cli = typer.Typer(add_completion=False, help=__doc__)


@cli.command()
def main(
    service: list[str] = typer.Option(None, help="producing service streams to measure (repeatable)"),
    rate: float = typer.Option(2000.0, help="events/s written in the steady phase"),
    duration: float = typer.Option(10.0, help="steady phase seconds"),
    backlog: int = typer.Option(20_000, help="events in the outbox before the drain phase (0: skip it)"),
    events_per_tx: int = typer.Option(1, help="events written per transaction"),
    replicas: int = typer.Option(2, help="replica processes sharing the relay"),
) -> None:
    import json
    import sys

    def progress(line: str) -> None:
        print(line, file=sys.stderr)  # stdout carries the JSON alone

    result = measure(service or None, rate, duration, backlog, events_per_tx, replicas, log=progress)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    cli()
