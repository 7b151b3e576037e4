"""Shared helpers: the simulator app driven in-process, a fake clock, a webhook receiver.

Exposed as fixtures because test modules are imported with --import-mode=importlib and so
cannot import this file.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from shequtong_grid_simulator import Settings, create_app
from shequtong_grid_simulator.engine import Engine

API_KEY = "test-grid-key"
SECRET = "test-webhook-secret"
WEBHOOK_API_KEY = "test-webhook-key"


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def tick(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _settings(**changes: Any) -> Settings:
    base = Settings(
        api_key=API_KEY,
        webhook_secret=SECRET,
        webhook_api_key=WEBHOOK_API_KEY,
        webhook_backoff_seconds=0.05,
        webhook_max_attempts=3,
        webhook_timeout_seconds=2.0,
    )
    return replace(base, **changes)


@dataclass
class Sim:
    client: httpx.AsyncClient
    engine: Engine

    async def create(self, **fields: str) -> str:
        """POST requests.json with sensible defaults; returns the service_request_id."""
        data = {"api_key": API_KEY, "service_code": "01-02", "lat": "31.40", "long": "121.48"}
        data.update(fields)
        r = await self.client.post("/requests.json", data=data)
        assert r.status_code == 200, r.text
        return str(r.json()[0]["service_request_id"])

    async def one(self, service_request_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/requests/{service_request_id}.json")
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body) == 1
        return dict(body[0])

    async def mode(self, **mode: Any) -> None:
        r = await self.client.post("/_sim/mode", json=mode)
        assert r.status_code == 200, r.text

    async def stats(self) -> dict[str, int]:
        r = await self.client.get("/_sim/stats")
        return dict(r.json())


@contextlib.asynccontextmanager
async def running_sim(settings: Settings | None = None, clock: Any = None) -> AsyncIterator[Sim]:
    app = create_app(settings or _settings(), **({"clock": clock} if clock else {}))
    # ASGITransport sends no lifespan events; run them ourselves so background tasks start and stop.
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://grid.test") as client:
            yield Sim(client, app.state.engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 1, 2, 0, 0, tzinfo=UTC))


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Sim]:
    async with running_sim(clock=clock) as s:
        yield s


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A tiny webhook receiver served by uvicorn on a free local port, recording raw bodies."""

    fail_first: int = 0
    status: int = 200
    deliveries: list[Delivery] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/grid/updates"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.deliveries.append(Delivery({k.decode().lower(): v.decode() for k, v in scope["headers"]}, body))
        status = self.status
        if self.fail_first > 0:
            self.fail_first -= 1
            status = 500
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[Receiver]:
    config = uvicorn.Config(receiver, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(5):
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
    receiver.port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def make_settings() -> Any:
    """make_settings(**changes) → Settings with test keys and fast push retries."""
    return _settings


@pytest.fixture
def start_sim() -> Any:
    """`async with start_sim(settings, clock) as sim:` runs an app with its lifespan."""
    return running_sim


@pytest.fixture
def start_receiver() -> Any:
    """`async with start_receiver(fail_first=1) as receiver:` serves a recording webhook."""

    def start(**kwargs: Any) -> contextlib.AbstractAsyncContextManager[Receiver]:
        return serving(Receiver(**kwargs))

    return start
