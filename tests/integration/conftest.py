"""The system under test: a real NATS server, fresh databases (PostgreSQL when reachable) and every
service as a real process, started once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from shequtong_stack import GRID_PLATFORM_CLIENT, OPERATOR_CLIENT, Stack, stack_for_tests

from shequtong_kit.testing import Databases, NatsServer, OtlpCollector, temp_workdir


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    with temp_workdir("shequtong-it-") as path:
        yield path


@pytest.fixture(scope="session")
def collector() -> Iterator[OtlpCollector]:
    otlp = OtlpCollector().start()
    yield otlp
    otlp.stop()


@pytest.fixture(scope="session")
def nats_server(workdir: Path) -> Iterator[NatsServer]:
    server = NatsServer(workdir).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def databases(workdir: Path) -> Iterator[Databases]:
    dbs = Databases(workdir)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def system(workdir: Path, databases: Databases, nats_server: NatsServer, collector: OtlpCollector) -> Iterator[Stack]:
    stack = stack_for_tests(
        workdir,
        databases,
        nats_server,
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "SHEQUTONG_CLOCK_OFFSET_FILE": str(workdir / "clock-offset"),
        },
    )
    stack.migrate()
    try:
        stack.start_all()
        stack.wait_ready()
        yield stack
    finally:
        stack.stop_all()
        if os.environ.get("SHOW_SERVICE_LOGS") == "1":
            for name, text in stack.logs().items():
                print(f"===== {name} =====\n{text[-5000:]}")


@pytest.fixture(scope="session")
def api(system: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.gateway_url, timeout=20) as client:
        yield client


def client_token(api: httpx.Client, system: Stack, client_id: str) -> str:
    reply = api.post(
        "/v1/auth/service-token",
        json={"client_id": client_id, "client_secret": system.secrets.service_secrets[client_id]},
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


@pytest.fixture(scope="session")
def ops_headers(api: httpx.Client, system: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {client_token(api, system, OPERATOR_CLIENT)}"}


@pytest.fixture(scope="session")
def grid_platform_headers(api: httpx.Client, system: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {client_token(api, system, GRID_PLATFORM_CLIENT)}"}
