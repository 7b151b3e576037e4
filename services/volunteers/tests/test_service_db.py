"""The use cases against a real database (PostgreSQL when reachable, else SQLite) migrated by the
service's own Alembic revisions: each change and its outbox events in one transaction, and the
concurrency guarantees (capacity, waitlist order, no double booking) under real concurrent transactions."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from shequtong_volunteers.consumers import consumer_specs
from shequtong_volunteers.domain import activities as activity_rules
from shequtong_volunteers.domain import imports
from shequtong_volunteers.models import Activity, HoursEntry, Person, Slot
from shequtong_volunteers.service import VolunteersService
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import volunteers_events_pb2 as ev
from shequtong_kit import regions
from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.clock import ManualClock
from shequtong_kit.consumer import ConsumerRunner, PoisonMessage
from shequtong_kit.db import create_engine, outbox, session_factory
from shequtong_kit.errors import AlreadyExists, DomainError, FailedPrecondition, PermissionDenied
from shequtong_kit.outbox import Outbox
from shequtong_kit.testing import Databases, deliver_packs, received_event, temp_workdir

T = TypeVar("T")


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with temp_workdir("volunteers-db-") as workdir:
        dbs = Databases(Path(workdir))
        url = dbs.create(f"volunteers_{uuid.uuid4().hex[:6]}")
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "shequtong_volunteers", "migrate"], env=env, check=True, timeout=120)
        yield url
        dbs.drop_all()


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url, pool_size=40, max_overflow=10)
    yield eng
    await eng.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def service(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> VolunteersService:
    return VolunteersService(sessions, Outbox("volunteers", clock), clock)


def person(*roles: str, subject: str | None = None) -> Principal:
    return Principal(subject=subject or f"p-{uuid.uuid4().hex[:10]}", roles=parse_roles(roles))


class World:
    """A district with two neighbourhoods in one sub-district and one in another district."""

    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.district, self.other_district = f"d-{suffix}", f"d2-{suffix}"
        self.n1, self.n2, self.far = f"n1-{suffix}", f"n2-{suffix}", f"n3-{suffix}"
        self.cadre = person(f"cadre@n:{self.n1}")


@pytest.fixture
async def world(service: VolunteersService) -> World:
    w = World()
    async with service.sessions() as session, session.begin():
        for n, sub, dist in ((w.n1, "s1", w.district), (w.n2, "s1", w.district), (w.far, "s9", w.other_district)):
            created = identity_ev.NeighbourhoodCreated(
                neighbourhood_id=n, subdistrict_id=f"{sub}-{dist}", district_id=dist, code=n, name=n, kind=1
            )
            await regions.record_neighbourhood(session, created)
            await service.ensure_default_team(session, n)
    return w


async def tx(service: VolunteersService, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """One transaction, as the servicer runs it."""
    async with service.sessions() as session, session.begin():
        return await work(session)


async def outbox_mark(service: VolunteersService) -> str:
    """The newest outbox id now (ids are time-ordered): later rows were written after this point."""
    async with service.sessions() as session:
        return (await session.execute(select(func.max(outbox.c.id)))).scalar_one() or ""


async def subjects_since(service: VolunteersService, mark: str) -> list[str]:
    async with service.sessions() as session:
        rows = await session.execute(select(outbox.c.subject).where(outbox.c.id > mark).order_by(outbox.c.id))
        return [row[0] for row in rows]


async def payload_since(service: VolunteersService, mark: str, subject: str) -> bytes:
    async with service.sessions() as session:
        query = select(outbox.c.payload).where(outbox.c.id > mark, outbox.c.subject == subject)
        return bytes((await session.execute(query)).scalar_one())


async def new_activity(
    service: VolunteersService, world: World, clock: ManualClock, capacity: int, **changes: Any
) -> Activity:
    values: dict[str, Any] = {
        "organiser_kind": activity_rules.NEIGHBOURHOOD,
        "neighbourhood_id": world.n1,
        "organisation_id": "",
        "team_id": "",
        "title": "楼道清扫",
        "description": "",
        "place": "3号楼",
        "starts_at": clock.now() + timedelta(hours=2),
        "ends_at": clock.now() + timedelta(hours=3),
        "capacity": capacity,
        "required_skills": [],
        "audience_neighbourhood_ids": [],
    }
    values.update(changes)
    return await tx(service, lambda s: service.create_activity(s, world.cadre, **values))


# --- volunteers ----------------------------------------------------------------------------------------


async def test_apply_and_approve_write_the_events_with_the_change(
    service: VolunteersService, world: World, clock: ManualClock
) -> None:
    resident = person(f"resident@n:{world.n1}")
    start = await outbox_mark(service)
    volunteer = await tx(service, lambda s: service.apply(s, resident, world.n1, "", ["理发"], "周末", ""))
    assert volunteer.state == "pending"
    with pytest.raises(AlreadyExists):
        await tx(service, lambda s: service.apply(s, resident, world.n1, "", [], "", ""))
    with pytest.raises(PermissionDenied):
        await tx(service, lambda s: service.approve(s, person(f"cadre@n:{world.n2}"), volunteer.id))
    approved = await tx(service, lambda s: service.approve(s, world.cadre, volunteer.id))
    assert approved.state == "approved" and approved.decided_by == world.cadre.subject
    with pytest.raises(FailedPrecondition):
        await tx(service, lambda s: service.approve(s, world.cadre, volunteer.id))
    assert await subjects_since(service, start) == ["volunteers.volunteer.applied", "volunteers.volunteer.approved"]

    payload = await payload_since(service, start, "volunteers.volunteer.approved")
    message = ev.VolunteerApproved.FromString(payload)
    assert (message.person_id, message.neighbourhood_id) == (resident.subject, world.n1)

    left = await tx(service, lambda s: service.leave(s, resident, volunteer.id, ""))
    assert left.state == "left"
    assert (await subjects_since(service, start))[-1] == "volunteers.volunteer.left"


# --- capacity, waitlist and promotion ----------------------------------------------------------------


async def test_thirty_concurrent_sign_ups_for_twenty_places(
    service: VolunteersService, world: World, clock: ManualClock
) -> None:
    activity = await new_activity(service, world, clock, capacity=20)
    people = [person(f"resident@n:{world.n1}") for _ in range(30)]

    async def sign_up(who: Principal) -> str:
        signup, _ = await tx(service, lambda s: service.sign_up(s, who, activity.id, ""))
        return signup.state

    states = await asyncio.gather(*(sign_up(p) for p in people))
    assert states.count("confirmed") == 20
    assert states.count("waitlisted") == 10

    async with service.sessions() as session:
        stored = await session.get(Activity, activity.id)
        assert stored is not None
        assert (stored.confirmed_count, stored.waitlist_count) == (20, 10)

    async with service.sessions() as session:
        waiting, positions = await service.list_signups(
            session, world.cadre, activity_id=activity.id, state="waitlisted", mine=False, cursor="", limit=50
        )
    assert len(waiting) == 10 and sorted(positions.values()) == list(range(1, 11))
    first_waiting = min(waiting, key=lambda s: positions[s.id])

    confirmed_person = next(p for p, st in zip(people, states, strict=True) if st == "confirmed")
    cancelled, promoted = await tx(service, lambda s: service.cancel_signup(s, confirmed_person, activity.id))
    assert cancelled.state == "cancelled"
    assert promoted is not None and promoted.id == first_waiting.id and promoted.state == "confirmed"
    assert promoted.promoted is True
    async with service.sessions() as session:
        stored = await session.get(Activity, activity.id)
        assert stored is not None
        assert (stored.confirmed_count, stored.waitlist_count) == (20, 9)


async def test_cancelling_the_activity_notifies_everyone_signed_up(
    service: VolunteersService, world: World, clock: ManualClock
) -> None:
    activity = await new_activity(service, world, clock, capacity=1)
    a, b = person(f"resident@n:{world.n1}"), person(f"resident@n:{world.n1}")
    for who in (a, b):
        await tx(service, lambda s, who=who: service.sign_up(s, who, activity.id, ""))
    start = await outbox_mark(service)
    with pytest.raises(PermissionDenied):
        await tx(service, lambda s: service.cancel_activity(s, a, activity.id, "rain"))
    cancelled, notified = await tx(service, lambda s: service.cancel_activity(s, world.cadre, activity.id, "暴雨"))
    assert cancelled.state == "cancelled" and notified == 2
    payload = await payload_since(service, start, "volunteers.activity.cancelled")
    assert set(ev.ActivityCancelled.FromString(payload).notified_person_ids) == {a.subject, b.subject}
    with pytest.raises(FailedPrecondition) as err:
        await tx(service, lambda s: service.sign_up(s, person(f"resident@n:{world.n1}"), activity.id, ""))
    assert err.value.code == "activity_cancelled"


async def test_a_refused_sign_up_changes_nothing(service: VolunteersService, world: World, clock: ManualClock) -> None:
    activity = await new_activity(service, world, clock, capacity=5)
    outsider = person(f"resident@n:{world.n2}")
    start = await outbox_mark(service)
    with pytest.raises(PermissionDenied) as err:
        await tx(service, lambda s: service.sign_up(s, outsider, activity.id, ""))
    assert err.value.code == "not_in_audience"
    assert await subjects_since(service, start) == []
    async with service.sessions() as session:
        stored = await session.get(Activity, activity.id)
        assert stored is not None and stored.confirmed_count == 0


# --- attendance and the ledger ---------------------------------------------------------------------------


async def test_attendance_credits_hours_and_a_reversal_corrects_them(
    service: VolunteersService, world: World, clock: ManualClock
) -> None:
    resident = person(f"resident@n:{world.n1}")
    volunteer = await tx(service, lambda s: service.apply(s, resident, world.n1, "", [], "", ""))
    await tx(service, lambda s: service.approve(s, world.cadre, volunteer.id))
    activity = await new_activity(service, world, clock, capacity=5)
    await tx(service, lambda s: service.sign_up(s, resident, activity.id, ""))

    with pytest.raises(FailedPrecondition) as err:  # two hours before the start: too early to scan in
        await tx(service, lambda s: service.check_in(s, resident, activity.id, "", activity.checkin_code))
    assert err.value.code == "outside_check_in_window"
    with pytest.raises(PermissionDenied):
        await tx(service, lambda s: service.check_in(s, resident, activity.id, "", "not-the-code"))

    clock.advance(hours=1, minutes=45)  # a quarter of an hour before the start
    signup = await tx(service, lambda s: service.check_in(s, resident, activity.id, "", activity.checkin_code))
    assert signup.check_in_method == "qr"
    clock.advance(hours=2)  # an hour after the one-hour activity ended
    signup, entry = await tx(service, lambda s: service.check_out(s, resident, activity.id, "", activity.checkin_code))
    assert entry is not None and entry.minutes == 60 and signup.credited_minutes == 60
    assert entry.team_id == volunteer.team_id

    totals = await tx(service, lambda s: service.totals(s, resident, "person", "", None, None))
    assert totals.total_minutes == 60
    team = await tx(service, lambda s: service.totals(s, world.cadre, "team", volunteer.team_id, None, None))
    assert team.total_minutes >= 60 and team.volunteer_count >= 1

    with pytest.raises(PermissionDenied):
        await tx(service, lambda s: service.reverse_entry(s, resident, entry.id, "mine", 0))
    reversal, adjustment = await tx(
        service, lambda s: service.reverse_entry(s, world.cadre, entry.id, "left early", 45)
    )
    assert reversal.minutes == -60 and adjustment is not None and adjustment.minutes == 45
    with pytest.raises(FailedPrecondition) as err:
        await tx(service, lambda s: service.reverse_entry(s, world.cadre, entry.id, "again", 0))
    assert err.value.code == "entry_already_reversed"

    totals = await tx(service, lambda s: service.totals(s, resident, "person", "", None, None))
    assert totals.total_minutes == 45
    async with service.sessions() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(HoursEntry).where(HoursEntry.person_id == resident.subject)
            )
        ).scalar_one()
        original = await session.get(HoursEntry, entry.id)
    assert count == 3, "corrections append; the original entry stays"
    assert original is not None and original.minutes == 60

    before = clock.now() - timedelta(days=1)
    window = await tx(service, lambda s: service.totals(s, resident, "person", "", before, activity.starts_at))
    assert window.total_minutes == 0, "the activity's time falls outside [before, start)"

    cert = await tx(service, lambda s: service.certificate(s, resident, "", None, None))
    assert cert.total_minutes == 45 and [line.minutes for line in cert.lines] == [45]


# --- storefronts ---------------------------------------------------------------------------------------------


async def test_two_residents_booking_the_last_place_at_once(
    service: VolunteersService, world: World, clock: ManualClock
) -> None:
    founder = person()
    staff = person(f"district_staff@d:{world.district}")
    code = _credit_code()
    org, _ = await tx(
        service, lambda s: service.register_organisation(s, founder, "阳光社工", code, world.district, "")
    )
    with pytest.raises(FailedPrecondition) as err:
        await tx(service, lambda s: service.open_storefront(s, founder, org.id, "店", "", "", [world.n1]))
    assert err.value.code == "organisation_not_approved"
    await tx(service, lambda s: service.decide_organisation(s, staff, org.id, True, ""))
    storefront, _ = await tx(service, lambda s: service.open_storefront(s, founder, org.id, "店", "", "", [world.n1]))
    offering = await tx(
        service,
        lambda s: service.add_offering(
            s,
            founder,
            storefront.id,
            title="理发",
            description="",
            category="haircut",
            price_cents=0,
            neighbourhood_ids=[],
            eligibility_note="",
        ),
    )
    starts = clock.now() + timedelta(days=1)
    slot = await tx(
        service, lambda s: service.add_slot(s, founder, offering.id, starts, starts + timedelta(hours=1), 1)
    )
    residents = [person(f"resident@n:{world.n1}") for _ in range(2)]

    async def book(who: Principal) -> str:
        try:
            booking = await tx(service, lambda s: service.request_booking(s, who, offering.id, slot.id, "", ""))
            return booking.state
        except DomainError as exc:
            return exc.code

    outcomes = sorted(await asyncio.gather(*(book(r) for r in residents)))
    assert outcomes == ["requested", "slot_full"]
    async with service.sessions() as session:
        stored = await session.get(Slot, slot.id)
        assert stored is not None and stored.booked_count == 1

    outsider = person(f"resident@n:{world.n2}")
    with pytest.raises(PermissionDenied) as perm:
        await tx(service, lambda s: service.request_booking(s, outsider, offering.id, slot.id, "", ""))
    assert perm.value.code == "neighbourhood_not_served"


def _credit_code() -> str:
    """A fresh valid unified social credit code (the check character computed), unique per test run."""
    from shequtong_volunteers.domain.organisations import CREDIT_CODE_ALPHABET, credit_code_check_char

    body = "5231" + "".join(CREDIT_CODE_ALPHABET[b % 31] for b in uuid.uuid4().bytes[:13])
    return body + credit_code_check_char(body)


# --- bulk import -----------------------------------------------------------------------------------------

OPERATOR = Principal(subject="svc:ops", roles=parse_roles(["operator@*"]))


class FakeResidents:
    """identity's LookupResidents: who is a verified resident where."""

    def __init__(self, residents: dict[tuple[str, str], str]) -> None:
        self.residents = residents
        self.asked: list[list[str]] = []

    async def lookup(self, person_ids: Any) -> dict[tuple[str, str], str]:
        self.asked.append(list(person_ids))
        return {k: v for k, v in self.residents.items() if k[0] in set(person_ids)}


def volunteer_record(ref: str, person_id: str, neighbourhood_id: str, **changes: Any) -> imports.RawVolunteer:
    values: dict[str, Any] = {
        "external_ref": ref,
        "person_id": person_id,
        "neighbourhood_id": neighbourhood_id,
        "team_id": "",
        "skills": ["助老"],
        "availability": "周末",
        "motivation": "",
    }
    values.update(changes)
    return imports.RawVolunteer(**values)


async def test_volunteers_import_approved_with_the_events_of_apply_and_approve_and_a_resend_changes_nothing(
    service: VolunteersService, world: World
) -> None:
    people = [f"p-{uuid.uuid4().hex[:10]}" for _ in range(30)]
    service.residents = FakeResidents({(p, world.n1): f"王*{i}" for i, p in enumerate(people)})
    batch = [volunteer_record(f"v-{p}", p, world.n1) for p in people]
    mark = await outbox_mark(service)
    outcome, made = await tx(service, lambda s: service.import_volunteers(s, OPERATOR, batch, False))
    assert outcome.applied and not outcome.errors and (outcome.created, outcome.skipped) == (30, 0)
    assert [m.external_ref for m in made] == [r.external_ref for r in batch]
    listed = await tx(
        service,
        lambda s: service.list_volunteers(
            s, world.cadre, neighbourhood_id=world.n1, team_id="", state="approved", mine=False, cursor="", limit=100
        ),
    )
    assert {v.person_id for v in listed} >= set(people)
    names = await tx(service, lambda s: service.names(s, people))
    assert names[people[3]] == "王*3"
    # The events of apply + approve for each, packed in the batch's order: one event, not 60.
    assert await subjects_since(service, mark) == ["volunteers.volunteer.imported"]
    pack = ev.VolunteersImported.FromString(await payload_since(service, mark, "volunteers.volunteer.imported"))
    assert [v.approved.volunteer_id for v in pack.volunteers] == [m.id for m in made]
    assert [v.applied.person_id for v in pack.volunteers] == people
    assert all(v.applied.volunteer_id == v.approved.volunteer_id for v in pack.volunteers)
    assert {(v.approved.neighbourhood_id, v.approved.approved_by) for v in pack.volunteers} == {
        (world.n1, OPERATOR.subject)
    }

    mark = await outbox_mark(service)
    again, made_again = await tx(service, lambda s: service.import_volunteers(s, OPERATOR, batch, False))
    assert (again.created, again.skipped, again.applied) == (0, 30, True)
    assert [m.id for m in made_again] == [m.id for m in made]
    assert await subjects_since(service, mark) == []


async def test_an_invalid_volunteer_batch_writes_nothing_and_names_each_bad_record(
    service: VolunteersService, world: World
) -> None:
    ok, outsider, pending = (f"p-{uuid.uuid4().hex[:10]}" for _ in range(3))
    service.residents = FakeResidents({(ok, world.n1): "李*", (pending, world.n1): "张*"})
    applicant = person(f"resident@n:{world.n1}", subject=pending)
    await tx(service, lambda s: service.apply(s, applicant, world.n1, "", [], "", ""))
    other_team = await tx(service, lambda s: service.ensure_default_team(s, world.n2))
    batch = [
        volunteer_record(f"ok-{ok}", ok, world.n1),
        volunteer_record("", ok, world.n1),
        volunteer_record(f"x-{ok}", ok, "nowhere"),
        volunteer_record(f"y-{ok}", outsider, world.n1),
        volunteer_record(f"z-{ok}", ok, world.n1, team_id=other_team.id),
        volunteer_record(f"p-{ok}", pending, world.n1),
        volunteer_record(f"r-{ok}", ok, world.n1),
        volunteer_record(f"s-{ok}", ok, world.n1, skills=["x" * 41]),
        volunteer_record(f"ok-{ok}", ok, world.n1),
    ]
    mark = await outbox_mark(service)
    outcome, made = await tx(service, lambda s: service.import_volunteers(s, OPERATOR, batch, False))
    assert not outcome.applied and made == [] and outcome.created == 0
    assert [(e.row, e.column, e.code) for e in outcome.errors.items] == [
        (2, "external_ref", "external_ref_invalid"),
        (3, "neighbourhood_id", "neighbourhood_not_found"),
        (4, "person_id", "not_a_resident"),
        (5, "team_id", "team_not_in_neighbourhood"),
        (6, "person_id", "already_applied"),
        (7, "person_id", "volunteer_repeated"),
        (8, "skills", "skills_invalid"),
        (9, "external_ref", "external_ref_repeated"),
    ]
    assert await subjects_since(service, mark) == [], "nothing of the batch was written"
    for bad in ([], [batch[0]] * 1001):
        with pytest.raises(DomainError) as refused:
            await tx(service, lambda s, b=bad: service.import_volunteers(s, OPERATOR, b, False))  # type: ignore[misc]
        assert refused.value.code in ("batch_empty", "batch_too_large")


async def test_only_operators_import(service: VolunteersService, world: World) -> None:
    service.residents = FakeResidents({})
    someone = f"p-{uuid.uuid4().hex[:10]}"
    for who in (world.cadre, Principal(subject="svc:boards", roles=parse_roles(["service@*"]))):
        with pytest.raises(PermissionDenied) as refused:
            await tx(
                service,
                lambda s, w=who: service.import_volunteers(  # type: ignore[misc]
                    s, w, [volunteer_record("r", someone, world.n1)], False
                ),
            )
        assert refused.value.code == "operator_only"
        with pytest.raises(PermissionDenied):
            await tx(service, lambda s, w=who: service.import_storefronts(s, w, [], False))  # type: ignore[misc]
    assert service.residents.asked == []


def credit(seed: str) -> str:
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    digest = int(uuid.uuid5(uuid.NAMESPACE_DNS, seed).hex, 16)
    body = "51310113"
    while len(body) < 17:
        body += alphabet[digest % 31]
        digest //= 31
    return body + alphabet[(31 - sum(alphabet.index(c) * w for c, w in zip(body, weights, strict=True)) % 31) % 31]


def storefront_record(ref: str, code: str, world: World, **changes: Any) -> imports.RawStorefront:
    values: dict[str, Any] = {
        "external_ref": ref,
        "organisation_name": "阳光社工服务社",
        "credit_code": code,
        "district_id": world.district,
        "organisation_description": "",
        "admin_person_ids": [],
        "name": "公益服务店铺",
        "description": "",
        "address": "淞南路1号",
        "neighbourhood_ids": [world.n1, world.n2],
    }
    values.update(changes)
    return imports.RawStorefront(**values)


async def test_storefronts_import_with_approved_organisations_once(service: VolunteersService, world: World) -> None:
    code = credit(uuid.uuid4().hex)
    admin = f"p-{uuid.uuid4().hex[:10]}"
    batch = [
        storefront_record(f"s1-{code}", code, world, admin_person_ids=[admin]),
        storefront_record(f"s2-{code}", code, world, name="第二家店"),
    ]
    mark = await outbox_mark(service)
    outcome, made = await tx(service, lambda s: service.import_storefronts(s, OPERATOR, batch, False))
    assert outcome.applied and (outcome.created, outcome.skipped) == (2, 0), outcome.errors.items
    assert made[0].organisation_id == made[1].organisation_id
    org, admins = await tx(service, lambda s: service.get_organisation(s, OPERATOR, made[0].organisation_id))
    assert org.state == "approved" and admins == [admin]
    listed = await tx(service, lambda s: service.list_storefronts(s, OPERATOR, world.n2, "", "", 50))
    assert {f.id for f in listed} >= {m.id for m in made}
    sent = await subjects_since(service, mark)
    assert sent.count("volunteers.organisation.registered") == 1
    assert sent.count("volunteers.organisation.approved") == 1
    assert sent.count("volunteers.storefront.opened") == 2
    again, _ = await tx(service, lambda s: service.import_storefronts(s, OPERATOR, batch, False))
    assert (again.created, again.skipped) == (0, 2)

    bad = [
        storefront_record(f"b1-{code}", credit(uuid.uuid4().hex), world, neighbourhood_ids=[world.far]),
        storefront_record(f"b2-{code}", "91310000MA1FL0000X", world),
        storefront_record(f"b3-{code}", credit(uuid.uuid4().hex), world, district_id="nowhere"),
    ]
    refused, nothing = await tx(service, lambda s: service.import_storefronts(s, OPERATOR, bad, False))
    assert not refused.applied and nothing == []
    assert [(e.row, e.code) for e in refused.errors.items] == [
        (1, "neighbourhood_outside_district"),
        (2, "credit_code_invalid"),
        (3, "district_not_found"),
    ]


async def test_an_import_of_residents_in_one_packed_event_records_each_person_as_a_verification_would(
    service: VolunteersService, sessions: async_sessionmaker[AsyncSession], clock: ManualClock, world: World
) -> None:
    """Identity sends an import's residents packed (`identity.membership.imported`); in one fetched batch
    with events of their own, the people consumer keeps each name as the events one by one would."""
    runner = next(
        ConsumerRunner(None, sessions, spec, clock)  # type: ignore[arg-type]
        for spec in consumer_specs(service)
        if spec.name == "volunteers-people"
    )
    people = [f"p-{uuid.uuid4().hex[:10]}" for _ in range(4)]

    def resident(person_id: str, name: str) -> identity_ev.ImportedResident:
        ids = {"person_id": person_id, "neighbourhood_id": world.n1, "membership_id": f"m-{person_id}"}
        return identity_ev.ImportedResident(
            joined=identity_ev.MemberJoined(**ids), verified=identity_ev.MemberVerified(**ids, display_name=name)
        )

    pack = identity_ev.ResidentsImported(residents=[resident(p, f"王*{i}") for i, p in enumerate(people[:3])])
    outcomes = await runner.apply_batch(
        [
            received_event("identity.membership.imported", pack),
            received_event(
                "identity.person.updated", identity_ev.PersonProfileUpdated(person_id=people[1], display_name="李*")
            ),
            received_event(
                "identity.membership.verified",
                identity_ev.MemberVerified(person_id=people[3], neighbourhood_id=world.n1, display_name="赵*"),
            ),
        ]
    )
    assert outcomes == [True, True, True]
    names = await tx(service, lambda s: service.names(s, people))
    assert [names.get(p) for p in people] == ["王*0", "李*", "王*2", "赵*"]


def imported_residents(prefix: str, neighbourhood: str, first: int, count: int) -> list[identity_ev.ImportedResident]:
    residents = []
    for i in range(first, first + count):
        ids = {"person_id": f"{prefix}{i}", "neighbourhood_id": neighbourhood, "membership_id": f"m-{prefix}{i}"}
        resident = identity_ev.ImportedResident(
            joined=identity_ev.MemberJoined(**ids),
            verified=identity_ev.MemberVerified(**ids, display_name=f"王*{i}", verified_by="svc:import"),
        )
        if i % 3 == 0:
            resident.party_member.CopyFrom(
                identity_ev.RoleGranted(person_id=ids["person_id"], role="party_member", scope=f"n:{neighbourhood}")
            )
        residents.append(resident)
    return residents


async def people_rows(sessions: async_sessionmaker[AsyncSession], prefix: str) -> list[tuple[object, ...]]:
    async with sessions() as session:
        rows = await session.execute(
            select(Person.person_id, Person.display_name, Person.updated_at)
            .where(Person.person_id.startswith(prefix))
            .order_by(Person.person_id)
        )
        return [(person_id.removeprefix(prefix), *rest) for person_id, *rest in rows]


async def test_an_import_through_the_people_consumer_writes_the_names_its_events_one_by_one_would(
    service: VolunteersService, sessions: async_sessionmaker[AsyncSession], clock: ManualClock, world: World
) -> None:
    """Packs in one batch (the names written together at its commit), a pack alone in its batch (written when its
    handler returns) and the residents' verifications one per transaction: the same people; later events about
    imported residents apply in the batch that made them or after; a redelivery changes nothing."""
    runner = next(
        ConsumerRunner(None, sessions, spec, clock)  # type: ignore[arg-type]
        for spec in consumer_specs(service)
        if spec.name == "volunteers-people"
    )
    singly, together, alone = (f"p-{uuid.uuid4().hex[:8]}-" for _ in range(3))

    def packs(prefix: str) -> list[Any]:
        return [
            received_event(
                "identity.membership.imported",
                identity_ev.ResidentsImported(residents=imported_residents(prefix, world.n1, first, 5)),
            )
            for first in (0, 5, 10)
        ]

    def after_import(prefix: str) -> list[Any]:
        """A resident renamed; another verified again without a name (which names nobody)."""
        return [
            received_event(
                "identity.person.updated", identity_ev.PersonProfileUpdated(person_id=f"{prefix}1", display_name="李*")
            ),
            received_event(
                "identity.membership.verified",
                identity_ev.MemberVerified(person_id=f"{prefix}2", neighbourhood_id=world.n1),
            ),
        ]

    for pack in packs(singly):
        for resident in identity_ev.ResidentsImported.FromString(pack.payload).residents:
            assert await runner.apply_batch([received_event("identity.membership.verified", resident.verified)]) == [
                True
            ]
    for single in after_import(singly):
        assert await runner.apply_batch([single]) == [True]
    [batch] = await deliver_packs(runner, packs(together), after_import(together), together=True)
    await deliver_packs(runner, packs(alone), after_import(alone), together=False)

    expected = await people_rows(sessions, singly)
    assert [(person, name) for person, name, _ in expected][:3] == [("0", "王*0"), ("1", "李*"), ("10", "王*10")]
    assert len(expected) == 15 and {at for *_, at in expected} == {clock.now()}
    assert await people_rows(sessions, together) == expected
    assert await people_rows(sessions, alone) == expected

    clock.advance(minutes=5)
    assert await runner.apply_batch(batch) == [False] * len(batch)  # redelivered: the inbox knows them
    assert await people_rows(sessions, together) == expected


async def test_a_name_longer_than_its_column_is_refused_on_postgresql_not_cut_short(
    service: VolunteersService, sessions: async_sessionmaker[AsyncSession], clock: ManualClock, world: World
) -> None:
    """PostgreSQL refused a display name longer than its column (the event is retried, then dead-lettered; its
    batch's other events commit): it is not stored cut short. SQLite keeps it whole, as it always did."""
    runner = next(
        ConsumerRunner(None, sessions, spec, clock)  # type: ignore[arg-type]
        for spec in consumer_specs(service)
        if spec.name == "volunteers-people"
    )
    prefix = f"p-{uuid.uuid4().hex[:8]}-"
    good = imported_residents(prefix, world.n1, 0, 2)
    bad = imported_residents(prefix, world.n1, 2, 2)
    bad[1].verified.display_name = "王" * 101
    events = [
        received_event("identity.membership.imported", identity_ev.ResidentsImported(residents=residents))
        for residents in (good, bad)
    ]
    for batch in (events, events[1:]):  # in a batch, and alone
        outcomes = await runner.apply_batch(batch)
        if postgres(sessions):
            refused = outcomes[-1]  # an error of its own (nak, retried), never a poison message
            assert isinstance(refused, Exception) and not isinstance(refused, PoisonMessage)
            assert outcomes[:-1] == [True] * (len(batch) - 1)
        else:
            assert outcomes == ([True, True] if len(batch) == 2 else [False])
    names = [name for _, name, _ in await people_rows(sessions, prefix)]
    assert names == (["王*0", "王*1"] if postgres(sessions) else ["王*0", "王*1", "王*2", "王" * 101])


def postgres(sessions: async_sessionmaker[AsyncSession]) -> bool:
    bind = sessions.kw["bind"]
    return bool(bind.dialect.name == "postgresql")
