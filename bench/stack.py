"""The whole system for a benchmark run: the same local stack the integration tests use
(tools/shequtong_stack.py) on a fresh NATS and fresh PostgreSQL databases, all on 127.0.0.1."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import httpx

from bench.procs import ROOT, postgres_pids

if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

from shequtong_stack import OPERATOR_CLIENT, Stack, stack_for_tests

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
def running_stack(log_level: str = "WARNING") -> Iterator[tuple[Stack, dict[str, str]]]:
    with temp_workdir("shequtong-bench-") as workdir:
        databases = Databases(workdir)
        nats = NatsServer(workdir).start()
        stack = stack_for_tests(workdir, databases, nats, extra_env={"LOG_LEVEL": log_level})
        stack.nats = nats  # type: ignore[attr-defined]
        try:
            stack.migrate()
            stack.start_all()
            stack.wait_ready()
            yield stack, operator_headers(stack)
        finally:
            stack.stop_all()
            nats.stop()
            databases.drop_all()
