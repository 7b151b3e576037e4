"""Imports of historic content over real gRPC: validation refuses a whole batch with a stable code and writes
nothing, a re-sent batch creates nothing twice, counters and events follow, only operators and our services
may import."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from shequtong_boards.models import Comment, Post, Topic
from shequtong_boards.repository import PeopleRepository
from sqlalchemy import func, select

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong.events.v1 import boards_events_pb2 as ev
from shequtong_kit.db import outbox

from .conftest import Caller, Place, System


def stamp(system: System, days_ago: float) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(system.clock.now() - timedelta(days=days_ago))
    return t


def posts(
    system: System, place: Place, author: Caller, n: int, run: str, days_ago: float = 30
) -> pb.ImportPostsRequest:
    return pb.ImportPostsRequest(
        posts=[
            pb.ImportPost(
                external_ref=f"{run}-p{i}",
                board_id=place.boards["deliberation_hall"],
                author_id=author.id,
                title=f"旧帖{i}",
                body="历史内容",
                tags=["邻里"],
                created_at=stamp(system, days_ago - i * 0.01),
            )
            for i in range(n)
        ]
    )


async def count(system: System, model: type, **where: object) -> int:
    async with system.sessions() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int((await session.execute(query)).scalar_one())


async def outbox_count(system: System, subject: str) -> int:
    async with system.sessions() as session:
        query = select(func.count()).select_from(outbox).where(outbox.c.subject == subject)
        return int((await session.execute(query)).scalar_one())


async def test_posts_and_comments_import_once_backdated_with_counts_and_events(system: System, place: Place) -> None:
    author = await system.resident(place)
    run = uuid.uuid4().hex[:8]
    ops = system.operator()
    before_events = await outbox_count(system, "boards.post.imported")
    hall = pb.ListBoardFeedRequest(board_id=place.boards["deliberation_hall"])
    assert not (await author.call("ListBoardFeed", hall)).posts  # a first page kept in memory, empty
    first = await ops.call("ImportPosts", posts(system, place, author, 3, run))
    assert (first.result.created, first.result.skipped) == (3, 0)
    again = await ops.call("ImportPosts", posts(system, place, author, 3, run))
    assert (again.result.created, again.result.skipped) == (0, 3)
    assert [r.id for r in again.result.records] == [r.id for r in first.result.records]
    # One event for the batch, carrying each post's created event; nothing for the re-sent batch.
    assert await outbox_count(system, "boards.post.imported") == before_events + 1
    (pack,) = [
        e for e in await system.events("boards.post.imported", ev.PostsImported) if e.posts[0].post_id in ids(first)
    ]
    assert [p.post_id for p in pack.posts] == ids(first)
    assert [p.title for p in pack.posts] == ["旧帖0", "旧帖1", "旧帖2"] and pack.posts[0].author_id == author.id

    feed = await author.call("ListBoardFeed", hall)
    assert [p.title for p in feed.posts][:3] == ["旧帖2", "旧帖1", "旧帖0"]  # newest first, by their own times
    assert feed.posts[0].created_at.ToDatetime() < system.clock.now().replace(tzinfo=None) - timedelta(days=29)

    post_id = first.result.records[0].id
    comments = pb.ImportCommentsRequest(
        comments=[
            pb.ImportComment(
                external_ref=f"{run}-c{i}",
                post_external_ref=f"{run}-p0" if i % 2 else "",
                post_id="" if i % 2 else post_id,
                author_id=author.id,
                body=f"回复{i}",
                created_at=stamp(system, 20),
            )
            for i in range(4)
        ]
        + [
            pb.ImportComment(
                external_ref=f"{run}-c{i}",
                post_external_ref=f"{run}-p{i % 2 + 1}",
                author_id=author.id,
                body=f"回复{i}",
                created_at=stamp(system, 20),
            )
            for i in range(4, 7)
        ]
    )
    made = await ops.call("ImportComments", comments)
    assert made.result.created == 7
    assert (await ops.call("ImportComments", comments)).result.created == 0
    counts = [
        (await author.call("GetPost", pb.GetPostRequest(post_id=record.id))).post.comment_count
        for record in first.result.records
    ]
    assert counts == [4, 2, 1], "each post's count raised by its own comments of the batch, once"
    listed = await author.call("ListComments", pb.ListCommentsRequest(post_id=post_id))
    assert len(listed.comments) == 4
    packs = await system.events("boards.comment.imported", ev.CommentsImported)
    created = [c for pack in packs for c in pack.comments if c.post_id == post_id]
    assert [c.comment_id for c in created] == ids(made)[:4]
    assert {(c.author_id, c.kind, c.board_kind) for c in created} == {(author.id, "member", "deliberation_hall")}


def ids(reply: Any) -> list[str]:
    return [r.id for r in reply.result.records]


async def test_a_bad_record_refuses_the_whole_batch_and_writes_nothing(system: System, place: Place) -> None:
    author = await system.resident(place)
    stranger = system.person()  # not a member anywhere
    run = uuid.uuid4().hex[:8]
    ops = system.operator()
    cases = []
    bad_title = posts(system, place, author, 3, run)
    bad_title.posts[1].title = ""
    cases.append((bad_title, grpc.StatusCode.INVALID_ARGUMENT, "title_required"))
    future = posts(system, place, author, 2, run)
    future.posts[1].created_at.CopyFrom(stamp(system, -1))
    cases.append((future, grpc.StatusCode.INVALID_ARGUMENT, "created_at_in_future"))
    twice = posts(system, place, author, 2, run)
    twice.posts[1].external_ref = twice.posts[0].external_ref
    cases.append((twice, grpc.StatusCode.INVALID_ARGUMENT, "external_ref_repeated"))
    foreign = posts(system, place, author, 2, run)
    foreign.posts[1].author_id = stranger.id
    cases.append((foreign, grpc.StatusCode.FAILED_PRECONDITION, "author_may_not_post"))
    matters = posts(system, place, author, 1, run)
    matters.posts[0].board_id = place.boards["neighbourhood_matters"]
    cases.append((matters, grpc.StatusCode.INVALID_ARGUMENT, "import_board_collects_issues"))
    cases.append((pb.ImportPostsRequest(), grpc.StatusCode.INVALID_ARGUMENT, "import_batch_empty"))
    for request, status, code in cases:
        assert await ops.fails("ImportPosts", request) == (status, code)
    assert await count(system, Post, board_id=place.boards["deliberation_hall"]) == 0

    made = await ops.call("ImportPosts", posts(system, place, author, 1, run, days_ago=5))
    early = pb.ImportCommentsRequest(
        comments=[
            pb.ImportComment(
                external_ref=f"{run}-early",
                post_id=made.result.records[0].id,
                author_id=author.id,
                body="比帖子还早",
                created_at=stamp(system, 6),
            )
        ]
    )
    assert await ops.fails("ImportComments", early) == (grpc.StatusCode.INVALID_ARGUMENT, "created_before_post")
    assert await count(system, Comment, post_id=made.result.records[0].id) == 0


async def test_only_operators_and_services_import(system: System, place: Place) -> None:
    cadre = await system.resident(place, "cadre")
    run = uuid.uuid4().hex[:8]
    request = posts(system, place, cadre, 1, run)
    assert await cadre.fails("ImportPosts", request) == (grpc.StatusCode.PERMISSION_DENIED, "import_forbidden")
    topics = pb.ImportTopicsRequest(topics=[pb.ImportTopic(external_ref=f"{run}-t")])
    assert await cadre.fails("ImportTopics", topics) == (grpc.StatusCode.PERMISSION_DENIED, "import_forbidden")
    service = system.person("service@*", subject="svc:bench")
    assert (await service.call("ImportPosts", request)).result.created == 1


def topic(system: System, place: Place, proposer: Caller, cadre: Caller, ref: str, stages: list[int]) -> pb.ImportTopic:
    steps = [
        pb.ImportTopicStep(to_stage=stage, actor_id=cadre.id, reason=f"第{i}步", at=stamp(system, 50 - i * 5))
        for i, stage in enumerate(stages)
    ]
    reached = set(stages)
    out = pb.ImportTopic(
        external_ref=ref,
        neighbourhood_id=place.neighbourhood,
        proposer_id=proposer.id,
        title="规范夜间停车",
        description="夜间车辆占用消防通道，建议划定临停区",
        created_at=stamp(system, 60),
        steps=steps,
    )
    if pb.TOPIC_STAGE_PROJECT in reached:
        out.owner_id = cadre.id
        done = 100 if pb.TOPIC_STAGE_EVALUATION in reached else 40
        out.milestones.append(pb.ImportMilestone(title="划线", due_at=stamp(system, 30), progress=done))
    if pb.TOPIC_STAGE_EVALUATION in reached:
        out.evaluation_summary = "效果良好"
    if pb.TOPIC_STAGE_CONVENTION in reached:
        out.convention.CopyFrom(
            pb.ImportConvention(
                title="停车公约",
                text="一、夜间不占用消防通道。",
                tally=[pb.VoteTally(option_label="同意", votes=80), pb.VoteTally(option_label="反对", votes=5)],
                ballot_count=85,
            )
        )
    return out


FULL_CHAIN = [
    pb.TOPIC_STAGE_REVIEW,
    pb.TOPIC_STAGE_CONSULTATION,
    pb.TOPIC_STAGE_PROJECT,
    pb.TOPIC_STAGE_IMPLEMENTATION,
    pb.TOPIC_STAGE_EVALUATION,
    pb.TOPIC_STAGE_CONVENTION,
]


async def test_topics_import_through_the_chain_with_conventions(system: System, place: Place) -> None:
    proposer = await system.resident(place)
    cadre = await system.resident(place, "cadre")
    run = uuid.uuid4().hex[:8]
    ops = system.operator()
    request = pb.ImportTopicsRequest(
        topics=[
            topic(system, place, proposer, cadre, f"{run}-a", FULL_CHAIN),
            topic(system, place, proposer, cadre, f"{run}-b", FULL_CHAIN[:4]),
            topic(system, place, proposer, cadre, f"{run}-c", []),
        ]
    )
    home = pb.ListHomeFeedRequest(neighbourhood_id=place.neighbourhood)
    assert not (await proposer.call("ListHomeFeed", home)).posts  # a first page kept in memory, empty
    made = await ops.call("ImportTopics", request)
    assert made.result.created == 3
    assert len((await proposer.call("ListHomeFeed", home)).posts) == 3  # each topic's thread
    assert (await ops.call("ImportTopics", request)).result.created == 0
    full = await proposer.call("GetTopic", pb.GetTopicRequest(topic_id=made.result.records[0].id))
    assert full.topic.stage == pb.TOPIC_STAGE_CONVENTION
    assert [s.to_stage for s in full.topic.steps] == [pb.TOPIC_STAGE_PROPOSED, *FULL_CHAIN]
    convention = await proposer.call("GetConvention", pb.GetConventionRequest(convention_id=full.topic.convention_id))
    assert convention.convention.versions[0].ballot_count == 85
    thread = await proposer.call("GetPost", pb.GetPostRequest(post_id=full.topic.post_id))
    assert thread.post.comment_count == len(FULL_CHAIN)
    listed = await proposer.call("ListConventions", pb.ListConventionsRequest(neighbourhood_id=place.neighbourhood))
    assert [c.title for c in listed.conventions] == ["停车公约"]
    adopted = await system.events("boards.convention.adopted", ev.ConventionAdopted)
    assert sum(1 for e in adopted if e.topic_id == made.result.records[0].id) == 1

    jump = pb.ImportTopicsRequest(
        topics=[
            topic(system, place, proposer, cadre, f"{run}-jump", [pb.TOPIC_STAGE_REVIEW, pb.TOPIC_STAGE_EVALUATION])
        ]
    )
    assert await ops.fails("ImportTopics", jump) == (grpc.StatusCode.FAILED_PRECONDITION, "topic_transition_illegal")
    by_resident = pb.ImportTopicsRequest(topics=[topic(system, place, proposer, proposer, f"{run}-r", FULL_CHAIN[:1])])
    assert await ops.fails("ImportTopics", by_resident) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "step_actor_not_committee",
    )
    async with system.sessions() as session:
        refs = (await session.execute(select(Topic.external_ref).where(Topic.external_ref.like(f"{run}-%")))).scalars()
        assert sorted(refs) == [f"{run}-a", f"{run}-b", f"{run}-c"]


async def test_which_people_a_feed_shows_is_asked_by_index_when_a_few_authors_wrote_everything(
    system: System, place: Place
) -> None:
    """A district's imported history has a few authors with thousands of posts each. Asking which of a batch
    of people any post shows (the people consumer, for every batch of role grants) must probe the authors'
    index per person: as `EXISTS`, the planner expected a match early in a sequential scan and read every
    post for each person who never posted (seconds a batch)."""
    if system.sessions.kw["bind"].dialect.name != "postgresql":
        pytest.skip("the plan is PostgreSQL's; SQLite runs the other form of the statement (no arrays)")
    from shequtong_boards.repository import _ON_FEEDS_AMONG
    from sqlalchemy import text

    authors = [await system.resident(place) for _ in range(2)]
    ops, run = system.operator(), uuid.uuid4().hex[:8]
    for author in authors:
        for batch in range(3):
            made = await ops.call("ImportPosts", posts(system, place, author, 1000, f"{run}-{author.id}-{batch}"))
            assert made.result.created == 1000
    never_posted = [str(uuid.uuid4()) for _ in range(200)]
    wanted = [*never_posted[:100], authors[0].id, *never_posted[100:], authors[1].id]
    async with system.sessions() as session:
        await session.execute(text("ANALYZE posts"))
        shown = await PeopleRepository(session).on_feeds_among(wanted)
        assert shown == {authors[0].id, authors[1].id}
        connection = await session.connection()
        statement = str(_ON_FEEDS_AMONG["postgresql"].compile(dialect=connection.dialect))
        plan = await connection.exec_driver_sql("EXPLAIN " + statement, (wanted, "post"))
        lines = [row[0] for row in plan]
    assert not any("Seq Scan on posts" in line for line in lines), lines
    assert any("ix_posts_author" in line for line in lines), lines
