"""The projector and the use cases over a real database (PostgreSQL when reachable, else SQLite),
migrated by the service's own `migrate` command. Events are fed as the kit's consumer would."""

from __future__ import annotations

import csv
import io
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message
from shequtong_insights.consumers import CONSUMER_NAMES, Projector, consumer_specs
from shequtong_insights.models import Activity, DailyCounter, Member
from shequtong_insights.repository import drop_projections
from shequtong_insights.service import InsightsService
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong.events.v1 import volunteers_events_pb2 as volunteers_ev
from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.clock import ManualClock
from shequtong_kit.consumer import ConsumerRunner, PoisonMessage, ReceivedEvent
from shequtong_kit.db import create_engine, session_factory
from shequtong_kit.errors import PermissionDenied
from shequtong_kit.proto import ts
from shequtong_kit.testing import Databases, deliver_packs, postgres_available, received_event, temp_workdir

NOW = datetime(2026, 3, 20, 4, 30, tzinfo=UTC)  # 12:30 in Shanghai
H = timedelta(hours=1)
OPERATOR = Principal("svc:ops", parse_roles(["operator@*"]))


class NoJetStream:
    """Rebuilds are not exercised here (see the integration tests); only the consumers' names."""

    specs = ()


# The projection writes take a path of their own on PostgreSQL (arrays unnested into rows): both are run.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not postgres_available(), reason="no PG"))]


@pytest.fixture(scope="module", params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with temp_workdir("insights-component-") as workdir:
        dbs = Databases(Path(workdir))
        dbs.use_postgres = request.param == "postgresql"
        url = dbs.create(f"insights_component_{uuid.uuid4().hex[:6]}")
        env = {**os.environ, "DATABASE_URL": url}
        subprocess.run([sys.executable, "-m", "shequtong_insights", "migrate"], env=env, check=True, timeout=120)
        yield url
        dbs.drop_all()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(database_url)
    yield eng
    await eng.dispose()


def event(subject: str, message: Message, at: datetime) -> ReceivedEvent:
    return received_event(subject, message, at)


async def project(service: InsightsService, projector: Projector, batch: Sequence[ReceivedEvent]) -> None:
    """A batch of events through the projector in one transaction, as its consumer runs it."""
    async with service.sessions() as session, session.begin():
        await projector.prefetch(session, batch)
        for received in batch:
            await projector.handle(session, received)
        await projector.before_commit(session)


def scripted_week(n1: str, n2: str, sub: str, district: str) -> list[ReceivedEvent]:
    events = []
    for nid, code in ((n1, "A"), (n2, "B")):
        events.append(
            event(
                "identity.neighbourhood.created",
                identity_ev.NeighbourhoodCreated(
                    neighbourhood_id=nid, code=code, name=f"村{code}", kind=1, subdistrict_id=sub, district_id=district
                ),
                NOW - timedelta(days=100),
            )
        )
    for index in range(4):  # four residents in n1 (one household shared), one leaves
        membership = f"m{index}-{n1}"
        person = f"p{index}-{n1}"
        msg = identity_ev.MemberVerified(
            person_id=person, neighbourhood_id=n1, membership_id=membership, household_id=f"h{index // 2}"
        )
        events.append(event("identity.membership.verified", msg, NOW - timedelta(days=40)))
    events.append(
        event(
            "identity.membership.left",
            identity_ev.MemberLeft(person_id=f"p3-{n1}", neighbourhood_id=n1, membership_id=f"m3-{n1}"),
            NOW - timedelta(days=2),
        )
    )
    for index, author in enumerate(("p0", "p1", "p0")):
        post = boards_ev.PostCreated(
            post_id=f"post{index}-{n1}", neighbourhood_id=n1, author_id=f"{author}-{n1}", created_at=ts(NOW - 2 * H)
        )
        events.append(event("boards.post.created", post, NOW - 2 * H))
    # Issues in n1: response after 1, 2 and 6 hours; two resolved inside, one at the sub-district.
    plan = [
        ("sanitation", 1, 5, "neighbourhood"),
        ("sanitation", 2, 9, "neighbourhood"),
        ("parking", 6, 30, "subdistrict"),
    ]
    for index, (category, respond_h, resolve_h, level) in enumerate(plan):
        issue = f"i{index}-{n1}"
        reported_at = NOW - timedelta(days=3, hours=index)
        events.append(
            event(
                "issues.issue.reported",
                issues_ev.IssueReported(
                    issue_id=issue,
                    neighbourhood_id=n1,
                    category_code=category,
                    reporter_id=f"p2-{n1}",
                    source="resident",
                    reported_at=ts(reported_at),
                    building="3号楼",
                ),
                reported_at,
            )
        )
        steps = (("acknowledged", respond_h, "neighbourhood"), ("resolved", resolve_h, level))
        for transition, hours, at_level in steps:
            at = reported_at + timedelta(hours=hours)
            events.append(
                event(
                    f"issues.issue.{transition}",
                    issues_ev.IssueStateChanged(
                        issue_id=issue,
                        neighbourhood_id=n1,
                        to_state=transition,
                        level=at_level,
                        occurred_at=ts(at),
                        category_code=category,
                        reported_at=ts(reported_at),
                    ),
                    at,
                )
            )
    events.append(
        event(
            "issues.issue.rated",
            issues_ev.IssueRated(issue_id=f"i0-{n1}", neighbourhood_id=n1, rating=5, fixed=True, rated_at=ts(NOW - H)),
            NOW - H,
        )
    )
    # The peer n2: one issue answered after 4 hours.
    reported_at = NOW - timedelta(days=1)
    events.append(
        event(
            "issues.issue.reported",
            issues_ev.IssueReported(
                issue_id=f"j0-{n2}", neighbourhood_id=n2, category_code="noise", reported_at=ts(reported_at)
            ),
            reported_at,
        )
    )
    events.append(
        event(
            "issues.issue.acknowledged",
            issues_ev.IssueStateChanged(
                issue_id=f"j0-{n2}", neighbourhood_id=n2, to_state="acknowledged", occurred_at=ts(reported_at + 4 * H)
            ),
            reported_at + 4 * H,
        )
    )
    events.append(event("issues.issue.unheard_of", issues_ev.IssueReported(issue_id="x"), NOW))
    return events


async def feed(service: InsightsService, projector: Projector, events: list[ReceivedEvent]) -> None:
    for received in events:
        async with service.sessions() as session, session.begin():
            await projector.handle(session, received)
            await projector.before_commit(session)


def comparable(view: object) -> dict[str, object]:
    data = dict(vars(view))
    data.pop("generated_at")
    data["neighbourhood"] = data["neighbourhood"].neighbourhood_id  # type: ignore[attr-defined]
    return data


async def test_portrait_from_a_scripted_week_and_the_same_after_a_shuffled_replay(engine: AsyncEngine) -> None:
    n1, n2, sub, district = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("n", "n", "s", "d"))
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    projector = Projector(480)
    events = scripted_week(n1, n2, sub, district)
    await feed(service, projector, events)

    view = await service.portrait(OPERATOR, n1, 7)
    f = view.figures
    assert (f.residents, f.households, f.residents_left) == (3, 2, 1)
    assert (f.posts, f.active_residents) == (3, 3)  # p0, p1 posted; p2 reported
    assert f.participation_rate == 1.0
    assert (f.issues_reported, f.issues_acknowledged, f.issues_resolved) == (3, 3, 3)
    assert (f.response_time.count, f.response_time.median_hours) == (3, 2.0)
    assert f.resolution_time.median_hours == 9.0
    assert (f.resolved_inside, f.share_resolved_inside) == (2, 0.6667)
    assert (f.ratings, f.mean_rating) == (1, 5.0)
    assert view.top_categories[0] == ("sanitation", 2, 0.6667)
    assert view.peer_ids == [n2]
    assert view.peer_figures is not None and view.peer_figures.response_time.median_hours == 4.0
    assert view.days_on_platform == 100
    response = next(t for t in view.trends if t.measure == "response_median_hours")
    assert (response.current, response.peer_median, response.versus_peers) == (2.0, 4.0, "below")

    resident = Principal(f"p0-{n1}", parse_roles([f"resident@n:{n1}"]))
    public = await service.portrait(resident, n1, 7)
    assert public.visibility == "public" and public.figures.issues_resolved == 3 and public.figures.posts == 0
    with pytest.raises(PermissionDenied):
        await service.portrait(Principal("c", parse_roles([f"cadre@n:{n2}"])), n1, 7)

    # Drop everything and replay in another order (as after a rebuild): the same portrait.
    async with service.sessions() as session, session.begin():
        assert await drop_projections(session, CONSUMER_NAMES) > 0
    shuffled = list(events)
    random.Random(7).shuffle(shuffled)
    await feed(service, projector, shuffled)
    again = await service.portrait(OPERATOR, n1, 7)
    assert comparable(again) == comparable(view)

    # And in fetched batches, as the consumers take them: the rows a batch is about (an issue's many
    # events among them) read in one statement per table and written once, at the commit.
    async with service.sessions() as session, session.begin():
        assert await drop_projections(session, CONSUMER_NAMES) > 0
    runner = ConsumerRunner(None, service.sessions, consumer_specs(projector)[0])  # type: ignore[arg-type]
    for start in range(0, len(shuffled), 12):
        batch = shuffled[start : start + 12]
        assert await runner.apply_batch(batch) == [True] * len(batch)
    assert comparable(await service.portrait(OPERATOR, n1, 7)) == comparable(view)

    # The daily export carries the same numbers.
    _, content, rows = await service.export(
        OPERATOR, kind="daily", neighbourhood_id=n1, subdistrict_id="", district_id="", grouping="", requested_days=7
    )
    table = list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows == 7 and len(table) == 7
    assert sum(int(r["issues_reported"]) for r in table) == 3
    assert sum(int(r["posts"]) for r in table) == 3

    _, compared, more = await service.compare(
        OPERATOR, district_id=district, subdistrict_id="", grouping="kind", requested_days=7, limit=10
    )
    assert not more and [(r.key, r.neighbourhoods) for r in compared] == [("residential", 2)]
    assert compared[0].figures.issues_reported == 4
    assert compared[0].figures.response_time.median_hours == 3.0  # over 1, 2, 4, 6 hours


async def test_detection_raises_one_prompt_per_finding_and_never_twice(engine: AsyncEngine) -> None:
    n1, n2, sub, district = (f"{p}-{uuid.uuid4().hex[:8]}" for p in ("n", "n", "s", "d"))
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    projector = Projector(480)
    events = scripted_week(n1, n2, sub, district)[:2]
    for index in range(6):
        at = NOW - timedelta(days=1, hours=index)
        msg = issues_ev.IssueReported(
            issue_id=f"s{index}-{n1}", neighbourhood_id=n1, category_code="leaking_pipe", reported_at=ts(at)
        )
        events.append(event("issues.issue.reported", msg, at))
    await feed(service, projector, events)

    async with service.sessions() as session, session.begin():
        first = await service.detect_now(session, OPERATOR)
    mine = [p for p in first.created if p.district_id == district]
    assert [(p.rule, p.place_id, p.subject) for p in mine] == [("category_spike", n1, "leaking_pipe")]
    async with service.sessions() as session, session.begin():
        second = await service.detect_now(session, OPERATOR)
    assert [p for p in second.created if p.district_id == district] == []

    cadre = Principal("cadre-1", parse_roles([f"cadre@n:{n1}"]))
    listed = await service.list_prompts(
        cadre, neighbourhood_id="", subdistrict_id="", district_id="", status="", rule="", before="", limit=10
    )
    assert [p.id for p in listed] == [mine[0].id]
    other = Principal("cadre-2", parse_roles([f"cadre@n:{n2}"]))
    assert (
        await service.list_prompts(
            other, neighbourhood_id="", subdistrict_id="", district_id="", status="", rule="", before="", limit=10
        )
        == []
    )
    async with service.sessions() as session, session.begin():
        decided = await service.decide_prompt(session, cadre, mine[0].id, "acknowledged", "will inspect")
    assert (decided.status, decided.decided_by, decided.decision_note) == ("acknowledged", "cadre-1", "will inspect")


async def test_a_value_wider_than_its_column_poisons_its_own_event_before_anything_is_written(
    engine: AsyncEngine,
) -> None:
    """Counters are written once per transaction (`before_commit`), so a value that can never fit must be
    caught while its own event is handled: that event is dead-lettered, its neighbours are not."""
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    projector = Projector(480)
    neighbourhood = f"n-{uuid.uuid4().hex[:8]}"
    fits = event("boards.post.created", boards_ev.PostCreated(neighbourhood_id=neighbourhood, author_id="p-1"), NOW)
    too_wide = event("boards.post.created", boards_ev.PostCreated(neighbourhood_id="n" * 37, author_id="p-2"), NOW)
    async with service.sessions() as session, session.begin():
        await projector.handle(session, fits)
        with pytest.raises(PoisonMessage, match="at most 36"):
            await projector.handle(session, too_wide)
        await projector.before_commit(session)
    async with service.sessions() as session:
        counters = (
            await session.execute(
                select(DailyCounter.neighbourhood_id, DailyCounter.metric, DailyCounter.value).where(
                    DailyCounter.neighbourhood_id.in_([neighbourhood, "n" * 37])
                )
            )
        ).all()
    assert counters == [(neighbourhood, "posts", 1)]


async def test_imported_residents_content_and_volunteers_count_as_if_each_had_its_own_event(
    engine: AsyncEngine,
) -> None:
    """Identity, boards and volunteers pack an import's created events together (`identity.membership.imported`,
    `boards.post.imported`, `…comment.imported`, `volunteers.volunteer.imported`): the figures and the members
    are those of the same items sent one event each."""
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    projector = Projector(480)
    one_by_one, packed = f"n-{uuid.uuid4().hex[:8]}", f"n-{uuid.uuid4().hex[:8]}"

    def items(
        neighbourhood: str,
    ) -> tuple[list[identity_ev.ImportedResident], list[boards_ev.PostCreated], list[boards_ev.CommentCreated]]:
        residents = []
        for i in range(3):
            ids = {
                "person_id": f"a{i}-{neighbourhood}",
                "neighbourhood_id": neighbourhood,
                "household_id": f"h{i // 2}-{neighbourhood}",
                "membership_id": f"m{i}-{neighbourhood}",
            }
            residents.append(
                identity_ev.ImportedResident(
                    joined=identity_ev.MemberJoined(**ids), verified=identity_ev.MemberVerified(**ids)
                )
            )
        posts = [
            boards_ev.PostCreated(post_id=f"p{i}", neighbourhood_id=neighbourhood, author_id=f"a{i}", created_at=ts(at))
            for i, at in enumerate((NOW - 30 * 24 * H, NOW - 2 * H))
        ]
        comments = [
            boards_ev.CommentCreated(
                comment_id=f"c{i}", neighbourhood_id=neighbourhood, author_id=author, kind=kind, created_at=ts(at)
            )
            for i, (author, kind, at) in enumerate(
                (("a1", "member", NOW - 29 * 24 * H), ("a2", "member", NOW - H), ("system", "system", NOW - H))
            )
        ]
        return residents, posts, comments

    def volunteers(neighbourhood: str) -> list[volunteers_ev.ImportedVolunteer]:
        made = []
        for i, at in enumerate((NOW - 3 * 24 * H, NOW - H)):
            ids = {"volunteer_id": f"v{i}", "person_id": f"a{i}-{neighbourhood}", "neighbourhood_id": neighbourhood}
            made.append(
                volunteers_ev.ImportedVolunteer(
                    applied=volunteers_ev.VolunteerApplied(**ids, applied_at=ts(at)),
                    approved=volunteers_ev.VolunteerApproved(**ids, approved_at=ts(at)),
                )
            )
        return made

    residents, posts, comments = items(one_by_one)
    singles = [event("identity.membership.joined", r.joined, NOW - 48 * H) for r in residents]
    singles += [event("identity.membership.verified", r.verified, NOW - 48 * H) for r in residents]
    singles += [event("boards.post.created", p, NOW) for p in posts]
    singles += [event("boards.comment.created", c, NOW) for c in comments]
    for v in volunteers(one_by_one):
        singles += [
            event("volunteers.volunteer.applied", v.applied, NOW),
            event("volunteers.volunteer.approved", v.approved, NOW),
        ]
    residents, posts, comments = items(packed)
    packs = [
        event("identity.membership.imported", identity_ev.ResidentsImported(residents=residents), NOW - 48 * H),
        event("boards.post.imported", boards_ev.PostsImported(posts=posts), NOW),
        event("boards.comment.imported", boards_ev.CommentsImported(comments=comments), NOW),
        event("volunteers.volunteer.imported", volunteers_ev.VolunteersImported(volunteers=volunteers(packed)), NOW),
    ]
    for batch in (singles, packs):
        await project(service, projector, batch)

    async def figures(neighbourhood: str) -> tuple[list[tuple[object, ...]], ...]:
        async with service.sessions() as session:
            counters = await daily_counters(session, neighbourhood)
            activity = await session.execute(
                select(Activity.day, Activity.person_id)
                .where(Activity.neighbourhood_id == neighbourhood)
                .order_by(Activity.day, Activity.person_id)
            )
            members = await session.execute(
                select(Member.person_id, Member.household_id, Member.joined_at, Member.verified_at)
                .where(Member.neighbourhood_id == neighbourhood)
                .order_by(Member.person_id)
            )
            return (
                counters,
                [(day, person.split("-")[0]) for day, person in activity],  # the person, without the place
                [(person.split("-")[0], household.split("-")[0], *rest) for person, household, *rest in members],
            )

    expected = await figures(one_by_one)
    assert sum(value for _, metric, value in expected[0] if metric in ("posts", "comments")) == 4
    assert sum(value for _, metric, value in expected[0] if metric == "residents_verified") == 3
    assert sum(value for _, metric, value in expected[0] if metric == "volunteers_approved") == 2
    assert len(expected[1]) == 6  # a0; a1 on two days; a2; never the system author; two volunteers
    assert [(p, h) for p, h, *_ in expected[2]] == [("a0", "h0"), ("a1", "h0"), ("a2", "h1")]
    assert all(joined is not None and verified is not None for *_, joined, verified in expected[2])
    assert await figures(packed) == expected


def imported_residents(neighbourhood: str, first: int, count: int) -> list[identity_ev.ImportedResident]:
    """An import's residents of one neighbourhood (ids end with its id), three to a household."""
    residents = []
    for i in range(first, first + count):
        household = f"h{i // 3}-{neighbourhood}"
        ids = {
            "person_id": f"p{i}-{neighbourhood}",
            "neighbourhood_id": neighbourhood,
            "household_id": household,
            "membership_id": f"m{i}-{neighbourhood}",
        }
        resident = identity_ev.ImportedResident(
            joined=identity_ev.MemberJoined(**ids),
            verified=identity_ev.MemberVerified(**ids, display_name=f"王*{i}", verified_by="svc:import"),
        )
        if i % 3 == 0:
            resident.household.CopyFrom(
                identity_ev.HouseholdCreated(household_id=household, neighbourhood_id=neighbourhood)
            )
        if i % 4 == 0:
            resident.party_member.CopyFrom(
                identity_ev.RoleGranted(person_id=ids["person_id"], role="party_member", scope=f"n:{neighbourhood}")
            )
        residents.append(resident)
    return residents


async def daily_counters(session: AsyncSession, neighbourhood: str) -> list[tuple[object, ...]]:
    """A neighbourhood's counters as (day, metric, value), in day and metric order."""
    rows = await session.execute(
        select(DailyCounter.day, DailyCounter.metric, DailyCounter.value)
        .where(DailyCounter.neighbourhood_id == neighbourhood)
        .order_by(DailyCounter.day, DailyCounter.metric)
    )
    return [tuple(row) for row in rows]


async def membership_figures(service: InsightsService, neighbourhood: str) -> tuple[list[tuple[object, ...]], ...]:
    """A neighbourhood's counters and members, its own id cut from the ids (to compare two neighbourhoods)."""

    def bare(value: object) -> object:
        return value.removesuffix(f"-{neighbourhood}") if isinstance(value, str) else value

    async with service.sessions() as session:
        counters = await daily_counters(session, neighbourhood)
        members = await session.execute(
            select(
                Member.membership_id,
                Member.person_id,
                Member.household_id,
                Member.joined_at,
                Member.verified_at,
                Member.left_at,
                Member.rejected_at,
            )
            .where(Member.neighbourhood_id == neighbourhood)
            .order_by(Member.membership_id)
        )
        return counters, [tuple(map(bare, row)) for row in members]


def identity_runner(service: InsightsService) -> ConsumerRunner:
    spec = next(spec for spec in consumer_specs(Projector(480)) if spec.name == "insights-identity")
    return ConsumerRunner(None, service.sessions, spec)  # type: ignore[arg-type]


async def test_an_import_through_the_consumer_gives_the_rows_and_counters_of_its_events_one_by_one(
    engine: AsyncEngine,
) -> None:
    """Packs handled together (one transaction, new members inserted together at its commit), a pack alone in
    its batch (written at the end of its handler) and the same residents' events one per transaction: the same
    members and counters; a redelivery changes nothing; later events about imported residents apply to their
    rows, in the batch that made them or after."""
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    runner = identity_runner(service)
    singly, together, alone = (f"n-{uuid.uuid4().hex[:8]}" for _ in range(3))
    imported_at, later = NOW - 48 * H, NOW - 2 * H

    def packs(neighbourhood: str) -> list[ReceivedEvent]:
        return [
            event(
                "identity.membership.imported",
                identity_ev.ResidentsImported(residents=imported_residents(neighbourhood, first, 7)),
                imported_at + first * timedelta(minutes=1),
            )
            for first in (0, 7, 14)
        ]

    def after_import(neighbourhood: str) -> list[ReceivedEvent]:
        """A resident of the first pack leaves; another's verification is sent again, earlier, with another
        household (its earliest time and, processed after the pack's, that household win)."""
        ids = {
            "person_id": f"p1-{neighbourhood}",
            "neighbourhood_id": neighbourhood,
            "membership_id": f"m1-{neighbourhood}",
        }
        again = {**ids, "person_id": f"p5-{neighbourhood}", "membership_id": f"m5-{neighbourhood}"}
        return [
            event("identity.membership.left", identity_ev.MemberLeft(**ids), later),
            event(
                "identity.membership.verified",
                identity_ev.MemberVerified(**again, household_id=f"h-moved-{neighbourhood}"),
                imported_at - H,
            ),
        ]

    # One event per resident's join and verification, each in its own transaction.
    for pack in packs(singly):
        message = identity_ev.ResidentsImported.FromString(pack.payload)
        for resident in message.residents:
            for subject, item in (
                ("identity.membership.joined", resident.joined),
                ("identity.membership.verified", resident.verified),
            ):
                assert await runner.apply_batch([event(subject, item, datetime.fromisoformat(pack.time))]) == [True]
    for single in after_import(singly):
        assert await runner.apply_batch([single]) == [True]
    [batch] = await deliver_packs(runner, packs(together), after_import(together), together=True)
    await deliver_packs(runner, packs(alone), after_import(alone), together=False)

    expected = await membership_figures(service, singly)
    counters, members = expected
    assert {metric: sum(v for _, m, v in counters if m == metric) for _, metric, _ in counters} == {
        "residents_joined": 21,
        "residents_verified": 22,
        "residents_left": 1,
    }
    assert len(members) == 21
    by_id = {row[0]: row for row in members}
    assert by_id["m1"][5] == later and by_id["m2"][5] is None
    assert (by_id["m5"][2], by_id["m5"][4]) == ("h-moved", imported_at - H)
    assert by_id["m2"][2] == "h0" and all(row[3] is not None and row[4] is not None for row in members)
    assert await membership_figures(service, together) == expected
    assert await membership_figures(service, alone) == expected

    # Redelivered (the inbox knows them): nothing changes.
    assert await runner.apply_batch(batch) == [False] * len(batch)
    assert await membership_figures(service, together) == expected


@pytest.mark.skipif(not postgres_available(), reason="concurrent writers need PostgreSQL")
async def test_a_membership_another_transaction_makes_meanwhile_is_merged_not_overwritten(
    engine: AsyncEngine,
) -> None:
    """New members are inserted with a plain INSERT at the batch's commit: when another replica's batch made
    one of the rows after this batch found none, the batch fails and its events are applied one by one, each
    to the row it finds (an upsert would have overwritten that replica's values)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    projector = Projector(480)
    neighbourhood = f"n-{uuid.uuid4().hex[:8]}"
    residents = imported_residents(neighbourhood, 0, 3)
    pack = event("identity.membership.imported", identity_ev.ResidentsImported(residents=residents), NOW - 48 * H)
    rejected = event(
        "identity.membership.rejected",
        identity_ev.MemberRejected(
            person_id=f"p0-{neighbourhood}", neighbourhood_id=neighbourhood, membership_id=f"m0-{neighbourhood}"
        ),
        NOW - H,
    )
    spec = next(spec for spec in consumer_specs(projector) if spec.name == "insights-identity")
    prefetch = spec.prefetch
    assert prefetch is not None
    raced = []

    async def prefetch_then_another_replica(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        await prefetch(session, events)
        if not raced:  # the first attempt only: its retries find the row
            raced.append(True)
            async with service.sessions() as other, other.begin():
                await projector.handle(other, rejected)
                await projector.before_commit(other)

    runner = ConsumerRunner(None, service.sessions, replace(spec, prefetch=prefetch_then_another_replica))  # type: ignore[arg-type]
    other_pack = event(
        "identity.membership.imported",
        identity_ev.ResidentsImported(residents=imported_residents(neighbourhood, 3, 2)),
        NOW - 48 * H,
    )
    assert await runner.apply_batch([pack, other_pack]) == [True, True]
    _, members = await membership_figures(service, neighbourhood)
    assert [row[0] for row in members] == ["m0", "m1", "m2", "m3", "m4"]
    assert members[0][3:] == (NOW - 48 * H, NOW - 48 * H, None, NOW - H)  # joined, verified, left, rejected
    assert members[0][2] == "h0"


async def test_an_over_long_id_in_an_import_is_dead_lettered_on_postgresql_as_it_was(engine: AsyncEngine) -> None:
    """PostgreSQL refuses a membership id longer than its column (the pack can never be applied: dead-lettered;
    the batch's other packs commit). SQLite keeps it, as it always did."""
    service = InsightsService(session_factory(engine), ManualClock(NOW), NoJetStream(), 480)  # type: ignore[arg-type]
    runner = identity_runner(service)
    neighbourhood = f"n-{uuid.uuid4().hex[:8]}"
    good = imported_residents(neighbourhood, 0, 2)
    bad = imported_residents(neighbourhood, 2, 2)
    bad[1].joined.membership_id = bad[1].verified.membership_id = "m" * 37
    packs = [
        event("identity.membership.imported", identity_ev.ResidentsImported(residents=residents), NOW - H)
        for residents in (good, bad)
    ]
    for batch in ([packs[0], packs[1]], [packs[1]]):  # in a batch, and alone (each written by its handler)
        outcomes = await runner.apply_batch(batch)
        if engine.dialect.name == "postgresql":
            assert isinstance(outcomes[-1], PoisonMessage) and outcomes[:-1] == [True] * (len(batch) - 1)
        elif len(batch) == 2:
            assert outcomes == [True, True]
        else:
            assert outcomes == [False]  # handled before
    _, members = await membership_figures(service, neighbourhood)
    ids = [row[0] for row in members]
    assert ids == (["m0", "m1"] if engine.dialect.name == "postgresql" else ["m0", "m1", "m2", "m" * 37])
