"""Moderation: reports and the moderators' queue, hide/restore, pins and locks, mutes — every action
logged with its reason and shown to the person it concerns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import (
    BoardAccess,
    accesses,
    board_access,
    district_overrides,
    load_board,
    neighbourhood_office,
    neighbourhood_reader,
)
from shequtong_boards.domain import content
from shequtong_boards.domain import moderation as rules
from shequtong_boards.domain.content import COMMENT, DELETED, HIDDEN, POST, VISIBLE, time_key
from shequtong_boards.events import BoardsEvents
from shequtong_boards.models import Comment, ContentReport, ModerationLog, Post
from shequtong_boards.repository import (
    BoardRepository,
    CommentRepository,
    FeedVersionRepository,
    ModerationRepository,
    PostRepository,
)
from shequtong_boards.usecases.base import Context, Page, next_cursor
from shequtong_boards.views import Paged, ReportView, time_cursor
from shequtong_kit.auth import Principal
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from shequtong_kit.ids import new_id

MEMBER_TARGET = "member"


async def record_action(
    session: AsyncSession,
    events: BoardsEvents,
    action: str,
    target_type: str,
    target_id: str,
    post: Post | None,
    subject_person_id: str,
    actor: str,
    reason: str,
    now: datetime,
    *,
    neighbourhood_id: str | None = None,
    until: datetime | None = None,
) -> ModerationLog:
    row = ModerationLog(
        id=new_id(),
        action=action,
        target_type=target_type,
        target_id=target_id,
        post_id=post.id if post else None,
        board_id=post.board_id if post else None,
        neighbourhood_id=post.neighbourhood_id if post else neighbourhood_id,
        subject_person_id=subject_person_id,
        actor_id=actor,
        reason=reason,
        until=until,
        created_at=now,
    )
    await ModerationRepository(session).add(row)
    await events.moderation(session, row)
    return row


class ModerationUseCases:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def _target(
        self, session: AsyncSession, principal: Principal, target_type: str, target_id: str
    ) -> tuple[Post, Comment | None, BoardAccess]:
        comment = None
        if "\x00" in target_id or len(target_id) > 36:
            # a NUL byte cannot reach PostgreSQL (psycopg refuses it: a 500 found by the fuzz suite)
            raise InvalidArgument("the target id is malformed", code="target_id_invalid")
        if target_type == COMMENT:
            comment = await CommentRepository(session).get(target_id) if target_id else None
            if comment is None or comment.status == DELETED:
                raise NotFound("no such comment", code="comment_not_found")
            post_id = comment.post_id
        elif target_type == POST:
            post_id = target_id
        else:
            raise InvalidArgument("target must be a post or a comment", code="target_type_invalid")
        post = await PostRepository(session).get(post_id) if post_id else None
        if post is None or post.status == DELETED:
            raise NotFound("no such post", code="post_not_found")
        access = await board_access(session, principal, await load_board(session, post.board_id))
        access.require_read()
        return post, comment, access

    # --- reports ----------------------------------------------------------------------------------

    async def report(
        self, session: AsyncSession, principal: Principal, target_type: str, target_id: str, reason: str, note: str
    ) -> ReportView:
        reason, note = rules.validate_report(reason, note)
        post, comment, _ = await self._target(session, principal, target_type, target_id)
        item = comment or post
        if item.status != VISIBLE:
            raise NotFound("no such content", code=f"{target_type}_not_found")
        if item.author_id == principal.subject:
            raise FailedPrecondition("you cannot report your own content", code="report_own_content")
        repo = ModerationRepository(session)
        existing = await repo.report_by(target_type, item.id, principal.subject)
        if existing is not None:
            return ReportView(existing, _excerpt(post, comment))
        report = ContentReport(
            id=new_id(),
            target_type=target_type,
            target_id=item.id,
            post_id=post.id,
            board_id=post.board_id,
            neighbourhood_id=post.neighbourhood_id,
            district_id=post.district_id,
            reporter_id=principal.subject,
            reason=reason,
            note=note,
            status=rules.OPEN,
            created_at=self.ctx.clock.now(),
            resolution="",
        )
        await repo.add(report)
        return ReportView(report, _excerpt(post, comment))

    async def _moderated_boards(self, session: AsyncSession, principal: Principal, neighbourhood_id: str) -> list[str]:
        lineage = await neighbourhood_reader(session, principal, neighbourhood_id)
        repo = BoardRepository(session)
        overrides = await district_overrides(session, lineage.district_id)
        boards = await repo.of_neighbourhood(neighbourhood_id)
        ids = [a.board.id for a in await accesses(session, principal, boards, overrides) if a.perms.can_moderate]
        if not ids:
            raise PermissionDenied("only the board's moderators may do this", code="not_a_moderator")
        return ids

    async def list_reports(self, principal: Principal, neighbourhood_id: str, status: str, page: Page) -> Paged:
        """The queue: reports on the boards the caller moderates in this neighbourhood, oldest first."""
        after = time_key(page.cursor)
        async with self.ctx.sessions() as session:
            boards = await self._moderated_boards(session, principal, neighbourhood_id)
            rows = await ModerationRepository(session).reports(boards, status or rules.OPEN, after, page.size + 1)
            shown = rows[: page.size]
            views = []
            for report in shown:
                post = await PostRepository(session).get(report.post_id)
                comment = (
                    await CommentRepository(session).get(report.target_id) if report.target_type == COMMENT else None
                )
                views.append(ReportView(report, _excerpt(post, comment) if post else ""))
            key = time_cursor(shown[-1].created_at, shown[-1].id) if shown else None
            return Paged(items=list(views), next_cursor=next_cursor(list(rows), page.size, key))

    async def dismiss(self, principal: Principal, report_id: str, reason: str) -> ReportView:
        reason = content.validate_reason(reason)
        async with self.ctx.sessions() as session, session.begin():
            repo = ModerationRepository(session)
            report = await repo.report(report_id) if report_id else None
            if report is None:
                raise NotFound("no such report", code="report_not_found")
            access = await board_access(session, principal, await load_board(session, report.board_id))
            access.require_moderate()
            if report.status != rules.OPEN:
                raise FailedPrecondition("the report was already handled", code="report_not_open")
            report.status, report.resolved_by = rules.DISMISSED, principal.subject
            report.resolved_at, report.resolution = self.ctx.clock.now(), reason
            await session.flush()
            post = await PostRepository(session).get(report.post_id)
            comment = await CommentRepository(session).get(report.target_id) if report.target_type == COMMENT else None
            return ReportView(report, _excerpt(post, comment) if post else "")

    # --- acting on content ------------------------------------------------------------------------

    async def moderate(
        self, principal: Principal, target_type: str, target_id: str, action: str, reason: str
    ) -> ModerationLog:
        """Hide or restore a post or comment; hiding resolves its open reports."""
        reason = content.validate_reason(reason)
        if action not in (rules.HIDE, rules.RESTORE):
            raise InvalidArgument("the action must be hide or restore", code="moderation_action_invalid")
        async with self.ctx.sessions() as session, session.begin():
            post, comment, access = await self._target(session, principal, target_type, target_id)
            access.require_moderate()
            item: Post | Comment = comment or post
            new_status = rules.status_after(action, item.status)
            now = self.ctx.clock.now()
            item.status = new_status
            await session.flush()
            if comment is not None:
                await uncount(session, comment, -1 if new_status == HIDDEN else 1)
            else:
                await FeedVersionRepository(session).posts_changed(post)
            if action == rules.HIDE:
                await ModerationRepository(session).resolve_open(
                    target_type, item.id, principal.subject, now, f"hidden: {reason}"
                )
            return await record_action(
                session,
                self.ctx.events,
                action,
                target_type,
                item.id,
                post,
                item.author_id,
                principal.subject,
                reason,
                now,
            )

    async def pin(self, principal: Principal, post_id: str, pinned: bool, reason: str) -> Post:
        reason = content.validate_reason(reason, required=False)
        async with self.ctx.sessions() as session, session.begin():
            post, _, access = await self._target(session, principal, POST, post_id)
            access.require_moderate()
            if post.status != VISIBLE:
                raise FailedPrecondition("the post is hidden", code="post_hidden")
            if post.pinned != pinned:
                post.pinned = pinned
                await session.flush()
                await FeedVersionRepository(session).posts_changed(post)
                await record_action(
                    session,
                    self.ctx.events,
                    rules.PIN if pinned else rules.UNPIN,
                    POST,
                    post.id,
                    post,
                    post.author_id,
                    principal.subject,
                    reason,
                    self.ctx.clock.now(),
                )
            return post

    async def lock(self, principal: Principal, post_id: str, locked: bool, reason: str) -> Post:
        reason = content.validate_reason(reason)
        async with self.ctx.sessions() as session, session.begin():
            post, _, access = await self._target(session, principal, POST, post_id)
            access.require_moderate()
            if post.locked == locked:
                raise FailedPrecondition(
                    "the thread is already " + ("locked" if locked else "open"), code="post_lock_unchanged"
                )
            post.locked = locked
            await session.flush()
            await FeedVersionRepository(session).posts_changed(post)
            await record_action(
                session,
                self.ctx.events,
                rules.LOCK if locked else rules.UNLOCK,
                POST,
                post.id,
                post,
                post.author_id,
                principal.subject,
                reason,
                self.ctx.clock.now(),
            )
            return post

    # --- members ----------------------------------------------------------------------------------

    async def mute(
        self, principal: Principal, neighbourhood_id: str, person_id: str, minutes: int, reason: str
    ) -> ModerationLog:
        reason = content.validate_reason(reason)
        now = self.ctx.clock.now()
        until = rules.mute_until(now, minutes)
        if not person_id.strip():
            raise InvalidArgument("say whom to mute", code="person_required")
        if person_id == principal.subject:
            raise InvalidArgument("you cannot mute yourself", code="mute_self")
        async with self.ctx.sessions() as session, session.begin():
            await neighbourhood_office(session, principal, neighbourhood_id)
            await ModerationRepository(session).put_mute(
                {
                    "neighbourhood_id": neighbourhood_id,
                    "person_id": person_id,
                    "until": until,
                    "reason": reason,
                    "muted_by": principal.subject,
                }
            )
            return await record_action(
                session,
                self.ctx.events,
                rules.MUTE,
                MEMBER_TARGET,
                person_id,
                None,
                person_id,
                principal.subject,
                reason,
                now,
                neighbourhood_id=neighbourhood_id,
                until=until,
            )

    async def unmute(self, principal: Principal, neighbourhood_id: str, person_id: str, reason: str) -> ModerationLog:
        reason = content.validate_reason(reason)
        async with self.ctx.sessions() as session, session.begin():
            await neighbourhood_office(session, principal, neighbourhood_id)
            if not await ModerationRepository(session).remove_mute(neighbourhood_id, person_id):
                raise FailedPrecondition("the member is not muted", code="member_not_muted")
            return await record_action(
                session,
                self.ctx.events,
                rules.UNMUTE,
                MEMBER_TARGET,
                person_id,
                None,
                person_id,
                principal.subject,
                reason,
                self.ctx.clock.now(),
                neighbourhood_id=neighbourhood_id,
            )

    # --- the log ----------------------------------------------------------------------------------

    async def actions(self, principal: Principal, neighbourhood_id: str, page: Page) -> Paged:
        before = time_key(page.cursor)
        async with self.ctx.sessions() as session:
            await self._moderated_boards(session, principal, neighbourhood_id)
            rows = await ModerationRepository(session).actions(
                neighbourhood_id=neighbourhood_id, before=before, limit=page.size + 1
            )
        return _log_page(rows, page.size)

    async def my_notices(self, principal: Principal, page: Page) -> Paged:
        before = time_key(page.cursor)
        async with self.ctx.sessions() as session:
            rows = await ModerationRepository(session).actions(
                subject_person_id=principal.subject, before=before, limit=page.size + 1
            )
        return _log_page(rows, page.size)


def _log_page(rows: list[ModerationLog], size: int) -> Paged:
    shown = rows[:size]
    key = time_cursor(shown[-1].created_at, shown[-1].id) if shown else None
    return Paged(items=list(shown), next_cursor=next_cursor(list(rows), size, key))


def _excerpt(post: Post, comment: Comment | None) -> str:
    return content.excerpt(comment.body if comment else f"{post.title} {post.body}")


async def uncount(session: AsyncSession, comment: Comment, delta: int) -> None:
    """Keeps the post's and the parent's counters to visible comments when one is hidden, restored or deleted."""
    await PostRepository(session).bump(
        comment.post_id,
        comment_count=delta,
        **({"official_answer_count": delta} if comment.kind == content.OFFICIAL_COMMENT else {}),
    )
    if comment.parent_id:
        await CommentRepository(session).bump(comment.parent_id, reply_count=delta)
