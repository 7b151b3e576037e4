"""Identity's phase-2 use cases against real databases — SQLite (the embedded default) and PostgreSQL when
reachable — migrated by the service's own Alembic revisions: bulk imports at the scale of a city, SMS codes
through the development sink, throttling counters under concurrency, the volunteer badge's idempotency."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from shequtong_identity.consumers import consumer_specs
from shequtong_identity.domain import imports, resident_imports
from shequtong_identity.models import (
    Household,
    LoginCode,
    Membership,
    Person,
    RateLimit,
    Region,
    RoleAudit,
    RoleGrant,
    VolunteerRecord,
)
from shequtong_identity.service import IdentityService
from shequtong_identity.settings import IdentitySettings
from shequtong_identity.sms import OutboxFileSender
from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong.events.v1 import volunteers_events_pb2 as vol_ev
from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.clock import ManualClock
from shequtong_kit.consumer import ConsumerRunner, PoisonMessage, ReceivedEvent
from shequtong_kit.db import create_engine, outbox, session_factory
from shequtong_kit.errors import DomainError, PermissionDenied
from shequtong_kit.outbox import Outbox
from shequtong_kit.testing import Databases, received_event, signing_keys_json, temp_workdir

OPERATOR = Principal(subject="svc:ops", roles=parse_roles(["operator@*"]))


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with temp_workdir("identity-db-") as path:
        yield Path(path)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    dbs = Databases(workdir)
    if request.param == "postgresql" and not dbs.use_postgres:
        pytest.skip("PostgreSQL is not reachable")
    name = f"identity_{uuid.uuid4().hex[:6]}"
    url = dbs.create(name) if request.param == "postgresql" else f"sqlite+aiosqlite:///{workdir / (name + '.db')}"
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "shequtong_identity", "migrate"], env=env, check=True, timeout=300)
    yield url
    dbs.drop_all()


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=30, max_overflow=10)
    yield eng
    await eng.dispose()


@pytest.fixture(autouse=True)
def info_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Log records are built (extra fields checked) as in a running service."""
    caplog.set_level(logging.INFO)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def settings(workdir: Path) -> IdentitySettings:
    return IdentitySettings(
        database_url="sqlite://",
        nats_url="nats://unused",
        identity_signing_keys=signing_keys_json(),
        pii_hmac_key="k" * 32,
        pii_encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        password_memory_kib=8 * 1024,
        password_time_cost=1,
        login_failures_per_address=20,
    )


@pytest.fixture
def service(
    settings: IdentitySettings, sessions: async_sessionmaker[AsyncSession], clock: ManualClock, workdir: Path
) -> IdentityService:
    sink = OutboxFileSender(workdir / f"sms-{uuid.uuid4().hex[:6]}.jsonl")
    return IdentityService(settings, sessions, Outbox("identity", clock), clock, sink)


async def events_of(sessions: async_sessionmaker[AsyncSession], subject: str, since: datetime) -> list[bytes]:
    async with sessions() as session:
        rows = await session.execute(
            select(outbox.c.payload).where(outbox.c.subject == subject, outbox.c.created_at >= since)
        )
        return [row[0] for row in rows]


def tree_csv(suffix: str, neighbourhoods: int) -> bytes:
    lines = [f"district,D{suffix},区{suffix},,"]
    lines += [f"subdistrict,S{suffix}-{s},街镇{s},D{suffix}," for s in range(10)]
    lines += [f"neighbourhood,N{suffix}-{i},居委{i},S{suffix}-{i % 10},residential" for i in range(neighbourhoods)]
    return ("\n".join(lines) + "\n").encode()


async def test_a_city_sized_region_tree_imports_in_one_go_and_announces_every_neighbourhood(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    suffix = uuid.uuid4().hex[:6]
    data = tree_csv(suffix, 2000)
    started = clock.now()
    outcome = await service.import_regions(OPERATOR, data, dry_run=False)
    assert not outcome.errors and outcome.applied
    assert (outcome.rows, outcome.created, outcome.skipped) == (2011, 2011, 0)
    announced = [
        ev.NeighbourhoodCreated.FromString(p)
        for p in await events_of(sessions, "identity.neighbourhood.created", started)
    ]
    mine = [e for e in announced if e.code.startswith(f"N{suffix}-")]
    assert len(mine) == 2000
    assert len({e.subdistrict_id for e in mine}) == 10 and len({e.district_id for e in mine}) == 1

    again = await service.import_regions(OPERATOR, data, dry_run=False)
    assert (again.created, again.skipped) == (0, 2011)
    assert len(await events_of(sessions, "identity.neighbourhood.created", started)) == len(announced)

    households = "".join(
        f"N{suffix}-{n},{b}号楼,1,{r}01,,\n" for n in range(30) for b in range(1, 6) for r in range(1, 21)
    ).encode()
    done = await service.import_households(OPERATOR, households, dry_run=False)
    assert (done.rows, done.created, done.skipped, done.applied) == (3000, 3000, 0, True)
    created = await events_of(sessions, "identity.household.created", started)
    assert len(created) == 3000
    rerun = await service.import_households(OPERATOR, households, dry_run=False)
    assert (rerun.created, rerun.skipped) == (0, 3000)


async def test_an_invalid_import_writes_nothing(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    data = tree_csv(suffix, 50) + f"neighbourhood,X{suffix},坏,NOPE,residential\n".encode()
    outcome = await service.import_regions(OPERATOR, data, dry_run=False)
    assert not outcome.applied and outcome.errors.count == 1 and outcome.errors.items[0].row == 62
    clean = await service.import_regions(OPERATOR, tree_csv(suffix, 50), dry_run=True)
    assert (clean.created, clean.applied) == (61, False), "nothing of the refused file was written"
    with pytest.raises(PermissionDenied):
        await service.import_regions(Principal(subject="someone", roles=parse_roles([])), data, dry_run=False)


async def test_address_failures_are_all_counted_under_concurrency(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    address = f"198.51.100.{uuid.uuid4().int % 250}"

    async def fail() -> None:
        async with sessions() as session, session.begin():
            await service._count_address_failure(session, address)

    await asyncio.gather(*(fail() for _ in range(12)))
    async with sessions() as session:
        row = await session.get(RateLimit, service._key("login-addr", address))
    assert row is not None and row.count == 12
    assert address not in row.key, "the address is stored only as an HMAC"


async def test_codes_are_stored_hashed_and_sent_through_the_port(
    service: IdentityService,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 1), dry_run=False)
    phone = "139" + str(uuid.uuid4().int % 10**8).zfill(8)
    async with sessions() as session, session.begin():
        person = await service._new_person(session, "王小明", phone, _id_number(suffix), "long-enough-pw")
    await service.request_login_code(phone, "10.0.0.1")
    assert isinstance(service.sms, OutboxFileSender)
    line = json.loads(service.sms.path.read_text(encoding="utf-8").splitlines()[-1])
    assert line["to"] == phone and line["sink"].startswith("development")
    async with sessions() as session:
        stored = (await session.execute(select(LoginCode).order_by(LoginCode.created_at.desc()))).scalars().first()
    assert stored is not None and line["code"] not in stored.code_hash and phone not in stored.phone_key
    assert phone not in caplog.text and line["code"] not in caplog.text, "no phone or code in the logs"
    clock.advance(seconds=30)
    issued = await service.login_with_code(phone, line["code"], "10.0.0.1")
    assert issued.person_id == person.id
    with pytest.raises(DomainError) as again:
        await service.login_with_code(phone, line["code"], "10.0.0.1")
    assert again.value.code == "code_invalid"


async def test_volunteer_events_grant_one_badge_whatever_the_copies(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 1), dry_run=False)
    async with sessions() as session:
        regions = await imports_lookup(session, f"N{suffix}-0")
    phone = "138" + str(uuid.uuid4().int % 10**8).zfill(8)
    async with sessions() as session, session.begin():
        person = await service._new_person(session, "李四", phone, _id_number(suffix + "v"), "long-enough-pw")
    volunteer = str(uuid.uuid4())
    for _ in range(3):  # the same approval delivered three times (different event ids: past the inbox)
        async with sessions() as session, session.begin():
            await service.volunteer_approved(session, volunteer, person.id, regions, "team")
    async with sessions() as session:
        grants = (await session.execute(select(RoleGrant).where(RoleGrant.person_id == person.id))).scalars().all()
        audits = (await session.execute(select(RoleAudit).where(RoleAudit.person_id == person.id))).scalars().all()
    assert [(g.role, g.revoked_at is None, g.granted_by) for g in grants] == [("volunteer", True, "svc:volunteers")]
    assert [a.action for a in audits] == ["grant"]
    for _ in range(2):
        async with sessions() as session, session.begin():
            await service.volunteer_left(session, volunteer, person.id, regions)
    # A late copy of the approval after leaving changes nothing.
    async with sessions() as session, session.begin():
        await service.volunteer_approved(session, volunteer, person.id, regions, "team")
    async with sessions() as session:
        grants = (await session.execute(select(RoleGrant).where(RoleGrant.person_id == person.id))).scalars().all()
        count = await session.scalar(
            select(func.count()).select_from(RoleAudit).where(RoleAudit.person_id == person.id)
        )
    assert [(g.role, g.revoked_at is not None) for g in grants] == [("volunteer", True)] and count == 2


async def test_a_batch_of_volunteer_events_decides_each_badge_as_one_event_at_a_time(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    """The badge consumer reads a batch's records and grants once (an import sends approvals by the hundred
    thousand, packed) and keeps them current as the batch writes: the same badges, grants and audits as
    events handled one by one; a poisoned event in a batch fails alone."""
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 1), dry_run=False)
    async with sessions() as session:
        place = await imports_lookup(session, f"N{suffix}-0")
    people = []
    for name in ("志愿者甲", "志愿者乙"):
        phone = "136" + str(uuid.uuid4().int % 10**8).zfill(8)
        async with sessions() as session, session.begin():
            people.append(await service._new_person(session, name, phone, _id_number(suffix + name), "pw-long-enough"))
    p, q = (person.id for person in people)
    runner = ConsumerRunner(None, sessions, consumer_specs(service)[0])  # type: ignore[arg-type]

    def approved(volunteer: str, person: str, team: str = "t") -> ReceivedEvent:
        return received_event(
            "volunteers.volunteer.approved",
            vol_ev.VolunteerApproved(volunteer_id=volunteer, person_id=person, neighbourhood_id=place, team_id=team),
        )

    def left(volunteer: str, person: str) -> ReceivedEvent:
        return received_event(
            "volunteers.volunteer.left",
            vol_ev.VolunteerLeft(volunteer_id=volunteer, person_id=person, neighbourhood_id=place),
        )

    def imported(*volunteers: tuple[str, str, str]) -> ReceivedEvent:
        items = []
        for volunteer, person, team in volunteers:
            ids = {"volunteer_id": volunteer, "person_id": person, "neighbourhood_id": place, "team_id": team}
            items.append(
                vol_ev.ImportedVolunteer(
                    applied=vol_ev.VolunteerApplied(**ids), approved=vol_ev.VolunteerApproved(**ids)
                )
            )
        return received_event("volunteers.volunteer.imported", vol_ev.VolunteersImported(volunteers=items))

    v1, v2, v3 = (str(uuid.uuid4()) for _ in range(3))
    reads: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM volunteer_records" in statement:
            reads.append(statement)

    batch = [
        approved(v1, p, "a"),
        imported((v2, p, "b"), (v3, q, "t")),  # an import's approvals, packed
        approved(v1, p, "a"),
        left(v1, p),
        left(v3, q),
    ]
    sa_event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await runner.apply_batch(batch) == [True] * len(batch)
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(reads) == 2, "the records read once for the batch (by id, by person), not per event"

    async with sessions() as session:
        grants = (await session.execute(select(RoleGrant).where(RoleGrant.person_id.in_([p, q])))).scalars().all()
        audits = (await session.execute(select(RoleAudit).where(RoleAudit.person_id.in_([p, q])))).scalars().all()
        records = {r.volunteer_id: r.active for r in (await session.execute(select(VolunteerRecord))).scalars()}
    # p still volunteers in team b: badge kept, granted once; q left its only team: granted, then revoked.
    assert sorted((g.person_id == p, g.revoked_at is None) for g in grants) == [(False, False), (True, True)]
    assert sorted((a.person_id == p, a.action) for a in audits) == [
        (False, "grant"),
        (False, "revoke"),
        (True, "grant"),
    ]
    assert (records[v1], records[v2], records[v3]) == (False, True, False)
    # The batch's two grants in a row travel as one packed event, the revocation after them on its own.
    sent = await role_events(sessions)
    decoded = {
        "identity.role.granted": ev.RoleGranted,
        "identity.role.granted_many": ev.RolesGranted,
        "identity.role.revoked": ev.RoleRevoked,
    }
    ours = []
    for subject, payload in sent:
        message = decoded[subject].FromString(payload)
        people_in = [g.person_id for g in message.grants] if subject.endswith("_many") else [message.person_id]
        if set(people_in) & {p, q}:
            ours.append((subject.rsplit(".", 1)[1], people_in))
    assert ours == [("granted_many", [p, q]), ("revoked", [q])]

    ghost = str(uuid.uuid4())
    outcomes = await runner.apply_batch([approved(str(uuid.uuid4()), ghost), left(v2, p)])
    assert isinstance(outcomes[0], PoisonMessage) and outcomes[1] is True
    async with sessions() as session:
        held = (
            (await session.execute(select(RoleGrant).where(RoleGrant.person_id == p, RoleGrant.revoked_at.is_(None))))
            .scalars()
            .all()
        )
    assert held == [], "p's last team left: the badge goes, though a poisoned event shared the batch"


async def _badge_world(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession], suffix: str, names: tuple[str, ...]
) -> list[str]:
    """People of these names (a world of the test), fresh phones and ID numbers."""
    people = []
    for name in names:
        phone = "135" + str(uuid.uuid4().int % 10**8).zfill(8)
        async with sessions() as session, session.begin():
            person = await service._new_person(session, name, phone, _id_number(suffix + uuid.uuid4().hex), "pw-long-x")
        people.append(person.id)
    return people


async def _badges_of(sessions: async_sessionmaker[AsyncSession], people: list[str], volunteers: list[str]) -> object:
    """Everything the badge rule wrote for these people and volunteers, in order, named by their index in the
    lists (two worlds compare equal when they did the same): grants, audits, records, events (packed runs
    of grants opened)."""
    who = {person: f"P{i}" for i, person in enumerate(people)}
    async with sessions() as session:
        grants = (
            (await session.execute(select(RoleGrant).where(RoleGrant.person_id.in_(people)).order_by(RoleGrant.id)))
            .scalars()
            .all()
        )
        grant_no = {g.id: i for i, g in enumerate(grants)}
        audits = (
            (await session.execute(select(RoleAudit).where(RoleAudit.person_id.in_(people)).order_by(RoleAudit.id)))
            .scalars()
            .all()
        )
        records = (
            (await session.execute(select(VolunteerRecord).where(VolunteerRecord.volunteer_id.in_(volunteers))))
            .scalars()
            .all()
        )
    sent = await role_events(sessions)
    items: list[tuple[str, ev.RoleGranted | ev.RoleRevoked]] = []
    for subject, payload in sent:
        if subject == "identity.role.granted_many":
            items.extend(("identity.role.granted", g) for g in ev.RolesGranted.FromString(payload).grants)
        elif subject == "identity.role.granted":
            items.append((subject, ev.RoleGranted.FromString(payload)))
        else:
            items.append((subject, ev.RoleRevoked.FromString(payload)))
    return (
        [
            (who[g.person_id], g.role, g.scope, g.granted_by, g.reason, g.revoked_at is None, g.revoked_by)
            for g in grants
        ],
        [(who[a.person_id], a.action, grant_no[a.grant_id], a.scope, a.actor, a.reason) for a in audits],
        sorted(
            (volunteers.index(r.volunteer_id), who.get(r.person_id), r.neighbourhood_id, r.team_id, r.active)
            for r in records
        ),
        [
            (
                subject,
                who[m.person_id],
                m.role,
                m.scope,
                m.granted_by if isinstance(m, ev.RoleGranted) else m.revoked_by,
                m.display_name if isinstance(m, ev.RoleGranted) else "",
            )
            for subject, m in items
            if m.person_id in who
        ],
    )


async def test_a_batch_of_approvals_and_departures_writes_what_its_events_write_one_by_one(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Two worlds get the same events: one in a single consumer transaction (decided together, written in
    bulk), the other one event per transaction. A person in two neighbourhoods joins and leaves teams; a badge
    held before the batch is revoked and granted anew in it (the unique active grant holds at every
    statement); a badge granted in the batch is revoked in it; a late approval after a departure is
    ignored. Same grants, audits, records and events (runs of grants packed in the batch). Replayed, the
    batch changes nothing."""
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 2), dry_run=False)
    async with sessions() as session:
        n1, n2 = [await imports_lookup(session, f"N{suffix}-{i}") for i in range(2)]
    runner = ConsumerRunner(None, sessions, consumer_specs(service)[0])  # type: ignore[arg-type]

    def script(p: str, q: str, v: list[str]) -> list[ReceivedEvent]:
        def approved(vid: str, person: str, place: str, team: str) -> ReceivedEvent:
            message = vol_ev.VolunteerApproved(volunteer_id=vid, person_id=person, neighbourhood_id=place, team_id=team)
            return received_event("volunteers.volunteer.approved", message)

        def left(vid: str, person: str, place: str) -> ReceivedEvent:
            message = vol_ev.VolunteerLeft(volunteer_id=vid, person_id=person, neighbourhood_id=place)
            return received_event("volunteers.volunteer.left", message)

        imported = []
        for vid, person, place, team in ((v[3], q, n1, "t"), (v[4], p, n2, "c")):
            ids = {"volunteer_id": vid, "person_id": person, "neighbourhood_id": place, "team_id": team}
            imported.append(
                vol_ev.ImportedVolunteer(
                    applied=vol_ev.VolunteerApplied(**ids), approved=vol_ev.VolunteerApproved(**ids)
                )
            )
        return [
            approved(v[1], p, n1, "a"),  # p holds n1's badge already (v0): nothing
            approved(v[2], p, n2, "b"),  # granted
            received_event("volunteers.volunteer.imported", vol_ev.VolunteersImported(volunteers=imported)),
            left(v[0], p, n1),  # p still in team a of n1
            left(v[1], p, n1),  # p's last team of n1: the badge held before the batch goes
            approved(v[5], p, n1, "d"),  # and a new one is granted
            left(v[2], p, n2),
            left(v[4], p, n2),  # the badge granted in this batch goes
            left(v[3], q, n1),
            approved(v[3], q, n1, "t"),  # late: left wins
            left(v[6], q, n2),  # a departure never seen approved: a tombstone, no badge
        ]

    worlds = []
    for _ in range(2):
        p, q = await _badge_world(service, sessions, suffix, ("志愿者丙", "志愿者丁"))
        v = [str(uuid.uuid4()) for _ in range(7)]
        first = received_event(
            "volunteers.volunteer.approved",
            vol_ev.VolunteerApproved(volunteer_id=v[0], person_id=p, neighbourhood_id=n1, team_id="z"),
        )
        assert await runner.apply_batch([first]) == [True]
        worlds.append(([p, q], v, script(p, q, v)))
    (batch_people, batch_volunteers, batch), (alone_people, alone_volunteers, alone) = worlds

    assert await runner.apply_batch(batch) == [True] * len(batch)
    for event in alone:
        assert await runner.apply_batch([event]) == [True]
    in_batch = await _badges_of(sessions, batch_people, batch_volunteers)
    assert in_batch == await _badges_of(sessions, alone_people, alone_volunteers)
    grants, audits, records, sent = in_batch  # type: ignore[misc]
    assert [(g[0], g[2] == f"n:{n1}", g[5]) for g in grants] == [
        ("P0", True, False),  # before the batch (v0)
        ("P0", False, False),  # n2, granted and revoked in the batch
        ("P1", True, False),  # q, n1
        ("P0", True, True),  # n1 anew
    ]
    assert [a[1] for a in audits] == ["grant", "grant", "grant", "revoke", "grant", "revoke", "revoke"]
    assert [r[4] for r in records] == [False, False, False, False, False, True, False]
    assert len(sent) == 7

    async with sessions() as session:
        subjects = (
            await session.execute(
                select(outbox.c.subject, outbox.c.payload)
                .where(outbox.c.subject.in_(["identity.role.granted_many", "identity.role.granted"]))
                .order_by(outbox.c.id)
            )
        ).all()
    packs = [
        [g.person_id for g in ev.RolesGranted.FromString(payload).grants]
        for subject, payload in subjects
        if subject == "identity.role.granted_many"
    ]
    assert batch_people in packs, "the batch committed as one: its two grants in a row went packed"

    counts = await _outbox_count(sessions)
    copies = [dataclasses.replace(event, id=str(uuid.uuid4())) for event in batch]  # past the inbox
    assert await runner.apply_batch(copies) == [True] * len(copies)
    assert await runner.apply_batch(batch) == [False] * len(batch), "the inbox knows these ids"
    assert await _badges_of(sessions, batch_people, batch_volunteers) == in_batch
    assert await _outbox_count(sessions) == counts


async def _outbox_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(outbox)) or 0)


async def test_poisoned_badge_events_fail_alone_and_write_nothing(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """An approval of an unknown person, or in a place that is no known neighbourhood, is poison once a badge
    is due: the batch goes back one event per transaction, those two fail, and the others are handled."""
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 1), dry_run=False)
    async with sessions() as session:
        place, subdistrict = (
            await imports_lookup(session, f"N{suffix}-0"),
            await imports_lookup(session, f"S{suffix}-0"),
        )
    (p,) = await _badge_world(service, sessions, suffix, ("志愿者戊",))
    runner = ConsumerRunner(None, sessions, consumer_specs(service)[0])  # type: ignore[arg-type]
    v = [str(uuid.uuid4()) for _ in range(4)]

    def approved(vid: str, person: str, where: str) -> ReceivedEvent:
        message = vol_ev.VolunteerApproved(volunteer_id=vid, person_id=person, neighbourhood_id=where, team_id="t")
        return received_event("volunteers.volunteer.approved", message)

    ghost = str(uuid.uuid4())
    outcomes = await runner.apply_batch(
        [
            approved(v[0], p, place),
            approved(v[1], ghost, place),
            approved(v[2], p, subdistrict),
            approved(v[3], p, str(uuid.uuid4())),
            received_event(
                "volunteers.volunteer.left",
                vol_ev.VolunteerLeft(volunteer_id=str(uuid.uuid4()), person_id=ghost, neighbourhood_id=place),
            ),  # no badge due: an unknown person's departure is only a tombstone
        ]
    )
    assert outcomes[0] is True and outcomes[4] is True
    assert all(isinstance(outcome, PoisonMessage) for outcome in outcomes[1:4])
    async with sessions() as session:
        grants = (await session.execute(select(RoleGrant).where(RoleGrant.person_id.in_([p, ghost])))).scalars().all()
        written = set(
            (await session.execute(select(VolunteerRecord.volunteer_id).where(VolunteerRecord.volunteer_id.in_(v))))
            .scalars()
            .all()
        )
    assert [(g.person_id, g.scope) for g in grants] == [(p, f"n:{place}")]
    assert written == {v[0]}, "a poisoned event's record is not written"


async def imports_lookup(session: AsyncSession, code: str) -> str:
    from shequtong_identity.models import Region

    region = (await session.execute(select(Region).where(Region.code == code))).scalar_one()
    return region.id


def _id_number(seed: str) -> str:
    import hashlib

    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    first17 = f"{310000 + digest % 9999:06d}{1960 + digest % 40}0101{digest % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    return first17 + "10X98765432"[total % 11]


def test_import_limits_are_sane() -> None:
    assert imports.MAX_ROWS >= 100_000 and imports.MAX_ERRORS == 1000
    assert timedelta(minutes=5).total_seconds() == 300


async def test_stale_codes_and_counters_are_forgotten(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    address = f"192.0.2.{uuid.uuid4().int % 250}"
    phone = "137" + str(uuid.uuid4().int % 10**8).zfill(8)
    await service.request_login_code(phone, address)
    key = service._key("code-addr", address)
    async with sessions() as session:
        assert await session.get(RateLimit, key) is not None
    clock.advance(hours=23)
    await service.purge_stale()
    async with sessions() as session:
        assert await session.get(RateLimit, key) is not None, "kept within a day"
    clock.advance(hours=2)
    await service.purge_stale()
    async with sessions() as session:
        assert await session.get(RateLimit, key) is None


# --- ImportResidents -------------------------------------------------------------------------------------


def _numbered_id_number(seed: int) -> str:
    """A valid ID number per seed, distinct for different seeds below 252,000,000 (tests draw them at random:
    with the 28,000 numbers of area 310113 alone, two tests of one module met on one number now and then)."""
    area, rest = 310000 + (seed // 28_000) % 9_000, seed % 28_000
    first17 = f"{area:06d}{19800101 + rest % 28:08d}{rest // 28:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, weights, strict=True)) % 11]


def _resident(ref: str, hood_code: str, seed: int, **changes: object) -> resident_imports.RawResident:
    values: dict[str, object] = {
        "external_ref": ref,
        "neighbourhood_id": "",
        "neighbourhood_code": hood_code,
        "household_id": "",
        "address": (f"{seed % 7 + 1}号楼", "1", f"{seed % 3 + 101}", "", ""),
        "real_name": "王小明",
        "phone": f"139{seed:08d}",
        "id_number": _numbered_id_number(seed),
        "party_member": seed % 4 == 0,
    }
    values.update(changes)
    return resident_imports.RawResident(**values)  # type: ignore[arg-type]


async def _count(sessions: async_sessionmaker[AsyncSession], model: type, *where: object) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_residents_import_in_one_transaction_with_the_per_person_events_and_a_resend_changes_nothing(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 3), dry_run=False)
    base = uuid.uuid4().int % 10**7 * 10
    batch = [_resident(f"{suffix}-{i}", f"N{suffix}-{i % 3}", base + i) for i in range(40)]
    started = clock.now()
    outcome, made = await service.import_residents(OPERATOR, batch, dry_run=False)
    assert outcome.applied and not outcome.errors, outcome.errors.items
    assert (outcome.rows, outcome.created, outcome.skipped) == (40, 40, 0)
    assert [m.external_ref for m in made] == [r.external_ref for r in batch] and all(m.created for m in made)
    person_ids = {m.person_id for m in made}
    async with sessions() as session:
        people = (await session.execute(select(Person).where(Person.id.in_(person_ids)))).scalars().all()
    assert len(people) == 40
    assert all(p.password_hash == "" for p in people)  # no password: sign-in by SMS code
    assert all(service.pii.decrypt(p.id_number_enc) in {r.id_number for r in batch} for p in people)
    assert all(p.id_number_hmac == service.pii.id_hmac(service.pii.decrypt(p.id_number_enc)) for p in people)
    verified = await _count(sessions, Membership, Membership.person_id.in_(person_ids), Membership.state == 2)
    assert verified == 40
    party = await _count(sessions, RoleGrant, RoleGrant.person_id.in_(person_ids), RoleGrant.role == "party_member")
    assert party == 10
    # The per-person events of each resident, packed in the batch's order: one event, not 40 × 2–4.
    packs = await events_of(sessions, "identity.membership.imported", started)
    assert len(packs) == 1
    residents = list(ev.ResidentsImported.FromString(packs[0]).residents)
    assert [r.verified.membership_id for r in residents] == [m.membership_id for m in made]
    assert all(r.joined.membership_id == r.verified.membership_id for r in residents)
    assert [r.verified.person_id for r in residents] == [m.person_id for m in made]
    assert {r.verified.verified_by for r in residents} == {OPERATOR.subject}
    party_members = [r.party_member for r in residents if r.HasField("party_member")]
    assert len(party_members) == 10
    assert {(g.role, g.scope) for g in party_members} == {
        ("party_member", f"n:{r.verified.neighbourhood_id}") for r in residents if r.HasField("party_member")
    }
    households = {m.household_id for m in made}
    assert sorted(r.household.household_id for r in residents if r.HasField("household")) == sorted(households)
    for one_by_one, message, key, ours in (
        ("membership.verified", ev.MemberVerified, "person_id", person_ids),
        ("membership.joined", ev.MemberJoined, "person_id", person_ids),
        ("role.granted", ev.RoleGranted, "person_id", person_ids),
        ("household.created", ev.HouseholdCreated, "household_id", households),
    ):
        sent = [message.FromString(p) for p in await events_of(sessions, f"identity.{one_by_one}", started)]
        assert not [e for e in sent if getattr(e, key) in ours], one_by_one
    first = made[0]
    async with sessions() as session:
        membership = await session.get(Membership, first.membership_id)
        assert membership is not None
        assert f"resident@n:{membership.neighbourhood_id}" in await service.roles_of(session, first.person_id)

    # The same batch again creates nothing and answers with what the first call made.
    again, made_again = await service.import_residents(OPERATOR, batch, dry_run=False)
    assert (again.created, again.skipped, again.applied) == (0, 40, True)
    assert [(m.person_id, m.membership_id, m.created) for m in made_again] == [
        (m.person_id, m.membership_id, False) for m in made
    ]
    assert len(await events_of(sessions, "identity.membership.imported", started)) == 1

    # Residents are found by the lookup our services use (volunteers' import), and sign in with no password.
    found = await service.lookup_residents(
        Principal(subject="svc:volunteers", roles=parse_roles(["service@*"])), [first.person_id]
    )
    assert [(p, h) for p, _n, h, _d in found] == [(first.person_id, first.household_id)]
    with pytest.raises(DomainError) as refused:
        await service.login(batch[0].phone, "")
    assert refused.value.code == "invalid_credentials"


async def test_an_invalid_resident_batch_writes_nothing_and_names_each_bad_record(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 1), dry_run=False)
    base = uuid.uuid4().int % 10**7 * 10
    hood = f"N{suffix}-0"
    taken = _resident(f"{suffix}-taken", hood, base + 9)
    await service.import_residents(OPERATOR, [taken], dry_run=False)
    batch = [
        _resident(f"{suffix}-ok", hood, base + 1),
        _resident("", hood, base + 2),
        _resident(f"{suffix}-3", "NOPE", base + 3),
        _resident(f"{suffix}-4", hood, base + 4, phone="12345"),
        _resident(f"{suffix}-5", hood, base + 5, id_number="310113198001010001"),
        _resident(f"{suffix}-6", hood, base + 6, address=("", "", "", "", "")),
        _resident(f"{suffix}-7", hood, base + 7, phone=taken.phone),
        _resident(f"{suffix}-8", hood, base + 8, phone=f"139{base + 1:08d}"),
        _resident(f"{suffix}-ok", hood, base + 10),
        _resident(f"{suffix}-11", hood, base + 11, household_id="no-such-household"),
        _resident(f"{suffix}-12", hood, base + 12, real_name=""),
    ]
    outcome, made = await service.import_residents(OPERATOR, batch, dry_run=False)
    assert not outcome.applied and made == [] and outcome.created == 0
    assert [(e.row, e.column, e.code) for e in outcome.errors.items] == [
        (2, "external_ref", "external_ref_invalid"),
        (3, "neighbourhood_code", "neighbourhood_not_found"),
        (4, "phone", "phone_invalid"),
        (5, "id_number", "id_number_check_digit"),
        (6, "address", "address_invalid"),
        (7, "phone", "phone_taken"),
        (8, "phone", "phone_repeated"),
        (9, "external_ref", "external_ref_repeated"),
        (10, "household_id", "household_not_found"),
        (11, "real_name", "real_name_invalid"),
    ]
    assert await _count(sessions, Person, Person.phone == batch[0].phone) == 0, "nothing of the batch was written"
    with pytest.raises(DomainError) as empty:
        await service.import_residents(OPERATOR, [], dry_run=False)
    assert empty.value.code == "batch_empty"
    with pytest.raises(DomainError) as big:
        await service.import_residents(OPERATOR, [batch[0]] * 1001, dry_run=False)
    assert big.value.code == "batch_too_large"


async def test_only_operators_import_residents_and_only_services_look_them_up(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 1), dry_run=False)
    record = _resident(f"{suffix}-1", f"N{suffix}-0", uuid.uuid4().int % 10**7 * 10)
    async with sessions() as session:
        hood = (await session.execute(select(Region.id).where(Region.code == f"N{suffix}-0"))).scalar_one()
    for who in (
        Principal(subject="svc:boards", roles=parse_roles(["service@*"])),
        Principal(subject=str(uuid.uuid4()), roles=parse_roles([f"secretary@n:{hood}"])),
    ):
        with pytest.raises(PermissionDenied) as refused:
            await service.import_residents(who, [record], dry_run=False)
        assert refused.value.code == "operator_only"
    assert await _count(sessions, Person, Person.phone == record.phone) == 0
    with pytest.raises(PermissionDenied) as nosy:
        await service.lookup_residents(Principal(subject=str(uuid.uuid4()), roles=parse_roles([])), ["x"])
    assert nosy.value.code == "service_only"


async def test_concurrent_resident_batches_share_households_without_doubles(
    service: IdentityService, sessions: async_sessionmaker[AsyncSession]
) -> None:
    suffix = uuid.uuid4().hex[:6]
    await service.import_regions(OPERATOR, tree_csv(suffix, 2), dry_run=False)
    base = uuid.uuid4().int % 10**7 * 10

    def batch(part: int) -> list[resident_imports.RawResident]:
        # Both batches name the same 10 addresses: whichever commits second finds the first one's households.
        return [
            _resident(
                f"{suffix}-{part}-{i}",
                f"N{suffix}-{i % 2}",
                base + part * 100 + i,
                address=(f"{i % 10}号楼", "", "101", "", ""),
            )
            for i in range(50)
        ]

    results = await asyncio.gather(*(service.import_residents(OPERATOR, batch(p), dry_run=False) for p in (1, 2)))
    assert all(outcome.applied and outcome.created == 50 for outcome, _ in results)
    households = {m.household_id for _, made in results for m in made}
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Household).where(Household.id.in_(households)))
    assert len(households) == count == 10


async def role_events(sessions: Any) -> list[Any]:
    """The identity.role.* events in the outbox, (subject, payload), in the order they were written."""
    async with sessions() as session:
        query = select(outbox.c.subject, outbox.c.payload).where(outbox.c.subject.like("identity.role.%"))
        return list((await session.execute(query.order_by(outbox.c.id))).all())
