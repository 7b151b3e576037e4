"""Posts, comments, mentions, likes and feeds."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import BoardAccess, access_to, accesses, board_access, load_board
from shequtong_boards.cache import FeedPage
from shequtong_boards.domain import catalogue, content
from shequtong_boards.domain import moderation as rules
from shequtong_boards.domain.content import (
    COMMENT,
    DELETED,
    HIDDEN,
    PEOPLE_PLACE,
    POST,
    VISIBLE,
    FeedKey,
    PostDraft,
    feed_key,
    feed_place,
    handles_in,
    roles_for_handles,
    time_key,
)
from shequtong_boards.models import Board, Comment, Post, Revision
from shequtong_boards.repository import (
    CommentRepository,
    FeedScope,
    FeedVersionRepository,
    LikeRepository,
    MentionRepository,
    ModerationRepository,
    PageVersions,
    PeopleRepository,
    PostRepository,
)
from shequtong_boards.usecases.base import Context, Page, next_cursor
from shequtong_boards.usecases.moderation import record_action, uncount
from shequtong_boards.views import SYSTEM_AUTHOR, CommentView, Paged, PostView, comment_views, post_views, time_cursor
from shequtong_kit import regions
from shequtong_kit.auth import Principal
from shequtong_kit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from shequtong_kit.ids import new_id


@dataclass(frozen=True)
class ResolvedMentions:
    handles: tuple[str, ...]
    # (person id, the handle it came from or "" for a direct mention), the author excluded.
    people: tuple[tuple[str, str], ...]


async def resolve_mentions(
    session: AsyncSession,
    neighbourhood_id: str | None,
    district_id: str | None,
    text: str,
    direct: Sequence[str],
    author_id: str,
) -> ResolvedMentions:
    """Role handles in the text become whoever holds the role in the neighbourhood; people picked by id
    must be known in the neighbourhood (or district, for district boards)."""
    people = PeopleRepository(session)
    handles = tuple(handles_in(text)) if neighbourhood_id else ()
    found: dict[str, str] = {}
    if direct:
        known = await people.known_people(direct, neighbourhood_id=neighbourhood_id, district_id=district_id)
        unknown = [pid for pid in direct if pid not in known]
        if unknown:
            raise InvalidArgument(
                "a mentioned person is not a member here", code="mention_not_member", count=len(unknown)
            )
        found.update({pid: "" for pid in direct})
    for handle in handles:
        for holder in await people.holders(f"n:{neighbourhood_id}", roles_for_handles([handle])):
            found.setdefault(holder.person_id, handle)
    found.pop(author_id, None)
    return ResolvedMentions(handles, tuple(found.items()))


async def ensure_not_muted(session: AsyncSession, neighbourhood_id: str | None, person: str, now: datetime) -> None:
    if not neighbourhood_id:
        return
    mute = await ModerationRepository(session).mute(neighbourhood_id, person)
    if mute is not None and rules.is_muted(mute.until, now):
        raise PermissionDenied(
            "you are muted in this neighbourhood for now", code="member_muted", until=mute.until.isoformat()
        )


class PostUseCases:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- writing ----------------------------------------------------------------------------------

    async def insert_post(
        self,
        session: AsyncSession,
        board: Board,
        author_id: str,
        draft: PostDraft,
        *,
        topic_id: str | None = None,
        affair_id: str | None = None,
    ) -> Post:
        """The post, its mentions and their events, in the caller's transaction."""
        now = self.ctx.clock.now()
        mentions = await resolve_mentions(
            session,
            board.neighbourhood_id,
            board.district_id,
            f"{draft.title}\n{draft.body}",
            draft.mention_person_ids,
            author_id,
        )
        post = Post(
            id=new_id(),
            board_id=board.id,
            board_kind=board.kind,
            neighbourhood_id=board.neighbourhood_id,
            district_id=board.district_id or "",
            author_id=author_id,
            title=draft.title,
            body=draft.body,
            image_refs=list(draft.image_refs),
            tags=list(draft.tags),
            mentioned_handles=list(mentions.handles),
            status=VISIBLE,
            pinned=False,
            locked=False,
            like_count=0,
            comment_count=0,
            official_answer_count=0,
            version=1,
            topic_id=topic_id,
            affair_id=affair_id,
            created_at=now,
        )
        await PostRepository(session).add(post)
        await FeedVersionRepository(session).posts_changed(post)
        await self.record_mentions(session, post, None, mentions.people, author_id, now)
        await self.ctx.events.post_created(session, post, [pid for pid, _ in mentions.people], mentions.handles)
        return post

    async def record_mentions(
        self,
        session: AsyncSession,
        post: Post,
        comment: Comment | None,
        people: Sequence[tuple[str, str]],
        by: str,
        now: datetime,
    ) -> list[str]:
        repo = MentionRepository(session)
        added = []
        for person_id, via in people:
            inserted = await repo.add(
                {
                    "id": new_id(),
                    "target_type": COMMENT if comment else POST,
                    "target_id": comment.id if comment else post.id,
                    "post_id": post.id,
                    "person_id": person_id,
                    "via_handle": via,
                    "created_at": now,
                }
            )
            if inserted:
                added.append(person_id)
                await self.ctx.events.mentioned(
                    session,
                    person_id,
                    post.neighbourhood_id or "",
                    post.id,
                    comment.id if comment else "",
                    by,
                    via,
                    now,
                )
        return added

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        board_id: str,
        title: str,
        body: str,
        image_refs: Sequence[str],
        tags: Sequence[str],
        mention_ids: Sequence[str],
    ) -> PostView:
        draft = content.validate_post(title, body, image_refs, tags, mention_ids)
        access = await access_to(session, principal, board_id)
        access.require_post()
        await ensure_not_muted(session, access.board.neighbourhood_id, principal.subject, self.ctx.clock.now())
        post = await self.insert_post(session, access.board, principal.subject, draft)
        return (await post_views(session, [post], principal.subject))[0]

    async def readable_post(
        self, session: AsyncSession, principal: Principal, post_id: str, for_update: bool = False
    ) -> tuple[Post, BoardAccess]:
        """The post if the caller may see it: visible to readers; hidden only to its author and moderators."""
        posts = PostRepository(session)
        post: Post | None = None
        version = None  # a writer's post is locked first; its catalogue version is read after
        if for_update and post_id:
            post = await posts.get(post_id, for_update=True)
        elif post_id:
            post, version = await posts.get_with_catalogue_version(post_id) or (None, None)
        if post is None or post.status == DELETED:
            raise NotFound("no such post", code="post_not_found")
        kept = await self.ctx.catalogues.board(session, post.board_id, post.neighbourhood_id, post.district_id, version)
        if kept is None:  # the post's place and its board's disagree: read the board itself
            access = await board_access(session, principal, await load_board(session, post.board_id))
        else:
            access = await board_access(session, principal, *kept)
        access.require_read()
        if post.status == HIDDEN and not (post.author_id == principal.subject or access.perms.can_moderate):
            raise NotFound("no such post", code="post_not_found")
        return post, access

    async def get(self, principal: Principal, post_id: str) -> PostView:
        async with self.ctx.reads() as session:
            post, _ = await self.readable_post(session, principal, post_id)
            return (await post_views(session, [post], principal.subject))[0]

    async def edit(
        self,
        principal: Principal,
        post_id: str,
        title: str,
        body: str,
        image_refs: Sequence[str],
        tags: Sequence[str],
        mention_ids: Sequence[str],
        expected_version: int,
    ) -> PostView:
        draft = content.validate_post(title, body, image_refs, tags, mention_ids)
        async with self.ctx.sessions() as session, session.begin():
            post, _ = await self.readable_post(session, principal, post_id, for_update=True)
            if post.author_id != principal.subject:
                raise PermissionDenied("only the author edits a post", code="not_the_author")
            if post.status != VISIBLE:
                raise FailedPrecondition("a hidden post cannot be edited", code="post_hidden")
            if expected_version and expected_version != post.version:
                raise Conflict("the post changed since you opened it", code="post_version_conflict")
            now = self.ctx.clock.now()
            await ensure_not_muted(session, post.neighbourhood_id, principal.subject, now)
            repo = PostRepository(session)
            await repo.add_revision(
                Revision(
                    id=new_id(),
                    target_type=POST,
                    target_id=post.id,
                    version=post.version,
                    title=post.title,
                    body=post.body,
                    image_refs=list(post.image_refs),
                    tags=list(post.tags),
                    edited_by=principal.subject,
                    edited_at=now,
                )
            )
            mentions = await resolve_mentions(
                session,
                post.neighbourhood_id,
                post.district_id,
                f"{draft.title}\n{draft.body}",
                draft.mention_person_ids,
                principal.subject,
            )
            post.title, post.body = draft.title, draft.body
            post.image_refs, post.tags = list(draft.image_refs), list(draft.tags)
            post.mentioned_handles = sorted(set(post.mentioned_handles) | set(mentions.handles))
            post.version += 1
            post.edited_at = now
            await session.flush()
            await FeedVersionRepository(session).posts_changed(post)
            await self.record_mentions(session, post, None, mentions.people, principal.subject, now)
            await self.ctx.events.post_edited(session, post, principal.subject)
            return (await post_views(session, [post], principal.subject))[0]

    async def delete(self, principal: Principal, post_id: str, reason: str) -> PostView:
        async with self.ctx.sessions() as session, session.begin():
            post, access = await self.readable_post(session, principal, post_id, for_update=True)
            own = post.author_id == principal.subject
            if not own:
                access.require_moderate()
            reason = content.validate_reason(reason, required=not own)
            now = self.ctx.clock.now()
            post.status, post.deleted_at, post.deleted_by = DELETED, now, principal.subject
            await session.flush()
            await FeedVersionRepository(session).posts_changed(post)
            if not own:
                await record_action(
                    session,
                    self.ctx.events,
                    rules.DELETE,
                    POST,
                    post.id,
                    post,
                    post.author_id,
                    principal.subject,
                    reason,
                    now,
                )
            await self.ctx.events.post_deleted(session, post, principal.subject)
            return (await post_views(session, [post], principal.subject))[0]

    async def revisions(self, principal: Principal, post_id: str, page: Page) -> Paged:
        raw = page.cursor
        if raw is not None and (len(raw) != 1 or not isinstance(raw[0], int)):
            raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
        after = int(raw[0]) if raw else 0
        async with self.ctx.reads() as session:
            await self.readable_post(session, principal, post_id)
            rows = await PostRepository(session).revisions(POST, post_id, after, page.size + 1)
        shown = rows[: page.size]
        key: list[object] | None = [shown[-1].version] if shown else None
        return Paged(items=list(shown), next_cursor=next_cursor(list(rows), page.size, key))

    async def set_like(self, principal: Principal, post_id: str, liked: bool) -> tuple[int, bool]:
        person = principal.person_id
        async with self.ctx.sessions() as session, session.begin():
            post, _ = await self.readable_post(session, principal, post_id)
            if post.status != VISIBLE:
                raise FailedPrecondition("the post is hidden", code="post_hidden")
            likes, posts = LikeRepository(session), PostRepository(session)
            if liked and await likes.like(POST, post.id, person, self.ctx.clock.now()):
                await posts.bump(post.id, like_count=1)
            elif not liked and await likes.unlike(POST, post.id, person):
                await posts.bump(post.id, like_count=-1)
            return await posts.counter(post.id, "like_count"), liked

    # --- feeds ------------------------------------------------------------------------------------

    async def board_feed(self, principal: Principal, board_id: str, page: Page) -> Paged:
        after = feed_key(page.cursor)
        async with self.ctx.reads() as session:
            board, overrides, versions = await self._feed_board(session, board_id)
            access = await board_access(session, principal, board, overrides)
            access.require_read()
            return await self._feed_page(
                session,
                principal,
                ("board", board_id, page.size) if after is None else None,
                versions.places,
                lambda: PostRepository(session).board_feed(board_id, after, page.size + 1),
                page.size,
            )

    async def _feed_board(
        self, session: AsyncSession, board_id: str
    ) -> tuple[Board, dict[str, catalogue.BoardKind], PageVersions]:
        """The board, its district's overrides and its feed's versions. Where a board sits never changes:
        once this process has seen it, the versions are read first and the board comes from the catalogue
        kept at the version read, without loading the board on every page (an eighth of boards' CPU on a
        kept board page)."""
        catalogues = self.ctx.catalogues
        place = catalogues.place_of(board_id)
        if place is not None:
            neighbourhood_id, district_id = place
            versions = await FeedVersionRepository(session).read(
                district_id, (PEOPLE_PLACE, feed_place(neighbourhood_id, district_id))
            )
            kept = await catalogues.board(session, board_id, neighbourhood_id, district_id, versions.catalogue)
            if kept is not None:
                return kept[0], kept[1], versions
        board = await load_board(session, board_id)
        district_id = board.district_id or ""
        versions = await FeedVersionRepository(session).read(
            district_id, (PEOPLE_PLACE, feed_place(board.neighbourhood_id, district_id))
        )
        catalogues.learn_place(board)
        return board, await catalogues.overrides(session, district_id, versions.catalogue), versions

    async def home_feed(self, principal: Principal, neighbourhood_id: str, page: Page) -> Paged:
        """Every board of the neighbourhood and of its district that the caller reads: pinned first, then
        newest. Two keyset scans (neighbourhood, district) in one statement, each on its own partial index."""
        after = feed_key(page.cursor)
        async with self.ctx.reads() as session:
            lineage = await regions.lineage(session, neighbourhood_id)
            district_id = lineage.district_id
            versions = await FeedVersionRepository(session).read(
                district_id, (PEOPLE_PLACE, feed_place(neighbourhood_id, district_id), feed_place(None, district_id))
            )
            catalogues = self.ctx.catalogues
            found = await catalogues.of_neighbourhood(session, neighbourhood_id, district_id, versions.catalogue)
            local, district = found.local, found.district
            readable = {
                a.board.id
                for a in await accesses(session, principal, found.boards, found.overrides)
                if a.perms.can_read
            }
            if not readable:
                raise PermissionDenied("not a member of this neighbourhood", code="not_a_member")
            local_ids = tuple(b.id for b in local if b.id in readable)
            district_ids = tuple(b.id for b in district if b.id in readable)
            return await self._feed_page(
                session,
                principal,
                ("home", neighbourhood_id, local_ids, district_ids, page.size) if after is None else None,
                versions.places,
                lambda: PostRepository(session).home_feed(
                    _scope(neighbourhood_id, local_ids, len(local)),
                    _scope(district_id, district_ids, len(district)),
                    after,
                    page.size + 1,
                ),
                page.size,
            )

    async def _feed_page(
        self,
        session: AsyncSession,
        principal: Principal,
        first_page: Hashable | None,
        versions: tuple[int, ...],
        rows: Callable[[], Awaitable[list[Post]]],
        size: int,
    ) -> Paged:
        """A first page (`first_page` its key) from this process's cache when its places have not moved
        since it was built, its counters and the caller's likes read again; any other page from the
        database. `versions` were read before anything the page shows."""
        if first_page is None:
            return await self._page(session, principal, await rows(), size)
        cached = self.ctx.feed_pages.get(first_page, versions)
        if cached is None:
            paged = await self._page(session, principal, await rows(), size)
            views = tuple(replace(view, liked_by_me=False) for view in paged.items)
            self.ctx.feed_pages.keep(first_page, FeedPage(versions, views, paged.next_cursor))
            return paged
        live = await PostRepository(session).live_counts([view.post.id for view in cached.views], principal.subject)
        return Paged(
            items=[
                replace(view, counts=live[view.post.id], liked_by_me=live[view.post.id].liked)
                for view in cached.views
                if view.post.id in live
            ],
            next_cursor=cached.next_cursor,
        )

    async def _page(self, session: AsyncSession, principal: Principal, rows: list[Post], size: int) -> Paged:
        shown = rows[:size]
        last = shown[-1] if shown else None
        key = FeedKey(last.pinned, last.created_at, last.id).encode() if last else None
        return Paged(
            items=list(await post_views(session, shown, principal.subject)),
            next_cursor=next_cursor(list(rows), size, key),
        )


async def add_system_comment(
    ctx: Context,
    session: AsyncSession,
    post: Post,
    body: str,
    *,
    source_event_id: str | None = None,
) -> Comment | None:
    """A reply written by the platform (issue status, stage changes); once per source event."""
    comments = CommentRepository(session)
    if source_event_id and await comments.by_source_event(source_event_id) is not None:
        return None
    now = ctx.clock.now()
    comment = Comment(
        id=new_id(),
        post_id=post.id,
        parent_id=None,
        board_id=post.board_id,
        neighbourhood_id=post.neighbourhood_id,
        author_id=SYSTEM_AUTHOR,
        body=body[: content.COMMENT_BODY_MAX],
        kind=content.SYSTEM_COMMENT,
        status=VISIBLE,
        like_count=0,
        reply_count=0,
        version=1,
        source_event_id=source_event_id,
        created_at=now,
    )
    await comments.add(comment)
    await PostRepository(session).bump(post.id, comment_count=1)
    await ctx.events.comment_created(session, comment, post.board_kind, [])
    return comment


class CommentUseCases:
    def __init__(self, ctx: Context, posts: PostUseCases) -> None:
        self.ctx = ctx
        self.posts = posts

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        post_id: str,
        parent_id: str,
        body: str,
        mention_ids: Sequence[str],
        official: bool,
    ) -> CommentView:
        text = content.validate_comment_body(body)
        direct = content.mention_ids(mention_ids)
        post, access = await self.posts.readable_post(session, principal, post_id)
        if post.status != VISIBLE:
            raise FailedPrecondition("the post is hidden", code="post_hidden")
        if official:
            access.require_answer()
        else:
            access.require_comment()
        if post.locked and not access.perms.can_moderate:
            raise FailedPrecondition("the thread is locked", code="post_locked")
        now = self.ctx.clock.now()
        await ensure_not_muted(session, post.neighbourhood_id, principal.subject, now)
        comments = CommentRepository(session)
        top: Comment | None = None
        if parent_id:
            parent = await comments.get(parent_id)
            if parent is None or parent.post_id != post.id or parent.status != VISIBLE:
                raise NotFound("no such comment on this post", code="comment_not_found")
            top = await comments.get(parent.parent_id) if parent.parent_id else parent
            if top is None or top.status != VISIBLE:
                raise NotFound("no such comment on this post", code="comment_not_found")
        mentions = await resolve_mentions(
            session, post.neighbourhood_id, post.district_id, text, direct, principal.subject
        )
        comment = Comment(
            id=new_id(),
            post_id=post.id,
            parent_id=top.id if top else None,
            board_id=post.board_id,
            neighbourhood_id=post.neighbourhood_id,
            author_id=principal.subject,
            body=text,
            kind=content.OFFICIAL_COMMENT if official else content.MEMBER_COMMENT,
            status=VISIBLE,
            like_count=0,
            reply_count=0,
            version=1,
            created_at=now,
        )
        await comments.add(comment)
        await PostRepository(session).bump(
            post.id, comment_count=1, **({"official_answer_count": 1} if official else {})
        )
        if top is not None:
            await comments.bump(top.id, reply_count=1)
        people = await self.posts.record_mentions(session, post, comment, mentions.people, principal.subject, now)
        await self.ctx.events.comment_created(session, comment, post.board_kind, people)
        return (await comment_views(session, [comment], principal.subject, post.district_id))[0]

    async def _own_comment(
        self, session: AsyncSession, principal: Principal, comment_id: str
    ) -> tuple[Comment, Post, BoardAccess]:
        comment = await CommentRepository(session).get(comment_id) if comment_id else None
        if comment is None or comment.status == DELETED:
            raise NotFound("no such comment", code="comment_not_found")
        post, access = await self.posts.readable_post(session, principal, comment.post_id)
        if comment.status == HIDDEN and not (comment.author_id == principal.subject or access.perms.can_moderate):
            raise NotFound("no such comment", code="comment_not_found")
        return comment, post, access

    async def list_comments(self, principal: Principal, post_id: str, parent_id: str, page: Page) -> Paged:
        after = time_key(page.cursor)
        async with self.ctx.reads() as session:
            post, _ = await self.posts.readable_post(session, principal, post_id)
            rows = await CommentRepository(session).thread(post.id, parent_id or None, after, page.size + 1)
            shown = rows[: page.size]
            key = time_cursor(shown[-1].created_at, shown[-1].id) if shown else None
            return Paged(
                items=list(await comment_views(session, shown, principal.subject, post.district_id)),
                next_cursor=next_cursor(list(rows), page.size, key),
            )

    async def edit(self, principal: Principal, comment_id: str, body: str, expected_version: int) -> CommentView:
        text = content.validate_comment_body(body)
        async with self.ctx.sessions() as session, session.begin():
            comment, post, _ = await self._own_comment(session, principal, comment_id)
            if comment.author_id != principal.subject or comment.kind == content.SYSTEM_COMMENT:
                raise PermissionDenied("only the author edits a comment", code="not_the_author")
            if comment.status != VISIBLE:
                raise FailedPrecondition("a hidden comment cannot be edited", code="comment_hidden")
            if expected_version and expected_version != comment.version:
                raise Conflict("the comment changed since you opened it", code="comment_version_conflict")
            now = self.ctx.clock.now()
            await ensure_not_muted(session, post.neighbourhood_id, principal.subject, now)
            await PostRepository(session).add_revision(
                Revision(
                    id=new_id(),
                    target_type=COMMENT,
                    target_id=comment.id,
                    version=comment.version,
                    title="",
                    body=comment.body,
                    image_refs=[],
                    tags=[],
                    edited_by=principal.subject,
                    edited_at=now,
                )
            )
            mentions = await resolve_mentions(
                session, post.neighbourhood_id, post.district_id, text, (), principal.subject
            )
            comment.body, comment.version, comment.edited_at = text, comment.version + 1, now
            await session.flush()
            await self.posts.record_mentions(session, post, comment, mentions.people, principal.subject, now)
            return (await comment_views(session, [comment], principal.subject, post.district_id))[0]

    async def delete(self, principal: Principal, comment_id: str, reason: str) -> CommentView:
        async with self.ctx.sessions() as session, session.begin():
            comment, post, access = await self._own_comment(session, principal, comment_id)
            own = comment.author_id == principal.subject
            if not own:
                access.require_moderate()
            reason = content.validate_reason(reason, required=not own)
            now = self.ctx.clock.now()
            was_visible = comment.status == VISIBLE
            comment.status, comment.deleted_at = DELETED, now
            await session.flush()
            if was_visible:
                await uncount(session, comment, -1)
            if not own:
                await record_action(
                    session,
                    self.ctx.events,
                    rules.DELETE,
                    COMMENT,
                    comment.id,
                    post,
                    comment.author_id,
                    principal.subject,
                    reason,
                    now,
                )
            return (await comment_views(session, [comment], principal.subject, post.district_id))[0]

    async def set_like(self, principal: Principal, comment_id: str, liked: bool) -> tuple[int, bool]:
        person = principal.person_id
        async with self.ctx.sessions() as session, session.begin():
            comment, _, _ = await self._own_comment(session, principal, comment_id)
            if comment.status != VISIBLE:
                raise FailedPrecondition("the comment is hidden", code="comment_hidden")
            likes, comments = LikeRepository(session), CommentRepository(session)
            if liked and await likes.like(COMMENT, comment.id, person, self.ctx.clock.now()):
                await comments.bump(comment.id, like_count=1)
            elif not liked and await likes.unlike(COMMENT, comment.id, person):
                await comments.bump(comment.id, like_count=-1)
            return await comments.counter(comment.id, "like_count"), liked


def _scope(place_id: str, readable: Sequence[str], boards: int) -> FeedScope | None:
    """One side of a home feed: absent when none of its boards is readable, else all or some of them."""
    if not readable:
        return None
    return FeedScope(place_id, None if len(readable) == boards else readable)
