"""Posts (帖子) on boards, the board feeds and the neighbourhood's home feed, likes, pins and locks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from fastapi import Query
from fastapi.responses import Response
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import BaseModel, Field

from shequtong.boards.v1 import boards_pb2
from shequtong.common.v1 import common_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["posts"])

Status = Literal["visible", "hidden", "deleted"]
STATUSES: dict[int, Status] = {
    boards_pb2.CONTENT_STATUS_VISIBLE: "visible",
    boards_pb2.CONTENT_STATUS_HIDDEN: "hidden",
    boards_pb2.CONTENT_STATUS_DELETED: "deleted",
}


class AuthorOut(BaseModel):
    person_id: str
    display_name: str = Field(examples=["王*"])
    badges: list[str] = Field(description="party_member (党员亮身份), volunteer, cadre, secretary, police ...")


class MentionOut(BaseModel):
    person_id: str
    display_name: str
    via_handle: str | None = Field(description="The role handle that resolved to this person (committee, police ...)")


class PostIn(BaseModel):
    title: str = Field(min_length=1, max_length=80, examples=["3号楼门口路灯坏了"])
    body: str = Field(min_length=1, max_length=5000, examples=["晚上很黑，老人出行不便 @居委会"])
    image_refs: list[str] = Field(default_factory=list, max_length=9, examples=[["uploads/2026/lamp.jpg"]])
    tags: list[str] = Field(default_factory=list, max_length=5, examples=[["路灯"]])
    mention_person_ids: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="People picked from the member list; @居委会 etc. are read from the text",
    )


class PostEdit(PostIn):
    expected_version: int | None = Field(
        default=None, ge=1, le=2_147_483_647, description="Refuse the edit if the post changed since"
    )


class PostOut(BaseModel):
    id: str
    board_id: str
    board_kind: str
    neighbourhood_id: str | None
    district_id: str
    author: AuthorOut
    title: str
    body: str
    image_refs: list[str]
    tags: list[str]
    mentions: list[MentionOut]
    mentioned_handles: list[str]
    pinned: bool
    locked: bool
    status: Status
    like_count: int
    comment_count: int
    official_answer_count: int
    liked_by_me: bool
    version: int
    created_at: datetime | None
    edited_at: datetime | None
    topic_id: str | None
    affair_id: str | None
    poll_ids: list[str]
    issue_id: str | None = Field(description="The tracked issue this post became, once collected")


class PostPage(BaseModel):
    items: list[PostOut]
    next_cursor: str | None


class RevisionOut(BaseModel):
    version: int
    title: str
    body: str
    image_refs: list[str]
    tags: list[str]
    edited_by: str
    edited_at: datetime | None


class LikeOut(BaseModel):
    like_count: int
    liked: bool


class PinIn(BaseModel):
    pinned: bool = True
    reason: str = Field(default="", max_length=500)


class LockIn(BaseModel):
    locked: bool = True
    reason: str = Field(min_length=1, max_length=500, examples=["已答复，关闭讨论"])


def author_fields(a: boards_pb2.Author) -> dict[str, Any]:
    return {"person_id": a.person_id, "display_name": a.display_name, "badges": list(a.badges)}


def author_out(a: boards_pb2.Author) -> AuthorOut:
    return AuthorOut(**author_fields(a))


def mention_fields(m: boards_pb2.Mention) -> dict[str, Any]:
    return {"person_id": m.person_id, "display_name": m.display_name, "via_handle": m.via_handle or None}


def mention_out(m: boards_pb2.Mention) -> MentionOut:
    return MentionOut(**mention_fields(m))


_EPOCH = datetime(1970, 1, 1)  # naive on purpose: its isoformat carries no offset, "Z" is appended


def json_time(stamp: Timestamp) -> str | None:
    """A time as pydantic writes a UTC datetime in JSON ("…Z"), the form every other response carries.
    Computed from the stamp's fields: protobuf's ToDatetime took half of the time of the two per post."""
    seconds, nanos = stamp.seconds, stamp.nanos
    if not seconds and not nanos:
        return None
    return (_EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)).isoformat() + "Z"


def post_fields(p: boards_pb2.Post) -> dict[str, Any]:
    """A post as the API sends it: `PostOut` in JSON form, built straight from the message."""
    return {
        "id": p.id,
        "board_id": p.board_id,
        "board_kind": p.board_kind,
        "neighbourhood_id": p.neighbourhood_id or None,
        "district_id": p.district_id,
        "author": author_fields(p.author),
        "title": p.title,
        "body": p.body,
        "image_refs": list(p.image_refs),
        "tags": list(p.tags),
        "mentions": [mention_fields(m) for m in p.mentions],
        "mentioned_handles": list(p.mentioned_handles),
        "pinned": p.pinned,
        "locked": p.locked,
        "status": STATUSES.get(p.status, "visible"),
        "like_count": p.like_count,
        "comment_count": p.comment_count,
        "official_answer_count": p.official_answer_count,
        "liked_by_me": p.liked_by_me,
        "version": p.version,
        "created_at": json_time(p.created_at),
        "edited_at": json_time(p.edited_at),
        "topic_id": p.topic_id or None,
        "affair_id": p.affair_id or None,
        "poll_ids": list(p.poll_ids),
        "issue_id": p.issue_id or None,
    }


def post_out(p: boards_pb2.Post) -> PostOut:
    return PostOut.model_validate(post_fields(p))


def post_page(posts: Iterable[boards_pb2.Post], next_cursor: str) -> Response:
    """A `PostPage` sent as the fields it is made of. The feeds are the most requested pages: building 20
    models per page and then serializing them was a fifth of the gateway's CPU on the home feed, for data
    already typed by the boards contract (`tests/test_post_page.py` holds the two ways to the same JSON)."""
    page = {"items": [post_fields(p) for p in posts], "next_cursor": next_cursor or None}
    return Response(orjson.dumps(page), media_type="application/json")


def page_request(cursor: str | None, page_size: int) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(cursor=cursor or "", page_size=page_size)


@router.post("/v1/boards/{board_id}/posts", status_code=201, response_model=PostOut, summary="Post on a board")
async def create_post(board_id: str, body: PostIn, caller: SignedIn) -> PostOut:
    reply = await caller.call(
        caller.clients.boards.CreatePost,
        boards_pb2.CreatePostRequest(board_id=board_id, **body.model_dump()),
    )
    return post_out(reply.post)


@router.get(
    "/v1/boards/{board_id}/posts", response_model=PostPage, summary="The board's feed: pinned first, then newest"
)
async def board_feed(
    board_id: str,
    caller: SignedIn,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> Response:
    reply = await caller.call(
        caller.clients.boards.ListBoardFeed,
        boards_pb2.ListBoardFeedRequest(board_id=board_id, page=page_request(cursor, page_size)),
    )
    return post_page(reply.posts, reply.page.next_cursor)


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/feed",
    response_model=PostPage,
    summary="The neighbourhood's home feed across its boards and its district's: pinned first, then newest",
)
async def home_feed(
    neighbourhood_id: str,
    caller: SignedIn,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> Response:
    reply = await caller.call(
        caller.clients.boards.ListHomeFeed,
        boards_pb2.ListHomeFeedRequest(neighbourhood_id=neighbourhood_id, page=page_request(cursor, page_size)),
    )
    return post_page(reply.posts, reply.page.next_cursor)


@router.get("/v1/posts/{post_id}", response_model=PostOut, summary="One post")
async def get_post(post_id: str, caller: SignedIn) -> PostOut:
    reply = await caller.call(caller.clients.boards.GetPost, boards_pb2.GetPostRequest(post_id=post_id))
    return post_out(reply.post)


@router.patch("/v1/posts/{post_id}", response_model=PostOut, summary="Edit your post (the previous version is kept)")
async def edit_post(post_id: str, body: PostEdit, caller: SignedIn) -> PostOut:
    fields = body.model_dump()
    fields["expected_version"] = fields["expected_version"] or 0
    reply = await caller.call(caller.clients.boards.EditPost, boards_pb2.EditPostRequest(post_id=post_id, **fields))
    return post_out(reply.post)


@router.delete(
    "/v1/posts/{post_id}", response_model=PostOut, summary="Delete a post (yours, or as a moderator with a reason)"
)
async def delete_post(post_id: str, caller: SignedIn, reason: str = Query(default="", max_length=500)) -> PostOut:
    reply = await caller.call(
        caller.clients.boards.DeletePost, boards_pb2.DeletePostRequest(post_id=post_id, reason=reason)
    )
    return post_out(reply.post)


class RevisionPage(BaseModel):
    items: list[RevisionOut]
    next_cursor: str | None


@router.get("/v1/posts/{post_id}/revisions", response_model=RevisionPage, summary="Earlier versions of a post")
async def revisions(
    post_id: str,
    caller: SignedIn,
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> RevisionPage:
    reply = await caller.call(
        caller.clients.boards.ListPostRevisions,
        boards_pb2.ListPostRevisionsRequest(post_id=post_id, page=page_request(cursor, page_size)),
    )
    items = [
        RevisionOut(
            version=r.version,
            title=r.title,
            body=r.body,
            image_refs=list(r.image_refs),
            tags=list(r.tags),
            edited_by=r.edited_by,
            edited_at=from_ts(r.edited_at),
        )
        for r in reply.revisions
    ]
    return RevisionPage(items=items, next_cursor=reply.page.next_cursor or None)


@router.put("/v1/posts/{post_id}/like", response_model=LikeOut, summary="Like a post (once per person)")
async def like_post(post_id: str, caller: SignedIn) -> LikeOut:
    reply = await caller.call(
        caller.clients.boards.SetPostLike, boards_pb2.SetPostLikeRequest(post_id=post_id, liked=True)
    )
    return LikeOut(like_count=reply.like_count, liked=reply.liked)


@router.delete("/v1/posts/{post_id}/like", response_model=LikeOut, summary="Take back a like")
async def unlike_post(post_id: str, caller: SignedIn) -> LikeOut:
    reply = await caller.call(
        caller.clients.boards.SetPostLike, boards_pb2.SetPostLikeRequest(post_id=post_id, liked=False)
    )
    return LikeOut(like_count=reply.like_count, liked=reply.liked)


@router.put("/v1/posts/{post_id}/pin", response_model=PostOut, summary="Pin or unpin a post (moderators)")
async def pin_post(post_id: str, body: PinIn, caller: SignedIn) -> PostOut:
    reply = await caller.call(
        caller.clients.boards.PinPost,
        boards_pb2.PinPostRequest(post_id=post_id, pinned=body.pinned, reason=body.reason),
    )
    return post_out(reply.post)


@router.put("/v1/posts/{post_id}/lock", response_model=PostOut, summary="Lock or reopen a thread (moderators)")
async def lock_post(post_id: str, body: LockIn, caller: SignedIn) -> PostOut:
    reply = await caller.call(
        caller.clients.boards.LockPost,
        boards_pb2.LockPostRequest(post_id=post_id, locked=body.locked, reason=body.reason),
    )
    return post_out(reply.post)
