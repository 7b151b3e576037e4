"""The fault suite. Every journey runs on one system of the suite's own (`private_stack`, started once
for the session): its own NATS, every service, and its databases on a PostgreSQL server of its own
(initdb into a temporary directory; the shared PostgreSQL when the binaries are missing), so journeys
may kill NATS, services and the database without touching anything shared. Journeys leave it whole
again (they restart what they kill). Every fault adds a row to one table printed in the terminal summary."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from integration.conftest import client_token
from shequtong_stack import OPERATOR_CLIENT, Stack, stack_for_tests

from resilience.faults import FAULTS, Private
from shequtong_kit.testing import Databases, NatsServer, PostgresServer, temp_workdir

# The fault suite starts (and kills) systems of its own; it runs in a pytest process of its own
# (`pytest tests/resilience`, or SHEQUTONG_RESILIENCE=1) and is not part of `make test`.
if os.environ.get("SHEQUTONG_RESILIENCE") != "1" and not any("resilience" in arg for arg in sys.argv[1:]):
    collect_ignore_glob = ["test_*.py"]

# What every private stack runs with: boards' posting limit off (bursts of posts), and a grid-platform
# deadline short enough that a slow platform (the simulator's slow mode) exceeds it within seconds.
STACK_ENV = {
    "boards:POST_RATE_PER_MINUTE": "0",
    "grid-gateway:GRID_HTTP_TIMEOUT_SECONDS": "3",
}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FAULTS:
        return
    tr = terminalreporter
    tr.section("faults survived")
    tr.write_line(f"{'fault':66s} {'attempted':>9s} {'lost':>5s} {'dup':>5s} {'recovered s':>12s}")
    for row in FAULTS:
        recovered = "-" if row.recovered_s is None else f"{row.recovered_s:.1f}"
        tr.write_line(f"{row.fault:66s} {row.attempted:9d} {row.lost:5d} {row.duplicated:5d} {recovered:>12s}")


@contextlib.contextmanager
def running_system(pg: PostgresServer | None = None) -> Iterator[Private]:
    """NATS, fresh databases (on `pg` when given) and every service, all torn down afterwards."""
    stack: Stack | None = None
    dbs: Databases | None = None
    with temp_workdir("shequtong-faults-") as path:
        nats = NatsServer(Path(path)).start()
        try:
            dbs = Databases(Path(path), admin_url=pg.admin_url if pg else None)
            stack = stack_for_tests(Path(path), dbs, nats, extra_env=STACK_ENV)
            stack.migrate()
            stack.start_all()
            stack.wait_ready()
            with httpx.Client(base_url=stack.gateway_url, timeout=20) as client:
                headers = {"Authorization": f"Bearer {client_token(client, stack, OPERATOR_CLIENT)}"}
                yield Private(stack, nats, client, headers, pg)
        finally:
            if stack is not None:
                for proc in stack.processes.values():  # all at once, then wait for each
                    if proc.alive and proc.proc is not None:
                        proc.proc.terminate()
                stack.stop_all()
                if os.environ.get("SHOW_SERVICE_LOGS") == "1":
                    for name, text in stack.logs().items():
                        print(f"===== {name} =====\n{text[-5000:]}")
            nats.stop()
            if dbs is not None and (pg is None or pg.answers()):
                dbs.drop_all()


@pytest.fixture(scope="session")
def private_stack() -> Iterator[Private]:
    """The suite's system (`.pg` is its PostgreSQL server when it has one of its own)."""
    pg = PostgresServer().init().start() if PostgresServer.available() else None
    try:
        with running_system(pg) as system:
            yield system
    finally:
        if pg is not None:
            pg.cleanup()
