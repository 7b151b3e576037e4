"""First feed pages are kept in each process's memory (`cache.FeedPageCache`) and checked against feed
versions. A page must come from memory while nothing it shows has changed, show live counters and the
caller's own likes all the same, and be built again — in this replica and in any other on the same
database — after every change a first page shows."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from shequtong_boards.repository import PeopleRepository
from shequtong_boards.service import BoardsService
from shequtong_boards.servicer import post_to_proto
from shequtong_boards.usecases.base import Page

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong.common.v1 import common_pb2
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.outbox import Outbox
from shequtong_kit.proto import ts

MATTERS = "neighbourhood_matters"
RENAMED = "王**"


def principal(caller: Any) -> Principal:
    return Principal(caller.subject, parse_roles(caller.roles))


async def home(caller: Any, neighbourhood: str) -> list[pb.Post]:
    reply = await caller.call(
        "ListHomeFeed",
        pb.ListHomeFeedRequest(neighbourhood_id=neighbourhood, page=common_pb2.PageRequest(page_size=20)),
    )
    return list(reply.posts)


async def test_a_first_page_comes_from_memory_with_its_counters_and_the_callers_likes_read_again(
    system: Any,
) -> None:
    place = await system.place()
    author = await system.resident(place, name="李*")
    reader = await system.resident(place, name="赵*")
    post = (
        await author.call("CreatePost", pb.CreatePostRequest(board_id=place.boards[MATTERS], title="路灯", body="坏了"))
    ).post
    pages = system.service.posts.ctx.feed_pages
    assert [p.id for p in await home(author, place.neighbourhood)] == [post.id]
    hits = pages.hits

    await reader.call("SetPostLike", pb.SetPostLikeRequest(post_id=post.id, liked=True))
    await author.call("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="谢谢关注"))
    as_reader = (await home(reader, place.neighbourhood))[0]
    as_author = (await home(author, place.neighbourhood))[0]

    assert pages.hits == hits + 2  # a like and a comment move counters, not the page
    assert (as_reader.like_count, as_reader.comment_count, as_reader.liked_by_me) == (1, 1, True)
    assert (as_author.like_count, as_author.comment_count, as_author.liked_by_me) == (1, 1, False)
    assert as_reader.title == "路灯" and as_reader.author.display_name == "李*"

    await author.call("SetPostLike", pb.SetPostLikeRequest(post_id=post.id, liked=True))
    again = (await home(author, place.neighbourhood))[0]
    assert pages.hits == hits + 3 and (again.like_count, again.liked_by_me) == (2, True)
    built = await author.call("GetPost", pb.GetPostRequest(post_id=post.id))  # built from the database
    assert again == built.post


async def test_every_change_a_first_page_shows_reaches_another_replicas_kept_page(system: Any) -> None:
    place = await system.place()
    staff, news_board = await system.district_news(place)
    cadre = await system.resident(place, "cadre", name="张*")
    author = await system.resident(place, name="王*")
    board = place.boards[MATTERS]
    post = (await author.call("CreatePost", pb.CreatePostRequest(board_id=board, title="路灯", body="坏了"))).post
    other = (await author.call("CreatePost", pb.CreatePostRequest(board_id=board, title="楼道", body="堆物"))).post
    replica = BoardsService(system.sessions, Outbox("boards", system.clock), system.clock)
    as_author = principal(author)

    async def pages() -> list[dict[str, pb.Post]]:
        """The author's home feed and the board's feed, first pages, as the other replica serves them."""
        first = Page.of("", 20)
        feeds = (
            await replica.posts.home_feed(as_author, place.neighbourhood, first),
            await replica.posts.board_feed(as_author, board, first),
        )
        return [{view.post.id: post_to_proto(view) for view in feed.items} for feed in feeds]

    def shown(check: Callable[[dict[str, pb.Post]], bool]) -> Callable[[], Awaitable[bool]]:
        async def both() -> bool:
            return all(check(page) for page in await pages())

        return both

    def deliver(subject: str, message: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: system.deliver(subject, message)

    def call(caller: Any, method: str, request: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: caller.call(method, request)

    poll = pb.CreatePollRequest(
        post_id=post.id,
        question="修吗？",
        options=["修", "不修"],
        kind=pb.POLL_KIND_SINGLE,
        closes_at=ts(system.clock.now() + timedelta(days=2)),
    )
    issue = str(uuid.uuid4())
    hide = pb.ModerateContentRequest(
        target_type=pb.TARGET_TYPE_POST, target_id=other.id, action=pb.MODERATION_ACTION_KIND_HIDE, reason="重复"
    )
    changes: list[tuple[str, Callable[[], Awaitable[Any]], Callable[[], Awaitable[bool]]]] = [
        (
            "edited",
            call(author, "EditPost", pb.EditPostRequest(post_id=post.id, title="路灯又坏了", body="坏了")),
            shown(lambda p: p[post.id].title == "路灯又坏了" and p[post.id].version == 2),
        ),
        (
            "pinned",
            call(cadre, "PinPost", pb.PinPostRequest(post_id=post.id, pinned=True)),
            shown(lambda p: p[post.id].pinned and next(iter(p)) == post.id),
        ),
        (
            "locked",
            call(cadre, "LockPost", pb.LockPostRequest(post_id=post.id, locked=True, reason="已处理")),
            shown(lambda p: p[post.id].locked),
        ),
        ("given a poll", call(author, "CreatePoll", poll), shown(lambda p: len(p[post.id].poll_ids) == 1)),
        (
            "became an issue",
            deliver(
                "issues.issue.reported",
                issues_ev.IssueReported(
                    issue_id=issue, neighbourhood_id=place.neighbourhood, source_post_id=post.id, reporter_id=author.id
                ),
            ),
            shown(lambda p: p[post.id].issue_id == issue),
        ),
        (
            "author renamed",
            deliver(
                "identity.person.updated", identity_ev.PersonProfileUpdated(person_id=author.id, display_name="王**")
            ),
            shown(lambda p: p[post.id].author.display_name == RENAMED),
        ),
        (
            "author verified again under another name",
            deliver(
                "identity.membership.verified",
                identity_ev.MemberVerified(
                    person_id=author.id,
                    neighbourhood_id=place.neighbourhood,
                    household_id=str(uuid.uuid4()),
                    membership_id=str(uuid.uuid4()),
                    display_name="王三",
                ),
            ),
            shown(lambda p: p[post.id].author.display_name == "王三"),
        ),
        (
            "author badge granted",
            deliver(
                "identity.role.granted",
                identity_ev.RoleGranted(
                    person_id=author.id, role="party_member", scope=f"n:{place.neighbourhood}", display_name="王**"
                ),
            ),
            shown(lambda p: "party_member" in p[post.id].author.badges),
        ),
        (
            "author badge revoked",
            deliver(
                "identity.role.revoked",
                identity_ev.RoleRevoked(person_id=author.id, role="party_member", scope=f"n:{place.neighbourhood}"),
            ),
            shown(lambda p: "party_member" not in p[post.id].author.badges),
        ),
        ("hidden", call(cadre, "ModerateContent", hide), shown(lambda p: other.id not in p)),
        (
            "deleted",
            call(author, "DeletePost", pb.DeletePostRequest(post_id=post.id)),
            shown(lambda p: post.id not in p),
        ),
    ]
    await pages()  # kept by the replica from here on
    for name, change, check in changes:
        system.clock.advance(seconds=1)
        await change()
        assert await check(), f"the replica's first page missed: {name}"

    bulletin = await staff.call("CreatePost", pb.CreatePostRequest(board_id=news_board, title="区里通知", body="周知"))
    home_page = (await replica.posts.home_feed(as_author, place.neighbourhood, Page.of("", 20))).items
    assert [view.post.id for view in home_page] == [bulletin.post.id]

    hits = replica.posts.ctx.feed_pages.hits
    await pages()
    assert replica.posts.ctx.feed_pages.hits == hits + 2  # nothing moved since: both pages from memory


async def test_feed_versions_move_at_the_commit_and_not_on_a_rollback(system: Any) -> None:
    """A transaction's version bumps are written just before its commit (its last locks, in place order),
    once per place however often it bumped; a rolled-back transaction moves nothing."""
    from shequtong_boards.models import FeedVersion
    from shequtong_boards.repository import FeedVersionRepository
    from sqlalchemy import select

    first, second = f"n:{uuid.uuid4()}", f"n:{uuid.uuid4()}"

    async def versions() -> dict[str, int]:
        async with system.sessions() as session:
            rows = await session.execute(
                select(FeedVersion.place, FeedVersion.version).where(FeedVersion.place.in_([first, second]))
            )
            return {place: int(version) for place, version in rows}

    async with system.sessions() as session, session.begin():
        repo = FeedVersionRepository(session)
        await repo.bump([second, first])
        await repo.bump([first])
        inside = (await session.execute(select(FeedVersion.place).where(FeedVersion.place.in_([first, second])))).all()
        assert inside == [], "not written before the commit"
    assert await versions() == {first: 1, second: 1}

    class Abandoned(Exception):
        pass

    try:
        async with system.sessions() as session, session.begin():
            await FeedVersionRepository(session).bump([first])
            raise Abandoned
    except Abandoned:
        pass
    assert await versions() == {first: 1, second: 1}


async def test_a_batch_of_identity_events_moves_the_feed_only_for_the_people_it_shows(system: Any) -> None:
    """The people consumer asks once per batch which of its people a post shows (a resident import sends
    them by the hundred thousand): newcomers leave kept pages alone, a shown author's rename reaches them."""
    place = await system.place()
    author = await system.resident(place, name="王*")
    post = (
        await author.call("CreatePost", pb.CreatePostRequest(board_id=place.boards[MATTERS], title="路灯", body="坏了"))
    ).post
    replica = BoardsService(system.sessions, Outbox("boards", system.clock), system.clock)
    as_author = principal(author)

    async def first_page() -> list[pb.Post]:
        page = await replica.posts.home_feed(as_author, place.neighbourhood, Page.of("", 20))
        return [post_to_proto(view) for view in page.items]

    def verified(person_id: str, name: str) -> tuple[str, Any]:
        return (
            "identity.membership.verified",
            identity_ev.MemberVerified(
                person_id=person_id,
                neighbourhood_id=place.neighbourhood,
                household_id=str(uuid.uuid4()),
                membership_id=str(uuid.uuid4()),
                display_name=name,
            ),
        )

    await first_page()
    newcomers = [str(uuid.uuid4()) for _ in range(3)]
    outcomes = await system.deliver_batch([verified(person, f"新{i}") for i, person in enumerate(newcomers)])
    hits = replica.posts.ctx.feed_pages.hits
    assert outcomes == [True, True, True]
    assert (await first_page())[0].author.display_name == "王*"
    assert replica.posts.ctx.feed_pages.hits == hits + 1, "newcomers shown on no post: the page stays kept"

    outcomes = await system.deliver_batch(
        [
            verified(str(uuid.uuid4()), "新3"),
            ("identity.person.updated", identity_ev.PersonProfileUpdated(person_id=author.id, display_name=RENAMED)),
            verified(str(uuid.uuid4()), "新4"),
        ]
    )
    assert outcomes == [True, True, True]
    assert [p.author.display_name for p in await first_page() if p.id == post.id] == [RENAMED]
    async with system.sessions() as session:
        names = await PeopleRepository(session).roles_and_names(newcomers)
    assert sorted(fact.display_name for fact in names) == ["新0", "新1", "新2"]


async def test_an_import_of_residents_in_one_packed_event_records_each_as_its_own_events(system: Any) -> None:
    """Identity sends an import's residents packed (`identity.membership.imported`): boards records each
    verification and party-member badge as if it had come alone, and only a shown person moves the feed."""
    place = await system.place()
    author = await system.resident(place, name="王*")
    await author.call("CreatePost", pb.CreatePostRequest(board_id=place.boards[MATTERS], title="井盖", body="松了"))
    replica = BoardsService(system.sessions, Outbox("boards", system.clock), system.clock)
    as_author = principal(author)

    async def first_page() -> list[pb.Post]:
        page = await replica.posts.home_feed(as_author, place.neighbourhood, Page.of("", 20))
        return [post_to_proto(view) for view in page.items]

    def resident(person_id: str, name: str, party_member: bool = False) -> identity_ev.ImportedResident:
        ids = {
            "person_id": person_id,
            "neighbourhood_id": place.neighbourhood,
            "household_id": str(uuid.uuid4()),
            "membership_id": str(uuid.uuid4()),
        }
        item = identity_ev.ImportedResident(
            joined=identity_ev.MemberJoined(**ids), verified=identity_ev.MemberVerified(**ids, display_name=name)
        )
        if party_member:
            item.party_member.CopyFrom(
                identity_ev.RoleGranted(
                    person_id=person_id, role="party_member", scope=f"n:{place.neighbourhood}", display_name=name
                )
            )
        return item

    await first_page()
    newcomers = [str(uuid.uuid4()) for _ in range(3)]
    pack = identity_ev.ResidentsImported(
        residents=[resident(person, f"新{i}", party_member=i == 1) for i, person in enumerate(newcomers)]
    )
    hits = replica.posts.ctx.feed_pages.hits
    assert await system.deliver_batch([("identity.membership.imported", pack)]) == [True]
    assert (await first_page())[0].author.display_name == "王*"
    assert replica.posts.ctx.feed_pages.hits == hits + 1, "newcomers shown on no post: the page stays kept"
    async with system.sessions() as session:
        facts = await PeopleRepository(session).roles_and_names(newcomers)
    assert sorted(f.display_name for f in facts if f.role is None) == ["新0", "新1", "新2"]
    assert [(f.person_id, f.role, f.scope) for f in facts if f.role is not None] == [
        (newcomers[1], "party_member", f"n:{place.neighbourhood}")
    ]

    # The author, imported again under a corrected name in a pack with a newcomer: the page shows it.
    pack = identity_ev.ResidentsImported(residents=[resident(str(uuid.uuid4()), "新3"), resident(author.id, RENAMED)])
    assert await system.deliver_batch([("identity.membership.imported", pack)]) == [True]
    assert (await first_page())[0].author.display_name == RENAMED


async def test_grants_sent_packed_show_each_badge_as_if_it_had_come_alone(system: Any) -> None:
    """Identity sends a batch's run of grants packed (`identity.role.granted_many`: the volunteer badges of an
    imported team): boards records each, and the author's badge shows on the kept page at once."""
    place = await system.place()
    author = await system.resident(place, name="赵*")
    post = await author.call(
        "CreatePost", pb.CreatePostRequest(board_id=place.boards[MATTERS], title="路灯", body="不亮")
    )
    replica = BoardsService(system.sessions, Outbox("boards", system.clock), system.clock)

    async def badges() -> list[str]:
        page = await replica.posts.home_feed(principal(author), place.neighbourhood, Page.of("", 20))
        return [
            badge for view in page.items if view.post.id == post.post.id for badge in post_to_proto(view).author.badges
        ]

    assert "volunteer" not in await badges()
    newcomer = str(uuid.uuid4())
    scope = f"n:{place.neighbourhood}"
    pack = identity_ev.RolesGranted(
        grants=[
            identity_ev.RoleGranted(person_id=person, role="volunteer", scope=scope, granted_by="svc:volunteers")
            for person in (newcomer, author.id)
        ]
    )
    assert await system.deliver_batch([("identity.role.granted_many", pack)]) == [True]
    assert "volunteer" in await badges(), "the kept page moved: its author's badge shows"
    async with system.sessions() as session:
        facts = await PeopleRepository(session).roles_and_names([newcomer, author.id])
    assert sorted((f.person_id, f.role, f.scope) for f in facts if f.role is not None) == sorted(
        [(newcomer, "volunteer", scope), (author.id, "volunteer", scope)]
    )
