"""Component tests of boards: the real servicer behind the kit's gRPC server (auth and error interceptors),
a real database (PostgreSQL when reachable, SQLite otherwise) migrated with the service's own Alembic
revisions, real EdDSA tokens. Incoming events are fed through the real consumer handlers and inbox;
outgoing events are read from the outbox table (the relay and NATS are the integration tests' job)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message
from shequtong_boards.consumers import consumer_specs
from shequtong_boards.service import BoardsService
from shequtong_boards.servicer import BoardsServicer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shequtong.boards.v1 import boards_pb2, boards_pb2_grpc
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong_kit import auth
from shequtong_kit.clock import ManualClock
from shequtong_kit.consumer import ConsumerRunner, ReceivedEvent
from shequtong_kit.db import create_engine, outbox, session_factory
from shequtong_kit.errors import error_info
from shequtong_kit.grpc_server import build_server
from shequtong_kit.outbox import Outbox
from shequtong_kit.testing import Databases, received_event, temp_workdir

KID = "boards-test"


def _migrate(url: str) -> None:
    import os

    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "shequtong_boards:migrations")
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
def database_url() -> Iterator[str]:
    with temp_workdir("shequtong-boards-") as workdir:
        dbs = Databases(Path(workdir))
        url = dbs.create("boards_component")
        _migrate(url)
        yield url
        dbs.drop_all()


class Keys:
    def __init__(self) -> None:
        self.private = Ed25519PrivateKey.generate()
        jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": KID, "alg": "EdDSA", "use": "sig"})
        self.jwks = json.dumps({"keys": [jwk]})

    def token(self, subject: str, roles: list[str]) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": auth.ISSUER,
            "aud": auth.AUDIENCE,
            "sub": subject,
            "typ": "service" if subject.startswith("svc:") else "access",
            "roles": roles,
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(hours=1)).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private, algorithm="EdDSA", headers={"kid": KID})


@dataclass
class Caller:
    """A person (or client) with roles; `call` sends their token and, for writes, an idempotency key."""

    system: System
    subject: str
    roles: list[str]

    @property
    def id(self) -> str:
        return self.subject

    async def call(self, method: str, request: Message, key: str | None = None) -> Any:
        metadata = [("authorization", f"Bearer {self.system.keys.token(self.subject, self.roles)}")]
        if key:
            metadata.append(("idempotency-key", key))
        return await getattr(self.system.stub, method)(request, metadata=metadata, timeout=10)

    async def fails(self, method: str, request: Message) -> tuple[grpc.StatusCode, str]:
        """Calls expecting a refusal: (status, stable code)."""
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await self.call(method, request)
        return caught.value.code(), error_info(caught.value)[0]


@dataclass
class Place:
    district: str
    subdistrict: str
    neighbourhood: str
    boards: dict[str, str] = field(default_factory=dict)


@dataclass
class System:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    service: BoardsService
    stub: boards_pb2_grpc.BoardsServiceStub
    keys: Keys
    clock: ManualClock
    runners: dict[str, ConsumerRunner] = field(default_factory=dict)

    def person(self, *roles: str, subject: str | None = None) -> Caller:
        return Caller(self, subject or str(uuid.uuid4()), list(roles))

    def operator(self) -> Caller:
        return Caller(self, "svc:ops", ["operator@*"])

    async def deliver(self, subject: str, message: Message, event_id: str | None = None) -> bool:
        """One incoming event through the consumer that filters its subject (with the inbox)."""
        return await self._runner(subject)._apply(self._received(subject, message, event_id))

    async def deliver_batch(self, events: list[tuple[str, Message]]) -> list[Any]:
        """Incoming events as one fetched batch through their consumer (one transaction, its prefetch)."""
        received = [self._received(subject, message) for subject, message in events]
        return await self._runner(events[0][0]).apply_batch(received)

    def _runner(self, subject: str) -> ConsumerRunner:
        return next(r for r in self.runners.values() if any(_matches(s, subject) for s in r.spec.subjects))

    def _received(self, subject: str, message: Message, event_id: str | None = None) -> ReceivedEvent:
        return received_event(subject, message, self.clock.now(), event_id)

    async def place(self, district: str | None = None) -> Place:
        """A neighbourhood (in a new district unless one is given), its boards opened from the catalogue."""
        place = Place(district or str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))
        await self.deliver(
            "identity.neighbourhood.created",
            identity_ev.NeighbourhoodCreated(
                neighbourhood_id=place.neighbourhood,
                code=f"N{uuid.uuid4().hex[:8]}",
                name="淞南十村",
                kind=1,
                subdistrict_id=place.subdistrict,
                district_id=place.district,
            ),
        )
        reply = await self.operator().call(
            "ListBoards", boards_pb2.ListBoardsRequest(neighbourhood_id=place.neighbourhood)
        )
        place.boards = {b.kind: b.id for b in reply.boards}
        return place

    async def district_news(self, place: Place) -> tuple[Caller, str]:
        """The district's staff, and a district-wide board they opened (区级新闻) that members read."""
        staff = self.person(f"district_staff@d:{place.district}")
        news = boards_pb2.BoardPolicy(read=["member", "staff"], post=["district_staff"], moderate=["district_staff"])
        await staff.call(
            "PutCatalogueEntry",
            boards_pb2.PutCatalogueEntryRequest(
                district_id=place.district, kind="district_news", name="区级新闻", policy=news
            ),
        )
        listed = await staff.call("ListBoards", boards_pb2.ListBoardsRequest(neighbourhood_id=place.neighbourhood))
        return staff, next(b.id for b in listed.boards if b.kind == "district_news")

    async def resident(self, place: Place, *extra: str, household: str | None = None, name: str = "王*") -> Caller:
        """A verified resident: token role, and identity's events as boards would have received them."""
        n = place.neighbourhood
        caller = self.person(f"resident@n:{n}", *(f"{role}@n:{n}" for role in extra))
        await self.deliver(
            "identity.membership.verified",
            identity_ev.MemberVerified(
                person_id=caller.id,
                neighbourhood_id=n,
                household_id=household or str(uuid.uuid4()),
                membership_id=str(uuid.uuid4()),
                display_name=name,
            ),
        )
        for role in extra:
            await self.deliver(
                "identity.role.granted",
                identity_ev.RoleGranted(person_id=caller.id, role=role, scope=f"n:{n}", display_name=name),
            )
        return caller

    async def events(self, subject: str, cls: type[Message]) -> list[Any]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(outbox.c.payload).where(outbox.c.subject == subject).order_by(outbox.c.id)
            )
            return [cls.FromString(row[0]) for row in rows]


def _matches(pattern: str, subject: str) -> bool:
    if pattern.endswith(">"):
        return subject.startswith(pattern[:-1])
    return pattern == subject


@pytest.fixture(scope="session")
async def system(database_url: str) -> AsyncIterator[System]:
    keys = Keys()

    async def load() -> str:
        return keys.jwks

    engine = create_engine(database_url)
    sessions = session_factory(engine, cache_lineages=True)  # as the runtime's
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    service = BoardsService(sessions, Outbox("boards", clock), clock)
    server, _, port = build_server(
        auth.TokenVerifier(load),
        [
            (
                boards_pb2_grpc.add_BoardsServiceServicer_to_server,
                BoardsServicer(service),
                boards_pb2.DESCRIPTOR.services_by_name["BoardsService"].full_name,
            )
        ],
        0,
        "127.0.0.1",
    )
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    system = System(engine, sessions, service, boards_pb2_grpc.BoardsServiceStub(channel), keys, clock)
    system.runners = {
        spec.name: ConsumerRunner(None, sessions, spec, clock)  # type: ignore[arg-type]
        for spec in consumer_specs(service)
    }
    yield system
    await channel.close()
    await server.stop(None)
    await engine.dispose()


@pytest.fixture
async def place(system: System) -> Place:
    return await system.place()
