"""The whole system for a benchmark run: the same local stack the integration tests use
(tools/shequtong_stack.py) on a fresh NATS and fresh PostgreSQL databases, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

from bench.procs import ROOT, postgres_pids

if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

from shequtong_stack import OPERATOR_CLIENT, Stack, stack_for_tests

from shequtong_kit.settings import ServiceSettings
from shequtong_kit.testing import Databases, NatsServer, temp_workdir


def operator_headers(stack: Stack) -> dict[str, str]:
    reply = httpx.post(
        f"{stack.gateway_url}/v1/auth/service-token",
        json={"client_id": OPERATOR_CLIENT, "client_secret": stack.secrets.service_secrets[OPERATOR_CLIENT]},
        timeout=20,
    )
    reply.raise_for_status()
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def process_groups(stack: Stack, nats: NatsServer | None = None) -> dict[str, list[int]]:
    """PIDs to measure CPU on: every service process, NATS and PostgreSQL (all its backends)."""
    groups = {name: [proc.proc.pid] for name, proc in stack.processes.items() if proc.proc is not None}
    if nats is not None and nats.proc is not None:
        groups["nats-server"] = [nats.proc.pid]
    groups["postgres"] = postgres_pids()
    return groups


@contextlib.contextmanager
def running_stack(
    log_level: str = "WARNING", replicas: Mapping[str, int] | None = None
) -> Iterator[tuple[Stack, dict[str, str]]]:
    """`replicas`: how many processes a gRPC service runs (1 when not named); the others share its
    database, outbox relay and durable consumers, as the chart's replicas do."""
    with temp_workdir("shequtong-bench-") as workdir:
        databases = Databases(workdir)
        nats = NatsServer(workdir).start()
        # The services' own connection pools, not the test suite's small ones (which churn under load)
        pools = {
            "DB_POOL_SIZE": str(ServiceSettings.model_fields["db_pool_size"].default),
            "DB_MAX_OVERFLOW": str(ServiceSettings.model_fields["db_max_overflow"].default),
        }
        stack = stack_for_tests(workdir, databases, nats, extra_env={"LOG_LEVEL": log_level, **pools})
        stack.nats = nats  # type: ignore[attr-defined]
        try:
            stack.migrate()
            stack.start_all()
            stack.wait_ready()
            for name, count in (replicas or {}).items():
                for _ in range(count - 1):
                    stack.start_replica(name)
            yield stack, operator_headers(stack)
        finally:
            stack.stop_all()
            nats.stop()
            databases.drop_all()


async def backlog(stack: Stack) -> dict[str, int]:
    """What the event pipeline still owes: unsent outbox rows per service, undelivered or unacked messages
    per durable consumer. All zeros once every event written so far has been handled."""
    import nats
    from sqlalchemy import func, select

    from shequtong_kit.db import create_engine, outbox

    owed: dict[str, int] = {}
    for name, url in stack.database_urls.items():
        engine = create_engine(url, null_pool=True)
        try:
            async with engine.connect() as connection:
                unsent = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
                owed[f"outbox:{name}"] = int((await connection.execute(unsent)).scalar_one())
        finally:
            await engine.dispose()
    client = await nats.connect(stack.nats_url)
    try:
        manager = client.jsm()
        for stream in await manager.streams_info():
            for consumer in await manager.consumers_info(stream.config.name):
                owed[f"consumer:{consumer.name}"] = consumer.num_pending + consumer.num_ack_pending
    finally:
        await client.close()
    return owed


async def wait_until_drained(stack: Stack, within: float, poll: float = 2.0) -> dict[str, Any]:
    """Waits until the pipeline owes nothing (a bulk import leaves tens of thousands of events behind it,
    and journeys measured while the services drain them measure the drain). Returns how long it took, or
    what was still owed when the time ran out."""
    started = time.monotonic()
    owed = await backlog(stack)
    while any(owed.values()) and time.monotonic() - started < within:
        await asyncio.sleep(poll)
        owed = await backlog(stack)
    waited = round(time.monotonic() - started, 1)
    left = {key: value for key, value in owed.items() if value}
    return {"drained": not left, "seconds": waited, "still_owed": left}
