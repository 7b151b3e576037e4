"""Component-test harness: grid-gateway's service on a real database (migrated with its own
Alembic revisions; PostgreSQL when it answers, SQLite files otherwise or with TEST_DATABASE=sqlite) and the
real grid-platform simulator, in-process over httpx's ASGI transport.

Exposed as fixtures because test modules are imported with --import-mode=importlib.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from shequtong_grid_gateway.domain.catalogue import CatalogueSpec
from shequtong_grid_gateway.models import Ticket
from shequtong_grid_gateway.open311 import Open311Platform
from shequtong_grid_gateway.service import GridService
from shequtong_grid_gateway.settings import GridGatewaySettings
from shequtong_grid_simulator import Settings as SimSettings
from shequtong_grid_simulator import create_app as create_simulator
from sqlalchemy import delete, select

from shequtong.events.v1 import grid_events_pb2 as grid_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_kit.clock import ManualClock
from shequtong_kit.db import create_engine, outbox, region_directory, session_factory
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox
from shequtong_kit.testing import Databases

API_KEY = "test-grid-key"
WEBHOOK_SECRET = "test-webhook-secret"
WEBHOOK_API_KEY = "test-webhook-key"
EVENT_TYPES = {
    "grid.ticket.sent": grid_ev.TicketSent,
    "grid.ticket.status_changed": grid_ev.TicketStatusChanged,
    "grid.ticket.failed": grid_ev.TicketFailed,
    "grid.ticket.identified": grid_ev.TicketIdentified,
}


def migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "shequtong_grid_gateway:migrations")
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        command.upgrade(config, "head")
    finally:
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory.mktemp("grid-databases"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def migrated(databases: Databases) -> str:
    """One database migrated once; each test gets a copy of it."""
    url = databases.create("grid_template")
    migrate(url)
    return url


@pytest.fixture
def database_url(databases: Databases, migrated: str) -> str:
    return databases.create(f"grid_{uuid.uuid4().hex[:8]}", template=migrated)


def settings_for(url: str, **changes: Any) -> GridGatewaySettings:
    values: dict[str, Any] = {
        "database_url": url,
        "nats_url": "nats://127.0.0.1:1",
        "grid_base_url": "http://sim",
        "grid_api_key": API_KEY,
        "grid_webhook_secret": WEBHOOK_SECRET,
        "grid_webhook_api_key": WEBHOOK_API_KEY,
        "grid_circuit_failure_threshold": 3,
        "grid_circuit_cooldown_seconds": 30,
        "grid_retry_base_seconds": 1,
        "grid_retry_max_delay_seconds": 60,
        "grid_send_rate_per_second": 0,
    }
    values.update(changes)
    return GridGatewaySettings(**values)


@dataclass
class Harness:
    service: GridService
    platform: Open311Platform
    sim: httpx.AsyncClient
    sim_app: Any
    clock: ManualClock
    settings: GridGatewaySettings

    @property
    def sessions(self) -> Any:
        return self.service.sessions

    async def neighbourhood(self, neighbourhood_id: str, district_id: str = "D1") -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                region_directory.insert().values(
                    neighbourhood_id=neighbourhood_id,
                    subdistrict_id="S-" + district_id,
                    district_id=district_id,
                    kind=1,
                    code="N-" + neighbourhood_id,
                    name="淞南十村",
                )
            )

    async def dispatch(self, **changes: Any) -> Ticket:
        async with self.sessions() as session, session.begin():
            return await self.service.accept_dispatch(session, self.request(**changes))

    @staticmethod
    def request(**changes: Any) -> issues_ev.IssueDispatchRequested:
        values: dict[str, Any] = {
            "issue_id": new_id(),
            "dispatch_id": new_id(),
            "neighbourhood_id": "N1",
            "category_code": "rubbish",
            "grid_service_code": "01-02",
            "description": "小区门口暴露垃圾",
            "address": "宝山区淞南路1号",
            "lat": 31.4,
            "lon": 121.48,
        }
        values.update(changes)
        return issues_ev.IssueDispatchRequested(**values)

    async def ticket(self, ticket_id: str) -> Ticket:
        async with self.sessions() as session:
            found = (await session.execute(select(Ticket).where(Ticket.id == ticket_id))).scalar_one()
            return found

    async def events(self, ticket_id: str | None = None) -> list[tuple[str, Any]]:
        async with self.sessions() as session:
            rows = (await session.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
        found = []
        for row in rows:
            cls = EVENT_TYPES.get(row["subject"])
            if cls is None:
                continue
            message = cls.FromString(row["payload"])
            if ticket_id is None or message.ticket_id == ticket_id:
                found.append((row["subject"], message))
        return found

    async def clear_events(self) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(delete(outbox))

    async def mode(self, **mode: Any) -> None:
        reply = await self.sim.post("/_sim/mode", json=mode)
        assert reply.status_code == 200, reply.text

    async def stats(self) -> dict[str, int]:
        return dict((await self.sim.get("/_sim/stats")).json())

    async def advance(self, external_id: str, to: str) -> list[dict[str, Any]]:
        reply = await self.sim.post(f"/_sim/advance/{external_id}", params={"to": to})
        assert reply.status_code == 200, reply.text
        return list(reply.json()["updates"])


@pytest.fixture
async def make_harness(database_url: str) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def make(
        catalogue: dict[str, CatalogueSpec] | None = None, sim_settings: dict[str, Any] | None = None, **changes: Any
    ) -> Harness:
        settings = settings_for(database_url, **changes)
        sim_app = create_simulator(
            SimSettings(
                api_key=API_KEY,
                webhook_secret=WEBHOOK_SECRET,
                webhook_api_key=WEBHOOK_API_KEY,
                **(sim_settings or {}),
            )
        )
        transport = httpx.ASGITransport(app=sim_app)
        sim = httpx.AsyncClient(transport=transport, base_url="http://sim")
        platform = Open311Platform(
            "district", "http://sim", API_KEY, client=httpx.AsyncClient(transport=transport, base_url="http://sim")
        )
        engine = create_engine(database_url, null_pool=True)
        clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        service = GridService(
            settings,
            session_factory(engine),
            Outbox("grid-gateway", clock),
            clock,
            {"district": platform},
            skip_locked=not database_url.startswith("sqlite"),
            instance=f"test-{len(made)}",
            catalogue_specs=catalogue,
            rng=random.Random(3),
        )
        harness = Harness(service, platform, sim, sim_app, clock, settings)
        if not made:
            await harness.neighbourhood("N1", "D1")
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.sim.aclose()
        await harness.sim_app.state.engine.pusher.aclose()


@pytest.fixture
async def harness(make_harness: Any) -> Harness:
    h: Harness = await make_harness()
    return h
