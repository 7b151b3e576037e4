"""Boards' outgoing events (subjects `boards.<aggregate>.<event>`), written into the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import boards_events_pb2 as ev
from shequtong_boards.models import AffairRow, Comment, ConventionRow, ModerationLog, Poll, Post, Topic
from shequtong_kit import packs
from shequtong_kit.outbox import Outbox, packed
from shequtong_kit.proto import ts

POST_CREATED = "boards.post.created"
POST_EDITED = "boards.post.edited"
POST_DELETED = "boards.post.deleted"
COMMENT_CREATED = "boards.comment.created"
MENTION_CREATED = "boards.mention.created"
MODERATION_ACTION = "boards.moderation.action_taken"
POLL_CREATED = "boards.poll.created"
VOTE_CAST = "boards.poll.voted"
TOPIC_STAGE_CHANGED = "boards.topic.stage_changed"
CONVENTION_ADOPTED = "boards.convention.adopted"
AFFAIR_STAGE_CHANGED = "boards.affair.stage_changed"
# Historic posts and comments an import wrote: their created events packed together (kit `outbox.packed`).
POSTS_IMPORTED = packs.POSTS_IMPORTED
COMMENTS_IMPORTED = packs.COMMENTS_IMPORTED


# --- message builders (shared by the per-item path and the imports' batched outbox rows) -----------


def post_created_message(post: Post, mentioned: Sequence[str], handles: Sequence[str]) -> ev.PostCreated:
    return ev.PostCreated(
        post_id=post.id,
        board_id=post.board_id,
        board_kind=post.board_kind,
        neighbourhood_id=post.neighbourhood_id or "",
        author_id=post.author_id,
        title=post.title,
        body=post.body,
        image_urls=list(post.image_refs),
        mentioned_person_ids=list(mentioned),
        mentioned_roles=list(handles),
        mentions_committee="committee" in handles,
        created_at=ts(post.created_at),
    )


def comment_created_message(comment: Comment, board_kind: str, mentioned: Sequence[str]) -> ev.CommentCreated:
    return ev.CommentCreated(
        comment_id=comment.id,
        post_id=comment.post_id,
        parent_id=comment.parent_id or "",
        board_id=comment.board_id,
        board_kind=board_kind,
        neighbourhood_id=comment.neighbourhood_id or "",
        author_id=comment.author_id,
        kind=comment.kind,
        mentioned_person_ids=list(mentioned),
        created_at=ts(comment.created_at),
    )


def posts_imported_messages(items: Sequence[ev.PostCreated]) -> list[tuple[str, Message]]:
    return [(POSTS_IMPORTED, ev.PostsImported(posts=chunk)) for chunk in packed(items)]


def comments_imported_messages(items: Sequence[ev.CommentCreated]) -> list[tuple[str, Message]]:
    return [(COMMENTS_IMPORTED, ev.CommentsImported(comments=chunk)) for chunk in packed(items)]


def topic_stage_changed_message(
    topic: Topic, from_stage: str, actor: str, reason: str, when: datetime
) -> ev.TopicStageChanged:
    return ev.TopicStageChanged(
        topic_id=topic.id,
        neighbourhood_id=topic.neighbourhood_id,
        from_stage=from_stage,
        to_stage=topic.stage,
        actor_id=actor,
        reason=reason,
        title=topic.title,
        occurred_at=ts(when),
    )


def convention_adopted_message(
    convention: ConventionRow, version: int, poll_id: str, actor: str, when: datetime
) -> ev.ConventionAdopted:
    return ev.ConventionAdopted(
        convention_id=convention.id,
        neighbourhood_id=convention.neighbourhood_id,
        topic_id=convention.topic_id,
        title=convention.title,
        version=version,
        poll_id=poll_id,
        adopted_by=actor,
        adopted_at=ts(when),
    )


class BoardsEvents:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def post_created(
        self, session: AsyncSession, post: Post, mentioned: Sequence[str], handles: Sequence[str]
    ) -> None:
        await self.outbox.add(session, POST_CREATED, post_created_message(post, mentioned, handles))

    async def post_edited(self, session: AsyncSession, post: Post, editor: str) -> None:
        await self.outbox.add(
            session,
            POST_EDITED,
            ev.PostEdited(
                post_id=post.id,
                board_id=post.board_id,
                neighbourhood_id=post.neighbourhood_id or "",
                editor_id=editor,
                version=post.version,
                edited_at=ts(post.edited_at),
            ),
        )

    async def post_deleted(self, session: AsyncSession, post: Post, actor: str) -> None:
        await self.outbox.add(
            session,
            POST_DELETED,
            ev.PostDeleted(
                post_id=post.id,
                board_id=post.board_id,
                neighbourhood_id=post.neighbourhood_id or "",
                deleted_by=actor,
                deleted_at=ts(post.deleted_at),
            ),
        )

    async def comment_created(
        self, session: AsyncSession, comment: Comment, board_kind: str, mentioned: Sequence[str]
    ) -> None:
        await self.outbox.add(session, COMMENT_CREATED, comment_created_message(comment, board_kind, mentioned))

    async def mentioned(
        self,
        session: AsyncSession,
        person_id: str,
        neighbourhood_id: str,
        post_id: str,
        comment_id: str,
        by: str,
        via: str,
        when: datetime,
    ) -> None:
        await self.outbox.add(
            session,
            MENTION_CREATED,
            ev.PersonMentioned(
                person_id=person_id,
                neighbourhood_id=neighbourhood_id,
                post_id=post_id,
                comment_id=comment_id,
                mentioned_by=by,
                via_handle=via,
                created_at=ts(when),
            ),
        )

    async def moderation(self, session: AsyncSession, row: ModerationLog) -> None:
        await self.outbox.add(
            session,
            MODERATION_ACTION,
            ev.ModerationActionTaken(
                action_id=row.id,
                action=row.action,
                target_type=row.target_type,
                target_id=row.target_id,
                neighbourhood_id=row.neighbourhood_id or "",
                subject_person_id=row.subject_person_id,
                actor_id=row.actor_id,
                reason=row.reason,
                occurred_at=ts(row.created_at),
            ),
        )

    async def poll_created(self, session: AsyncSession, poll: Poll) -> None:
        await self.outbox.add(
            session,
            POLL_CREATED,
            ev.PollCreated(
                poll_id=poll.id,
                post_id=poll.post_id,
                neighbourhood_id=poll.neighbourhood_id or "",
                topic_id=poll.topic_id or "",
                basis=poll.basis,
                opens_at=ts(poll.opens_at),
                closes_at=ts(poll.closes_at),
            ),
        )

    async def vote_cast(
        self, session: AsyncSession, poll: Poll, person_id: str, household_id: str | None, when: datetime
    ) -> None:
        await self.outbox.add(
            session,
            VOTE_CAST,
            ev.VoteCast(
                poll_id=poll.id,
                neighbourhood_id=poll.neighbourhood_id or "",
                person_id=person_id,
                household_id=household_id or "",
                cast_at=ts(when),
            ),
        )

    async def topic_stage_changed(
        self, session: AsyncSession, topic: Topic, from_stage: str, actor: str, reason: str, when: datetime
    ) -> None:
        await self.outbox.add(
            session, TOPIC_STAGE_CHANGED, topic_stage_changed_message(topic, from_stage, actor, reason, when)
        )

    async def convention_adopted(
        self, session: AsyncSession, convention: ConventionRow, version: int, poll_id: str, actor: str, when: datetime
    ) -> None:
        await self.outbox.add(
            session, CONVENTION_ADOPTED, convention_adopted_message(convention, version, poll_id, actor, when)
        )

    async def affair_stage_changed(
        self, session: AsyncSession, affair: AffairRow, from_stage: str, actor: str, note: str, when: datetime
    ) -> None:
        await self.outbox.add(
            session,
            AFFAIR_STAGE_CHANGED,
            ev.AffairStageChanged(
                affair_id=affair.id,
                neighbourhood_id=affair.neighbourhood_id,
                kind=affair.kind,
                from_stage=from_stage,
                to_stage=affair.stage,
                actor_id=actor,
                note=note,
                occurred_at=ts(when),
            ),
        )
