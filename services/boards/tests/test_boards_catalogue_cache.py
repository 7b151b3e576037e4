"""Each process keeps a district's boards and catalogue in memory (`cache.CatalogueCache`). A second
replica on the same database must see a change the first one made, at its commit: the boards a
neighbourhood page lists, their policies, and the posts of a board opened since."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from shequtong_boards.service import BoardsService
from shequtong_boards.usecases.base import Page

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.errors import NotFound, PermissionDenied
from shequtong_kit.outbox import Outbox


def principal(caller: Any) -> Principal:
    return Principal(caller.subject, parse_roles(caller.roles))


async def _district_with_a_second_replica(system: Any) -> tuple[str, Any, Any, Any, BoardsService]:
    """A new district with a neighbourhood, a resident, the district's staff, and a second boards service
    on the same database (the replica whose kept catalogue must follow the first one's changes)."""
    district = str(uuid.uuid4())
    home = await system.place(district=district)
    resident = await system.resident(home)
    staff = system.person(f"district_staff@d:{district}")
    return district, home, resident, staff, BoardsService(system.sessions, Outbox("boards", system.clock), system.clock)


async def test_a_replica_sees_the_other_replicas_catalogue_change_at_once(system: Any) -> None:
    district, home, resident, staff, replica = await _district_with_a_second_replica(system)

    before = await replica.boards.list_boards(principal(resident), home.neighbourhood)
    matters = next(v for v in before if v.board.kind == "neighbourhood_matters")
    assert matters.perms.can_post and "district_survey" not in [v.board.kind for v in before]
    await replica.posts.home_feed(principal(resident), home.neighbourhood, _first_page())  # cached now

    survey = pb.BoardPolicy(read=["member", "staff"], post=["district_staff"], moderate=["district_staff"])
    await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(district_id=district, kind="district_survey", name="大调研", policy=survey),
    )
    closed = pb.BoardPolicy(read=["member", "staff"], post=["committee"], moderate=["committee", "staff"])
    await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(district_id=district, kind="neighbourhood_matters", name="身边事", policy=closed),
    )

    after = await replica.boards.list_boards(principal(resident), home.neighbourhood)
    kinds = [v.board.kind for v in after]
    assert kinds[-1] == "district_survey" and len(after) == len(before) + 1
    assert not next(v for v in after if v.board.kind == "neighbourhood_matters").perms.can_post
    survey_board = next(v.board.id for v in after if v.board.kind == "district_survey")
    post = (
        await staff.call("CreatePost", pb.CreatePostRequest(board_id=survey_board, title="2026大调研", body="请留言"))
    ).post
    feed = await replica.posts.home_feed(principal(resident), home.neighbourhood, _first_page())
    assert post.id in [view.post.id for view in feed.items]


def _first_page() -> Page:
    return Page.of("", 20)


async def test_a_post_read_on_a_replica_follows_a_read_rule_changed_on_the_other(system: Any) -> None:
    """A post's page reads its district's catalogue version with the post itself (one statement): the
    replica's kept catalogue must still give way to the rule changed since."""
    district, home, resident, staff, replica = await _district_with_a_second_replica(system)
    boards = await replica.boards.list_boards(principal(resident), home.neighbourhood)
    matters = next(v.board.id for v in boards if v.board.kind == "neighbourhood_matters")
    post = (await resident.call("CreatePost", pb.CreatePostRequest(board_id=matters, title="路灯", body="坏了"))).post
    assert (await replica.posts.get(principal(resident), post.id)).post.id == post.id  # catalogue kept now

    committee_only = pb.BoardPolicy(read=["committee", "staff"], post=["committee"], moderate=["committee", "staff"])
    await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(
            district_id=district, kind="neighbourhood_matters", name="身边事", policy=committee_only
        ),
    )
    with pytest.raises(PermissionDenied):
        await replica.posts.get(principal(resident), post.id)
    with pytest.raises(NotFound):
        await replica.posts.get(principal(resident), str(uuid.uuid4()))


async def test_a_board_feed_on_a_replica_follows_a_read_rule_changed_on_the_other(system: Any) -> None:
    """A board's feed takes the board from the kept catalogue once the replica knows where the board sits:
    the rule changed since on the other replica still closes it, at once, first page and deeper pages alike;
    an unknown board is still not found."""
    district, home, resident, staff, replica = await _district_with_a_second_replica(system)
    boards = await replica.boards.list_boards(principal(resident), home.neighbourhood)
    matters = next(v.board.id for v in boards if v.board.kind == "neighbourhood_matters")
    for title in ("路灯", "井盖"):
        await resident.call("CreatePost", pb.CreatePostRequest(board_id=matters, title=title, body="坏了"))
    first = await replica.posts.board_feed(principal(resident), matters, Page.of("", 1))
    deeper = Page.of(first.next_cursor or "", 1)
    assert [v.post.title for v in first.items] == ["井盖"]
    assert [v.post.title for v in (await replica.posts.board_feed(principal(resident), matters, deeper)).items] == [
        "路灯"
    ]

    committee_only = pb.BoardPolicy(read=["committee", "staff"], post=["committee"], moderate=["committee", "staff"])
    await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(
            district_id=district, kind="neighbourhood_matters", name="身边事", policy=committee_only
        ),
    )
    for page in (Page.of("", 1), deeper):
        with pytest.raises(PermissionDenied):
            await replica.posts.board_feed(principal(resident), matters, page)
    with pytest.raises(NotFound):
        await replica.posts.board_feed(principal(resident), str(uuid.uuid4()), Page.of("", 1))
