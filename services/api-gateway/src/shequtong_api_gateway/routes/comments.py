"""Comments (留言) on posts: one level deep, replies point at a top-level comment; official answers."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import BaseModel, Field

from shequtong.boards.v1 import boards_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.posts import (
    STATUSES,
    AuthorOut,
    LikeOut,
    MentionOut,
    Status,
    author_out,
    mention_out,
    page_request,
)
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["comments"])

Kind = Literal["member", "official", "system"]
KINDS: dict[int, Kind] = {
    boards_pb2.COMMENT_KIND_MEMBER: "member",
    boards_pb2.COMMENT_KIND_OFFICIAL: "official",
    boards_pb2.COMMENT_KIND_SYSTEM: "system",
}


class CommentIn(BaseModel):
    body: str = Field(min_length=1, max_length=2000, examples=["已联系物业，明天上午维修"])
    parent_id: str | None = Field(default=None, max_length=36, description="Reply to this comment")
    mention_person_ids: list[str] = Field(default_factory=list, max_length=20)
    official_answer: bool = Field(default=False, description="An official answer by the board's responder")


class CommentEdit(BaseModel):
    body: str = Field(min_length=1, max_length=2000)
    expected_version: int | None = Field(default=None, ge=1, le=2_147_483_647)


class CommentOut(BaseModel):
    id: str
    post_id: str
    parent_id: str | None
    author: AuthorOut
    body: str
    kind: Kind
    status: Status
    mentions: list[MentionOut]
    like_count: int
    reply_count: int
    liked_by_me: bool
    version: int
    created_at: datetime | None
    edited_at: datetime | None


class CommentPage(BaseModel):
    items: list[CommentOut]
    next_cursor: str | None


def comment_out(c: boards_pb2.Comment) -> CommentOut:
    return CommentOut(
        id=c.id,
        post_id=c.post_id,
        parent_id=c.parent_id or None,
        author=author_out(c.author),
        body=c.body,
        kind=KINDS.get(c.kind, "member"),
        status=STATUSES.get(c.status, "visible"),
        mentions=[mention_out(m) for m in c.mentions],
        like_count=c.like_count,
        reply_count=c.reply_count,
        liked_by_me=c.liked_by_me,
        version=c.version,
        created_at=from_ts(c.created_at),
        edited_at=from_ts(c.edited_at),
    )


@router.post("/v1/posts/{post_id}/comments", status_code=201, response_model=CommentOut, summary="Comment or reply")
async def create_comment(post_id: str, body: CommentIn, caller: SignedIn) -> CommentOut:
    reply = await caller.call(
        caller.clients.boards.CreateComment,
        boards_pb2.CreateCommentRequest(
            post_id=post_id,
            parent_id=body.parent_id or "",
            body=body.body,
            mention_person_ids=body.mention_person_ids,
            official_answer=body.official_answer,
        ),
    )
    return comment_out(reply.comment)


@router.get(
    "/v1/posts/{post_id}/comments",
    response_model=CommentPage,
    summary="Top-level comments, oldest first (or a comment's replies with parent_id)",
)
async def list_comments(
    post_id: str,
    caller: SignedIn,
    parent_id: str | None = Query(default=None, max_length=36),
    cursor: str | None = Query(default=None, max_length=400),
    page_size: int = Query(default=20, ge=1, le=100),
) -> CommentPage:
    reply = await caller.call(
        caller.clients.boards.ListComments,
        boards_pb2.ListCommentsRequest(
            post_id=post_id, parent_id=parent_id or "", page=page_request(cursor, page_size)
        ),
    )
    return CommentPage(items=[comment_out(c) for c in reply.comments], next_cursor=reply.page.next_cursor or None)


@router.patch("/v1/comments/{comment_id}", response_model=CommentOut, summary="Edit your comment")
async def edit_comment(comment_id: str, body: CommentEdit, caller: SignedIn) -> CommentOut:
    reply = await caller.call(
        caller.clients.boards.EditComment,
        boards_pb2.EditCommentRequest(
            comment_id=comment_id, body=body.body, expected_version=body.expected_version or 0
        ),
    )
    return comment_out(reply.comment)


@router.delete("/v1/comments/{comment_id}", response_model=CommentOut, summary="Delete a comment")
async def delete_comment(
    comment_id: str, caller: SignedIn, reason: str = Query(default="", max_length=500)
) -> CommentOut:
    reply = await caller.call(
        caller.clients.boards.DeleteComment, boards_pb2.DeleteCommentRequest(comment_id=comment_id, reason=reason)
    )
    return comment_out(reply.comment)


@router.put("/v1/comments/{comment_id}/like", response_model=LikeOut, summary="Like a comment")
async def like_comment(comment_id: str, caller: SignedIn) -> LikeOut:
    reply = await caller.call(
        caller.clients.boards.SetCommentLike, boards_pb2.SetCommentLikeRequest(comment_id=comment_id, liked=True)
    )
    return LikeOut(like_count=reply.like_count, liked=reply.liked)


@router.delete("/v1/comments/{comment_id}/like", response_model=LikeOut, summary="Take back a like")
async def unlike_comment(comment_id: str, caller: SignedIn) -> LikeOut:
    reply = await caller.call(
        caller.clients.boards.SetCommentLike, boards_pb2.SetCommentLikeRequest(comment_id=comment_id, liked=False)
    )
    return LikeOut(like_count=reply.like_count, liked=reply.liked)
