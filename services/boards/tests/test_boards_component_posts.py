"""Boards, posts, comments, mentions, likes, feeds and unread counts over real gRPC."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc

from shequtong.boards.v1 import boards_pb2 as pb
from shequtong.common.v1 import common_pb2
from shequtong.events.v1 import boards_events_pb2 as ev
from shequtong.events.v1 import identity_events_pb2 as identity_ev

MATTERS = "neighbourhood_matters"


def post_request(
    board: str, title: str = "路灯坏了", body: str = "3号楼门口路灯坏了", **extra: Any
) -> pb.CreatePostRequest:
    return pb.CreatePostRequest(board_id=board, title=title, body=body, **extra)


async def feed(caller: Any, board: str, size: int = 100) -> list[pb.Post]:
    reply = await caller.call(
        "ListBoardFeed", pb.ListBoardFeedRequest(board_id=board, page=common_pb2.PageRequest(page_size=size))
    )
    return list(reply.posts)


async def test_catalogue_opens_ten_boards_with_the_callers_permissions(system: Any, place: Any) -> None:
    resident = await system.resident(place)
    reply = await resident.call("ListBoards", pb.ListBoardsRequest(neighbourhood_id=place.neighbourhood))
    boards = {b.kind: b for b in reply.boards}
    assert len(boards) == 10 and reply.boards[0].name == "社区公告"
    assert not boards["announcements"].permissions.can_post
    assert boards["announcements"].permissions.can_comment
    assert not boards["party_building"].permissions.can_post
    assert boards[MATTERS].permissions.can_post
    assert not boards["police_line"].permissions.can_answer
    assert list(boards["party_building"].policy.moderate) == ["secretary"]
    outsider = system.person(f"resident@n:{uuid.uuid4()}")
    code, reason = await outsider.fails("ListBoards", pb.ListBoardsRequest(neighbourhood_id=place.neighbourhood))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_a_member")
    anonymous_code, _ = await system.person().fails("GetBoard", pb.GetBoardRequest(board_id=place.boards[MATTERS]))
    assert anonymous_code == grpc.StatusCode.PERMISSION_DENIED


async def test_committee_mention_resolves_to_the_committee_and_the_event_carries_it(system: Any, place: Any) -> None:
    secretary = await system.resident(place, "secretary", name="李*")
    cadre = await system.resident(place, "cadre", name="张*")
    neighbour = await system.resident(place, name="赵*")
    resident = await system.resident(place, "party_member", name="王*")
    reply = await resident.call(
        "CreatePost",
        post_request(
            place.boards[MATTERS],
            body="3号楼门口路灯坏了 @居委会 麻烦看看",
            image_refs=["uploads/lamp.jpg"],
            tags=["#路灯"],
            mention_person_ids=[neighbour.id],
        ),
    )
    post = reply.post
    assert post.author.display_name == "王*" and "party_member" in post.author.badges
    assert post.mentioned_handles == ["committee"]
    mentioned = {m.person_id: m.via_handle for m in post.mentions}
    assert mentioned == {secretary.id: "committee", cadre.id: "committee", neighbour.id: ""}
    created = [e for e in await system.events("boards.post.created", ev.PostCreated) if e.post_id == post.id]
    assert len(created) == 1
    assert created[0].mentions_committee and created[0].board_kind == MATTERS
    assert set(created[0].mentioned_person_ids) == set(mentioned)
    assert list(created[0].image_urls) == ["uploads/lamp.jpg"]
    notices = [e for e in await system.events("boards.mention.created", ev.PersonMentioned) if e.post_id == post.id]
    assert {n.person_id for n in notices} == set(mentioned)
    quiet = await resident.call("CreatePost", post_request(place.boards[MATTERS], body="今天天气不错"))
    event = next(e for e in await system.events("boards.post.created", ev.PostCreated) if e.post_id == quiet.post.id)
    assert not event.mentions_committee and not event.mentioned_person_ids


async def test_mentions_must_be_members_and_revoked_roles_stop_resolving(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    resident = await system.resident(place)
    stranger = str(uuid.uuid4())
    before = len(await system.events("boards.post.created", ev.PostCreated))
    code, reason = await resident.fails(
        "CreatePost", post_request(place.boards[MATTERS], mention_person_ids=[stranger])
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "mention_not_member")
    assert len(await system.events("boards.post.created", ev.PostCreated)) == before
    await system.deliver(
        "identity.role.revoked",
        identity_ev.RoleRevoked(person_id=cadre.id, role="cadre", scope=f"n:{place.neighbourhood}"),
    )
    reply = await resident.call("CreatePost", post_request(place.boards[MATTERS], body="@居委会 在吗"))
    assert cadre.id not in {m.person_id for m in reply.post.mentions}


async def test_board_policies_are_enforced_and_refusals_change_nothing(system: Any, place: Any) -> None:
    secretary = await system.resident(place, "secretary")
    resident = await system.resident(place)
    before = len(await system.events("boards.post.created", ev.PostCreated))
    for kind in ("announcements", "party_building", "affairs_disclosure"):
        code, reason = await resident.fails("CreatePost", post_request(place.boards[kind]))
        assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "board_post_forbidden"), kind
    assert len(await system.events("boards.post.created", ev.PostCreated)) == before
    assert await feed(secretary, place.boards["party_building"]) == []
    notice = await secretary.call("CreatePost", post_request(place.boards["party_building"], title="主题党日"))
    comment = await resident.call("CreateComment", pb.CreateCommentRequest(post_id=notice.post.id, body="支持！"))
    assert comment.comment.kind == pb.COMMENT_KIND_MEMBER


async def test_other_neighbourhoods_read_nothing(system: Any, place: Any) -> None:
    resident = await system.resident(place)
    post = (await resident.call("CreatePost", post_request(place.boards[MATTERS]))).post
    other = await system.place(district=place.district)
    outsider = await system.resident(other, "cadre")
    for method, request in [
        ("GetPost", pb.GetPostRequest(post_id=post.id)),
        ("ListBoardFeed", pb.ListBoardFeedRequest(board_id=place.boards[MATTERS])),
        ("ListBoardFeed", pb.ListBoardFeedRequest(board_id=place.boards["announcements"])),
        ("ListHomeFeed", pb.ListHomeFeedRequest(neighbourhood_id=place.neighbourhood)),
        ("ListComments", pb.ListCommentsRequest(post_id=post.id)),
        ("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="路过")),
        ("SetPostLike", pb.SetPostLikeRequest(post_id=post.id, liked=True)),
        ("GetUnreadCounts", pb.GetUnreadCountsRequest(neighbourhood_id=place.neighbourhood)),
    ]:
        code, _ = await outsider.fails(method, request)
        assert code == grpc.StatusCode.PERMISSION_DENIED, method
    staff = system.person(f"subdistrict_staff@s:{place.subdistrict}")
    assert [p.id for p in await feed(staff, place.boards[MATTERS])] == [post.id]


async def test_create_post_is_idempotent_with_the_key(system: Any, place: Any) -> None:
    resident = await system.resident(place)
    key = uuid.uuid4().hex
    request = post_request(place.boards[MATTERS], title="重复提交")
    first = await resident.call("CreatePost", request, key=key)
    second = await resident.call("CreatePost", request, key=key)
    assert first.post.id == second.post.id
    events = [e for e in await system.events("boards.post.created", ev.PostCreated) if e.title == "重复提交"]
    assert [e.post_id for e in events] == [first.post.id]
    with_other_body = post_request(place.boards[MATTERS], title="重复提交", body="不同内容")
    try:
        await resident.call("CreatePost", with_other_body, key=key)
        raise AssertionError("reusing a key for another request must fail")
    except grpc.aio.AioRpcError as exc:
        assert exc.code() == grpc.StatusCode.ABORTED


async def test_edits_keep_history_and_only_the_author_edits(system: Any, place: Any) -> None:
    author = await system.resident(place)
    other = await system.resident(place)
    post = (await author.call("CreatePost", post_request(place.boards[MATTERS], title="初稿", body="第一版"))).post
    edited = await author.call(
        "EditPost",
        pb.EditPostRequest(post_id=post.id, title="修改稿", body="第二版", tags=["更新"], expected_version=1),
    )
    assert (edited.post.version, edited.post.title, list(edited.post.tags)) == (2, "修改稿", ["更新"])
    assert edited.post.HasField("edited_at")
    code, reason = await author.fails(
        "EditPost", pb.EditPostRequest(post_id=post.id, title="x", body="y", expected_version=1)
    )
    assert (code, reason) == (grpc.StatusCode.ABORTED, "post_version_conflict")
    code, reason = await other.fails("EditPost", pb.EditPostRequest(post_id=post.id, title="x", body="y"))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_the_author")
    history = await other.call("ListPostRevisions", pb.ListPostRevisionsRequest(post_id=post.id))
    assert [(r.version, r.title, r.body) for r in history.revisions] == [(1, "初稿", "第一版")]
    for n in range(3):
        await author.call("EditPost", pb.EditPostRequest(post_id=post.id, title=f"第{n + 3}版", body="再改"))
    first = await other.call(
        "ListPostRevisions",
        pb.ListPostRevisionsRequest(post_id=post.id, page=common_pb2.PageRequest(page_size=2)),
    )
    rest = await other.call(
        "ListPostRevisions",
        pb.ListPostRevisionsRequest(post_id=post.id, page=common_pb2.PageRequest(cursor=first.page.next_cursor)),
    )
    assert [r.version for r in first.revisions] == [1, 2] and first.page.has_more
    assert [r.version for r in rest.revisions] == [3, 4] and not rest.page.has_more


async def test_soft_delete_hides_from_everyone(system: Any, place: Any) -> None:
    author = await system.resident(place)
    reader = await system.resident(place)
    post = (await author.call("CreatePost", post_request(place.boards[MATTERS], title="要删除的"))).post
    deleted = await author.call("DeletePost", pb.DeletePostRequest(post_id=post.id))
    assert deleted.post.status == pb.CONTENT_STATUS_DELETED
    assert post.id not in [p.id for p in await feed(reader, place.boards[MATTERS])]
    code, reason = await reader.fails("GetPost", pb.GetPostRequest(post_id=post.id))
    assert (code, reason) == (grpc.StatusCode.NOT_FOUND, "post_not_found")
    assert [e.post_id for e in await system.events("boards.post.deleted", ev.PostDeleted)].count(post.id) == 1


async def test_likes_count_each_person_once(system: Any, place: Any) -> None:
    author = await system.resident(place)
    fans = [await system.resident(place) for _ in range(3)]
    post = (await author.call("CreatePost", post_request(place.boards[MATTERS]))).post
    replies = await asyncio.gather(
        *(fan.call("SetPostLike", pb.SetPostLikeRequest(post_id=post.id, liked=True)) for fan in fans for _ in range(2))
    )
    assert max(r.like_count for r in replies) == 3
    after = await fans[0].call("SetPostLike", pb.SetPostLikeRequest(post_id=post.id, liked=False))
    assert after.like_count == 2
    seen = (await fans[1].call("GetPost", pb.GetPostRequest(post_id=post.id))).post
    assert seen.like_count == 2 and seen.liked_by_me


async def test_comments_are_one_level_deep_with_official_answers(system: Any, place: Any) -> None:
    police = await system.resident(place, "police", name="周警官")
    resident = await system.resident(place)
    neighbour = await system.resident(place)
    post = (await resident.call("CreatePost", post_request(place.boards["police_line"], title="电动车被盗"))).post
    top = (await neighbour.call("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="我家也丢过"))).comment
    reply = await resident.call(
        "CreateComment", pb.CreateCommentRequest(post_id=post.id, parent_id=top.id, body="哪天？")
    )
    deeper = await neighbour.call(
        "CreateComment", pb.CreateCommentRequest(post_id=post.id, parent_id=reply.comment.id, body="上周")
    )
    assert reply.comment.parent_id == top.id and deeper.comment.parent_id == top.id
    code, reason = await resident.fails(
        "CreateComment", pb.CreateCommentRequest(post_id=post.id, body="官方回复", official_answer=True)
    )
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_a_responder")
    answer = await police.call(
        "CreateComment", pb.CreateCommentRequest(post_id=post.id, body="已立案，请到派出所登记", official_answer=True)
    )
    assert answer.comment.kind == pb.COMMENT_KIND_OFFICIAL and "police" in answer.comment.author.badges
    tops = await resident.call("ListComments", pb.ListCommentsRequest(post_id=post.id))
    assert [c.id for c in tops.comments] == [top.id, answer.comment.id]
    assert tops.comments[0].reply_count == 2
    replies = await resident.call("ListComments", pb.ListCommentsRequest(post_id=post.id, parent_id=top.id))
    assert [c.body for c in replies.comments] == ["哪天？", "上周"]
    seen = (await resident.call("GetPost", pb.GetPostRequest(post_id=post.id))).post
    assert (seen.comment_count, seen.official_answer_count) == (4, 1)
    kinds = [e.kind for e in await system.events("boards.comment.created", ev.CommentCreated) if e.post_id == post.id]
    assert sorted(kinds) == ["member", "member", "member", "official"]


async def test_comment_edits_deletes_and_likes(system: Any, place: Any) -> None:
    author = await system.resident(place)
    other = await system.resident(place)
    post = (await author.call("CreatePost", post_request(place.boards[MATTERS]))).post
    comment = (await other.call("CreateComment", pb.CreateCommentRequest(post_id=post.id, body="初"))).comment
    edited = await other.call(
        "EditComment", pb.EditCommentRequest(comment_id=comment.id, body="改", expected_version=1)
    )
    assert (edited.comment.body, edited.comment.version) == ("改", 2)
    code, reason = await author.fails("EditComment", pb.EditCommentRequest(comment_id=comment.id, body="x"))
    assert reason == "not_the_author"
    liked = await author.call("SetCommentLike", pb.SetCommentLikeRequest(comment_id=comment.id, liked=True))
    assert liked.like_count == 1
    code, reason = await author.fails("DeleteComment", pb.DeleteCommentRequest(comment_id=comment.id))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "not_a_moderator")
    await other.call("DeleteComment", pb.DeleteCommentRequest(comment_id=comment.id))
    assert (await author.call("GetPost", pb.GetPostRequest(post_id=post.id))).post.comment_count == 0
    assert (await author.call("ListComments", pb.ListCommentsRequest(post_id=post.id))).comments == []


async def test_board_feed_pages_by_keyset_pinned_first(system: Any, place: Any) -> None:
    cadre = await system.resident(place, "cadre")
    resident = await system.resident(place)
    ids = []
    for n in range(7):
        system.clock.advance(seconds=1)
        ids.append((await resident.call("CreatePost", post_request(place.boards[MATTERS], title=f"第{n}条"))).post.id)
    await cadre.call("PinPost", pb.PinPostRequest(post_id=ids[2], pinned=True, reason="重要"))
    seen: list[str] = []
    cursor = ""
    while True:
        page = await resident.call(
            "ListBoardFeed",
            pb.ListBoardFeedRequest(
                board_id=place.boards[MATTERS], page=common_pb2.PageRequest(cursor=cursor, page_size=3)
            ),
        )
        seen += [p.id for p in page.posts]
        assert len(page.posts) <= 3
        if not page.page.has_more:
            break
        cursor = page.page.next_cursor
    assert seen == [ids[2], *reversed([i for i in ids if i != ids[2]])]
    code, reason = await resident.fails(
        "ListBoardFeed",
        pb.ListBoardFeedRequest(board_id=place.boards[MATTERS], page=common_pb2.PageRequest(cursor="bm90LWEtY3Vyc29y")),
    )
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "cursor_invalid")


async def test_home_feed_merges_boards_pinned_first(system: Any) -> None:
    """The neighbourhood's boards and its district's, one page: pinned first, then newest, across both."""
    place = await system.place()
    staff, district_board = await system.district_news(place)
    secretary = await system.resident(place, "secretary")
    resident = await system.resident(place)
    system.clock.advance(seconds=1)
    notice = (await secretary.call("CreatePost", post_request(place.boards["announcements"], title="停水通知"))).post
    system.clock.advance(seconds=1)
    bulletin = (await staff.call("CreatePost", post_request(district_board, title="区里通知"))).post
    system.clock.advance(seconds=1)
    matter = (await resident.call("CreatePost", post_request(place.boards[MATTERS], title="楼道堆物"))).post
    system.clock.advance(seconds=1)
    news_item = (await staff.call("CreatePost", post_request(district_board, title="区级新闻"))).post
    system.clock.advance(seconds=1)
    party = (await secretary.call("CreatePost", post_request(place.boards["party_building"], title="党课"))).post
    await secretary.call("PinPost", pb.PinPostRequest(post_id=notice.id, pinned=True))
    await staff.call("PinPost", pb.PinPostRequest(post_id=bulletin.id, pinned=True))

    seen, cursor = [], ""
    while True:
        home = await resident.call(
            "ListHomeFeed",
            pb.ListHomeFeedRequest(
                neighbourhood_id=place.neighbourhood, page=common_pb2.PageRequest(cursor=cursor, page_size=2)
            ),
        )
        seen.append([p.id for p in home.posts])
        if not home.page.has_more:
            break
        cursor = home.page.next_cursor
    assert seen == [[bulletin.id, notice.id], [party.id, news_item.id], [matter.id]]


async def test_home_feed_shows_only_the_boards_the_caller_reads(system: Any) -> None:
    district = str(uuid.uuid4())
    place = await system.place(district=district)
    staff = system.person(f"district_staff@d:{district}")
    closed = pb.BoardPolicy(read=["committee", "staff"], post=["committee"], moderate=["committee", "staff"])
    await staff.call(
        "PutCatalogueEntry",
        pb.PutCatalogueEntryRequest(district_id=district, kind="party_building", name="党建", policy=closed),
    )
    secretary = await system.resident(place, "secretary")
    resident = await system.resident(place)
    system.clock.advance(seconds=1)
    notice = (await secretary.call("CreatePost", post_request(place.boards["announcements"], title="公告"))).post
    system.clock.advance(seconds=1)
    meeting = (await secretary.call("CreatePost", post_request(place.boards["party_building"], title="支部会议"))).post
    for caller, expected in ((resident, [notice.id]), (secretary, [meeting.id, notice.id])):
        for size in (20, 1):  # one page, and page by page through the cursor
            seen, cursor = [], ""
            while True:
                home = await caller.call(
                    "ListHomeFeed",
                    pb.ListHomeFeedRequest(
                        neighbourhood_id=place.neighbourhood,
                        page=common_pb2.PageRequest(cursor=cursor, page_size=size),
                    ),
                )
                seen += [p.id for p in home.posts]
                if not home.page.has_more:
                    break
                cursor = home.page.next_cursor
            assert seen == expected


async def test_unread_counts_per_board(system: Any, place: Any) -> None:
    reader = await system.resident(place)
    writer = await system.resident(place)
    for n in range(3):
        system.clock.advance(seconds=1)
        await writer.call("CreatePost", post_request(place.boards[MATTERS], title=f"新帖{n}"))
    counts = await reader.call("GetUnreadCounts", pb.GetUnreadCountsRequest(neighbourhood_id=place.neighbourhood))
    by_kind = {c.kind: c.unread for c in counts.counts}
    assert by_kind[MATTERS] == 3 and by_kind["announcements"] == 0
    own = await writer.call("GetUnreadCounts", pb.GetUnreadCountsRequest(neighbourhood_id=place.neighbourhood))
    assert {c.kind: c.unread for c in own.counts}[MATTERS] == 0
    system.clock.advance(seconds=1)
    await reader.call("MarkBoardRead", pb.MarkBoardReadRequest(board_id=place.boards[MATTERS]))
    after = await reader.call("GetUnreadCounts", pb.GetUnreadCountsRequest(neighbourhood_id=place.neighbourhood))
    assert {c.kind: c.unread for c in after.counts}[MATTERS] == 0
