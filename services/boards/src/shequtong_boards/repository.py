"""SQLAlchemy queries of the boards service (no rules here: the domain decides, the service composes)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    CompoundSelect,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    delete,
    event,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    tuple_,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, aliased

from shequtong_boards.domain.content import COMMENT, POST, VISIBLE, FeedKey, feed_place
from shequtong_boards.models import (
    AffairRow,
    AffairStep,
    Ballot,
    BallotChoice,
    Board,
    BoardRead,
    CandidateRow,
    CatalogueOverride,
    CatalogueVersion,
    Comment,
    ContentReport,
    ConventionRow,
    ConventionVersionRow,
    FeedVersion,
    IssueLink,
    Like,
    Member,
    MentionRow,
    MilestoneRow,
    ModerationLog,
    Mute,
    Poll,
    PollOption,
    Post,
    Revision,
    RoleHolder,
    Topic,
    TopicRating,
    TopicStepRow,
)
from shequtong_kit import prefetch, regions
from shequtong_kit.auth import Lineage
from shequtong_kit.db import DriverRead, Upsert, UtcDateTime, matches_any, region_directory, write_later

DIALECTS = ("postgresql", "sqlite")


def _dialect(session: AsyncSession | Session) -> str:
    return session.bind.dialect.name if session.bind is not None else "postgresql"


def _insert(session: AsyncSession | Session, model: Any) -> Any:
    """A dialect-aware INSERT that supports ON CONFLICT (PostgreSQL and SQLite share the API)."""
    return (sqlite.insert if _dialect(session) == "sqlite" else postgresql.insert)(model)


async def insert_ignore(session: AsyncSession, model: Any, values: dict[str, Any], keys: Sequence[str]) -> bool:
    """Inserts unless a row with the same key exists; True when this call inserted it."""
    statement = _insert(session, model).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def upsert(
    session: AsyncSession, model: Any, values: dict[str, Any], keys: Sequence[str], update_fields: Sequence[str]
) -> None:
    statement = _insert(session, model).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in update_fields}
    )
    await session.execute(statement)


# --- regions (the kit's directory) ----------------------------------------------------------------


async def lineages_of(session: AsyncSession, neighbourhood_ids: Iterable[str]) -> list[Lineage]:
    return await regions.lineages(session, neighbourhood_ids)


async def subdistricts_of(session: AsyncSession, district_id: str) -> set[str]:
    rows = await session.execute(
        select(region_directory.c.subdistrict_id).where(region_directory.c.district_id == district_id).distinct()
    )
    return {row[0] for row in rows}


# --- boards and catalogue ---------------------------------------------------------------------------


# Read at every neighbourhood page; built once (see _PAGE_FACTS).
_CATALOGUE_VERSION = select(CatalogueVersion.version).where(CatalogueVersion.district_id == bindparam("district_id"))


_POST_AND_CATALOGUE_VERSION = select(
    Post,
    select(CatalogueVersion.version).where(CatalogueVersion.district_id == Post.district_id).scalar_subquery(),
).where(Post.id == bindparam("post_id"))


class BoardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, board_id: str) -> Board | None:
        return await self.session.get(Board, board_id)

    async def kinds_in(self, neighbourhood_id: str) -> set[str]:
        rows = await self.session.execute(select(Board.kind).where(Board.neighbourhood_id == neighbourhood_id))
        return {row[0] for row in rows}

    async def add_all(self, boards: list[Board]) -> None:
        self.session.add_all(boards)
        await self.session.flush()

    async def of_neighbourhood(self, neighbourhood_id: str) -> list[Board]:
        query = select(Board).where(Board.neighbourhood_id == neighbourhood_id).order_by(Board.position, Board.id)
        return list((await self.session.execute(query)).scalars())

    async def of_district(self, district_id: str) -> list[Board]:
        query = (
            select(Board)
            .where(Board.district_id == district_id, Board.scope == "district")
            .order_by(Board.position, Board.id)
        )
        return list((await self.session.execute(query)).scalars())

    async def of_kind(self, neighbourhood_id: str, kind: str) -> Board | None:
        query = select(Board).where(Board.neighbourhood_id == neighbourhood_id, Board.kind == kind)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def district_kind_exists(self, district_id: str, kind: str) -> bool:
        query = select(Board.id).where(Board.district_id == district_id, Board.kind == kind, Board.scope == "district")
        return (await self.session.execute(query)).first() is not None

    async def rename_in_district(self, district_id: str, kind: str, name: str) -> None:
        await self.session.execute(
            update(Board).where(Board.district_id == district_id, Board.kind == kind).values(name=name)
        )

    async def neighbourhoods_lacking(self, district_id: str, kind: str) -> list[str]:
        has = select(Board.neighbourhood_id).where(Board.kind == kind, Board.neighbourhood_id.is_not(None))
        rows = await self.session.execute(
            select(region_directory.c.neighbourhood_id).where(
                region_directory.c.district_id == district_id, region_directory.c.neighbourhood_id.not_in(has)
            )
        )
        return [row[0] for row in rows]

    async def catalogue_version(self, district_id: str) -> int:
        found = await self.session.execute(_CATALOGUE_VERSION, {"district_id": district_id})
        return int(found.scalar() or 0)

    async def bump_catalogue_version(self, district_id: str) -> None:
        """Called in the transaction that changes the district's boards or catalogue: every process's
        cached copy of them is stale from its commit on."""
        statement = _insert(self.session, CatalogueVersion).values(district_id=district_id, version=1)
        statement = statement.on_conflict_do_update(
            index_elements=["district_id"], set_={"version": CatalogueVersion.version + 1}
        )
        await self.session.execute(statement)

    async def overrides(self, district_id: str) -> list[CatalogueOverride]:
        query = select(CatalogueOverride).where(CatalogueOverride.district_id == district_id)
        return list((await self.session.execute(query)).scalars())

    async def override(self, district_id: str, kind: str) -> CatalogueOverride | None:
        return await self.session.get(CatalogueOverride, (district_id, kind))

    async def put_override(self, values: dict[str, Any]) -> None:
        await upsert(
            self.session,
            CatalogueOverride,
            values,
            ["district_id", "kind"],
            ["name", "scope", "policy", "position", "updated_by", "updated_at"],
        )

    async def last_read(self, person_id: str, board_ids: Sequence[str]) -> dict[str, datetime]:
        if not board_ids:
            return {}
        rows = await self.session.execute(
            select(BoardRead.board_id, BoardRead.last_read_at).where(
                BoardRead.person_id == person_id, BoardRead.board_id.in_(board_ids)
            )
        )
        return {row[0]: row[1] for row in rows}

    async def mark_read(self, person_id: str, board_id: str, when: datetime) -> None:
        await upsert(
            self.session,
            BoardRead,
            {"person_id": person_id, "board_id": board_id, "last_read_at": when},
            ["person_id", "board_id"],
            ["last_read_at"],
        )

    async def unread(self, board_id: str, since: datetime, person_id: str, cap: int) -> int:
        """Visible posts by others since `since`, counted up to `cap` (the partial feed index serves it)."""
        inner = (
            select(literal(1))
            .where(
                Post.board_id == board_id,
                Post.status == VISIBLE,
                Post.created_at > since,
                Post.author_id != person_id,
            )
            .limit(cap)
            .subquery()
        )
        return int((await self.session.execute(select(func.count()).select_from(inner))).scalar_one())


# --- posts, comments, mentions, likes -------------------------------------------------------------


def _feed_order(query: Select[Any]) -> Select[Any]:
    return query.order_by(Post.pinned.desc(), Post.created_at.desc(), Post.id.desc())


def _after(query: Select[Any], after: FeedKey | None) -> Select[Any]:
    if after is None:
        return query
    return query.where(tuple_(Post.pinned, Post.created_at, Post.id) < tuple_(after.pinned, after.created_at, after.id))


def _neighbourhood_posts(neighbourhood_id: BindParameter[str], board_ids: BindParameter[Any] | None) -> Select[Any]:
    """The visible posts of a neighbourhood's boards (all of them, or those given): ix_posts_neighbourhood_feed."""
    query = select(Post).where(Post.neighbourhood_id == neighbourhood_id, Post.status == VISIBLE)
    return query if board_ids is None else query.where(Post.board_id.in_(board_ids))


def _district_posts(district_id: BindParameter[str], board_ids: BindParameter[Any] | None) -> Select[Any]:
    """The visible posts of a district's own boards (all of them, or those given): ix_posts_district_feed."""
    query = select(Post).where(Post.district_id == district_id, Post.neighbourhood_id.is_(None), Post.status == VISIBLE)
    return query if board_ids is None else query.where(Post.board_id.in_(board_ids))


@dataclass(frozen=True)
class FeedScope:
    """One side of a home feed: the neighbourhood's or the district's id, and the boards of it to show
    (None: all of them)."""

    place_id: str
    boards: Sequence[str] | None = None


# A home feed's shape per side: absent, all its boards, or only some of them.
_ABSENT, _ALL_BOARDS, _SOME_BOARDS = 0, 1, 2


def _shape(scope: FeedScope | None) -> int:
    if scope is None:
        return _ABSENT
    return _ALL_BOARDS if scope.boards is None else _SOME_BOARDS


def _bound_key() -> FeedKey:
    """A cursor's key as bound parameters (after_pinned, after_created_at, after_id)."""
    return FeedKey(
        bindparam("after_pinned", type_=Boolean),  # type: ignore[arg-type]
        bindparam("after_created_at", type_=UtcDateTime),  # type: ignore[arg-type]
        bindparam("after_id", type_=String),  # type: ignore[arg-type]
    )


def _key_params(after: FeedKey) -> dict[str, Any]:
    return {"after_pinned": after.pinned, "after_created_at": after.created_at, "after_id": after.id}


@functools.cache
def _board_feed_statement(after: bool) -> Select[Any]:
    query = select(Post).where(Post.board_id == bindparam("board_id"), Post.status == VISIBLE)
    return _feed_order(_after(query, _bound_key() if after else None)).limit(bindparam("limit", type_=Integer))


@functools.cache
def _home_feed_statement(neighbourhood: int, district: int, after: bool) -> Select[Any]:
    """Built once per shape, with bound parameters: SQLAlchemy works out a cache key for every statement
    built per call, and this union is the largest a feed page runs."""
    scans = []
    if neighbourhood != _ABSENT:
        some = bindparam("neighbourhood_boards", expanding=True) if neighbourhood == _SOME_BOARDS else None
        scans.append(_neighbourhood_posts(bindparam("neighbourhood_id"), some))
    if district != _ABSENT:
        some = bindparam("district_boards", expanding=True) if district == _SOME_BOARDS else None
        scans.append(_district_posts(bindparam("district_id"), some))
    key = _bound_key() if after else None
    limit = bindparam("limit", type_=Integer)
    if len(scans) == 1:
        return _feed_order(_after(scans[0], key)).limit(limit)
    # SQLite takes no ORDER BY/LIMIT inside a compound select: each scan is a subquery of its own
    arms = [select(_feed_order(_after(scan, key)).limit(limit).subquery()) for scan in scans]
    merged = aliased(Post, union_all(*arms).subquery())
    return select(merged).order_by(merged.pinned.desc(), merged.created_at.desc(), merged.id.desc()).limit(limit)


# The catalogue's version and the feed versions of a page's places, read first on every feed page.
_PAGE_VERSIONS = {
    dialect: DriverRead(
        union_all(
            select(literal("catalogue").label("place"), CatalogueVersion.version.label("version")).where(
                CatalogueVersion.district_id == bindparam("district_id")
            ),
            select(FeedVersion.place, FeedVersion.version).where(matches_any(FeedVersion.place, "places", dialect)),
        )
    )
    for dialect in DIALECTS
}


@dataclass(frozen=True)
class PageVersions:
    catalogue: int
    places: tuple[int, ...]


class FeedVersionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def read(self, district_id: str, places: Sequence[str]) -> PageVersions:
        """The district's catalogue version and the given places' feed versions (0 for one never moved)."""
        found = {
            place: int(version)
            for place, version in await _PAGE_VERSIONS[_dialect(self.session)].rows(
                self.session, {"district_id": district_id, "places": list(places)}
            )
        }
        return PageVersions(found.get("catalogue", 0), tuple(found.get(place, 0) for place in places))

    async def posts_changed(self, *posts: Post) -> None:
        """These posts changed in a way a feed shows (not a counter): their places' first pages are stale."""
        await self.bump(feed_place(post.neighbourhood_id, post.district_id) for post in posts)

    async def bump(self, places: Iterable[str]) -> None:
        """Called in the transaction that changes what these places' first pages show: every process's
        cached pages of them are stale from its commit on. The versions move just before the commit, all
        of the transaction's at once and in place order, so a writer takes these row locks last: none holds
        a version while it waits for a post another writer holds (moderation hiding a post deadlocked so
        with the consumer linking that post to its issue, which had moved the version first)."""
        pending = self.session.info.get(_PENDING_BUMPS)
        if pending is None:
            pending = self.session.info[_PENDING_BUMPS] = set()
            event.listen(self.session.sync_session, "before_commit", _move_pending_versions, once=True)
            event.listen(self.session.sync_session, "after_rollback", _forget_pending_versions, once=True)
        pending.update(places)


_PENDING_BUMPS = "boards.pending_feed_versions"


def _move_pending_versions(session: Session) -> None:
    """Runs inside the commit (a sync listener of the async session, in its greenlet: SQL may be sent).

    One statement for all the places, its rows in place order (taken in that order, as every writer takes
    them): an import batch's posts touch hundreds of places, and a statement per place held the first
    versions' locks through hundreds of round trips while the other batches' commits waited for them."""
    places = sorted(session.info.pop(_PENDING_BUMPS, set()))
    for start in range(0, len(places), 1000):
        statement = _insert(session, FeedVersion).values(
            [{"place": place, "version": 1} for place in places[start : start + 1000]]
        )
        session.execute(
            statement.on_conflict_do_update(index_elements=["place"], set_={"version": FeedVersion.version + 1})
        )


def _forget_pending_versions(session: Session) -> None:
    session.info.pop(_PENDING_BUMPS, None)


@dataclass(frozen=True)
class LiveCounts:
    like_count: int
    comment_count: int
    official_answer_count: int
    liked: bool


_LIVE_COUNTS = {
    dialect: DriverRead(
        select(
            Post.id,
            Post.like_count,
            Post.comment_count,
            Post.official_answer_count,
            Like.person_id.is_not(None).label("liked"),
        )
        .outerjoin(
            Like, (Like.target_type == POST) & (Like.target_id == Post.id) & (Like.person_id == bindparam("viewer"))
        )
        .where(matches_any(Post.id, "post_ids", dialect))
    )
    for dialect in DIALECTS
}


class PostRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_with_catalogue_version(self, post_id: str) -> tuple[Post, int] | None:
        """The post and its district's catalogue version in one round trip (a post's page needs both)."""
        row = (await self.session.execute(_POST_AND_CATALOGUE_VERSION, {"post_id": post_id})).first()
        return None if row is None else (row[0], int(row[1] or 0))

    async def get(self, post_id: str, for_update: bool = False) -> Post | None:
        if for_update:
            query = select(Post).where(Post.id == post_id).with_for_update()
            return (await self.session.execute(query)).scalar_one_or_none()
        return await self.session.get(Post, post_id)

    async def add(self, post: Post) -> None:
        self.session.add(post)
        await self.session.flush()

    async def bulk_add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Many posts in one statement (imports, the feed benchmark): no events, no mentions."""
        if rows:
            await self.session.execute(insert(Post), list(rows))

    async def board_feed(self, board_id: str, after: FeedKey | None, limit: int) -> list[Post]:
        """A board's keyset page (ix_posts_board_feed), with a statement built once per shape."""
        params: dict[str, Any] = {"board_id": board_id, "limit": limit}
        if after is not None:
            params.update(_key_params(after))
        return list((await self.session.execute(_board_feed_statement(after is not None), params)).scalars())

    async def home_feed(
        self, neighbourhood: FeedScope | None, district: FeedScope | None, after: FeedKey | None, limit: int
    ) -> list[Post]:
        """A neighbourhood's boards and its district's as one keyset page, in one statement (each scan ordered
        and limited on its own partial index, the union ordered once more), built once per shape."""
        if neighbourhood is None and district is None:
            return []
        statement = _home_feed_statement(_shape(neighbourhood), _shape(district), after is not None)
        params: dict[str, Any] = {"limit": limit}
        if neighbourhood is not None:
            params["neighbourhood_id"] = neighbourhood.place_id
            if neighbourhood.boards is not None:
                params["neighbourhood_boards"] = list(neighbourhood.boards)
        if district is not None:
            params["district_id"] = district.place_id
            if district.boards is not None:
                params["district_boards"] = list(district.boards)
        if after is not None:
            params.update(_key_params(after))
        return list((await self.session.execute(statement, params)).scalars())

    async def live_counts(self, post_ids: Sequence[str], viewer: str) -> dict[str, LiveCounts]:
        """What a cached page refreshes per request: the counters (they move with every comment and like,
        too often to move a feed version) and whether the viewer liked each post."""
        rows = await _LIVE_COUNTS[_dialect(self.session)].rows(
            self.session, {"post_ids": list(post_ids), "viewer": viewer}
        )
        return {
            post_id: LiveCounts(likes, comments, official_answers, bool(liked))
            for post_id, likes, comments, official_answers, liked in rows
        }

    async def bump(self, post_id: str, **deltas: int) -> None:
        """Atomic counter changes (like_count=+1 ...), safe under concurrent writers."""
        values = {name: getattr(Post, name) + delta for name, delta in deltas.items()}
        await self.session.execute(update(Post).where(Post.id == post_id).values(**values))

    async def counter(self, post_id: str, name: str) -> int:
        return int((await self.session.execute(select(getattr(Post, name)).where(Post.id == post_id))).scalar_one())

    async def add_revision(self, revision: Revision) -> None:
        self.session.add(revision)
        await self.session.flush()

    async def revisions(self, target_type: str, target_id: str, after: int, limit: int) -> list[Revision]:
        query = (
            select(Revision)
            .where(Revision.target_type == target_type, Revision.target_id == target_id, Revision.version > after)
            .order_by(Revision.version)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())


@dataclass(frozen=True)
class Mentioned:
    person_id: str
    via_handle: str


@dataclass
class PageFacts:
    """What a page of posts (or comments: mentions and likes) shows around them, read in one statement."""

    mentions: dict[str, list[Mentioned]] = field(default_factory=dict)
    liked: set[str] = field(default_factory=set)
    polls: dict[str, list[str]] = field(default_factory=dict)
    issues: dict[str, str] = field(default_factory=dict)


_FACT_MENTION, _FACT_LIKE, _FACT_POLL, _FACT_ISSUE = "m", "l", "p", "i"


def _mention_and_like_arms(target_type: str, dialect: str) -> list[Select[Any]]:
    """Who the targets mention, and which of them the viewer liked: the facts every page of posts or
    comments shows around its rows (`target_ids` and `viewer` bound)."""
    no_text, no_time = cast(null(), String), cast(null(), UtcDateTime)
    return [
        select(
            literal(_FACT_MENTION).label("fact"),
            MentionRow.target_id.label("target_id"),
            MentionRow.person_id.label("value"),
            MentionRow.via_handle.label("extra"),
            MentionRow.created_at.label("at"),
            MentionRow.id.label("tie"),
        ).where(MentionRow.target_type == target_type, matches_any(MentionRow.target_id, "target_ids", dialect)),
        select(literal(_FACT_LIKE), Like.target_id, no_text, no_text, no_time, no_text).where(
            Like.target_type == target_type,
            matches_any(Like.target_id, "target_ids", dialect),
            Like.person_id == bindparam("viewer"),
        ),
    ]


def _page_facts_statement(dialect: str) -> CompoundSelect:
    no_text, no_time = cast(null(), String), cast(null(), UtcDateTime)
    return union_all(
        *_mention_and_like_arms(POST, dialect),
        select(literal(_FACT_POLL), Poll.post_id, Poll.id, no_text, Poll.created_at, Poll.id).where(
            matches_any(Poll.post_id, "target_ids", dialect)
        ),
        select(literal(_FACT_ISSUE), IssueLink.post_id, IssueLink.issue_id, no_text, no_time, no_text).where(
            matches_any(IssueLink.post_id, "target_ids", dialect)
        ),
    )


# Built once: SQLAlchemy keeps a statement object's cache key, but works it out anew for every statement
# built per call — for these unions, a visible share of a feed page's CPU.
# Sent straight to the driver (`DriverRead`): every page of posts or comments reads them.
_PAGE_FACTS = {dialect: DriverRead(_page_facts_statement(dialect)) for dialect in DIALECTS}
_COMMENT_FACTS = {dialect: DriverRead(union_all(*_mention_and_like_arms(COMMENT, dialect))) for dialect in DIALECTS}


async def page_facts(session: AsyncSession, post_ids: Sequence[str], viewer: str) -> PageFacts:
    """Mentions, the viewer's likes, polls and the issue each post became: one UNION ALL of four index
    lookups instead of four round trips (a feed page pays for each statement in the service's CPU)."""
    return await _facts(session, _PAGE_FACTS, post_ids, viewer)


async def comment_facts(session: AsyncSession, comment_ids: Sequence[str], viewer: str) -> PageFacts:
    """Mentions and the viewer's likes of a page of comments, in one statement."""
    return await _facts(session, _COMMENT_FACTS, comment_ids, viewer)


async def _facts(
    session: AsyncSession, statements: dict[str, DriverRead], ids: Sequence[str], viewer: str
) -> PageFacts:
    facts = PageFacts()
    if not ids:
        return facts
    mentions: list[tuple[Any, ...]] = []
    polls: list[tuple[Any, ...]] = []
    rows = await statements[_dialect(session)].rows(session, {"target_ids": list(ids), "viewer": viewer})
    for fact, target_id, value, extra, at, tie in rows:
        if fact == _FACT_MENTION:
            mentions.append((at, tie, target_id, value, extra))
        elif fact == _FACT_LIKE:
            facts.liked.add(target_id)
        elif fact == _FACT_POLL:
            polls.append((at, tie, target_id, value))
        else:
            facts.issues[target_id] = value
    for _, _, target_id, value, extra in sorted(mentions, key=lambda r: (r[0], r[1])):  # the order they were written in
        facts.mentions.setdefault(target_id, []).append(Mentioned(value, extra or ""))
    for _, _, target_id, value in sorted(polls, key=lambda r: (r[0], r[1])):
        facts.polls.setdefault(target_id, []).append(value)
    return facts


class CommentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, comment_id: str) -> Comment | None:
        return await self.session.get(Comment, comment_id)

    async def add(self, comment: Comment) -> None:
        self.session.add(comment)
        await self.session.flush()

    async def thread(
        self, post_id: str, parent_id: str | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Comment]:
        query = select(Comment).where(Comment.post_id == post_id, Comment.status == VISIBLE)
        query = query.where(Comment.parent_id == parent_id if parent_id else Comment.parent_id.is_(None))
        if after is not None:
            query = query.where(tuple_(Comment.created_at, Comment.id) > tuple_(after[0], after[1]))
        query = query.order_by(Comment.created_at, Comment.id).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def bump(self, comment_id: str, **deltas: int) -> None:
        values = {name: getattr(Comment, name) + delta for name, delta in deltas.items()}
        await self.session.execute(update(Comment).where(Comment.id == comment_id).values(**values))

    async def counter(self, comment_id: str, name: str) -> int:
        query = select(getattr(Comment, name)).where(Comment.id == comment_id)
        return int((await self.session.execute(query)).scalar_one())

    async def by_source_event(self, event_id: str) -> Comment | None:
        query = select(Comment).where(Comment.source_event_id == event_id)
        return (await self.session.execute(query)).scalar_one_or_none()


class MentionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: dict[str, Any]) -> bool:
        return await insert_ignore(self.session, MentionRow, row, ["target_type", "target_id", "person_id"])

    async def person_ids(self, target_type: str, target_id: str) -> set[str]:
        rows = await self.session.execute(
            select(MentionRow.person_id).where(MentionRow.target_type == target_type, MentionRow.target_id == target_id)
        )
        return {row[0] for row in rows}


class LikeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def like(self, target_type: str, target_id: str, person_id: str, when: datetime) -> bool:
        return await insert_ignore(
            self.session,
            Like,
            {"target_type": target_type, "target_id": target_id, "person_id": person_id, "created_at": when},
            ["target_type", "target_id", "person_id"],
        )

    async def unlike(self, target_type: str, target_id: str, person_id: str) -> bool:
        result = await self.session.execute(
            delete(Like).where(
                Like.target_type == target_type, Like.target_id == target_id, Like.person_id == person_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


# --- people (projections) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonFact:
    """A role a person holds at a scope, or (role None) their name as a member."""

    person_id: str
    role: str | None
    scope: str | None
    display_name: str


def _roles_and_names_statement(dialect: str) -> CompoundSelect:
    no_text = cast(null(), String)
    return union_all(
        select(
            literal(0).label("source"),
            RoleHolder.person_id.label("person_id"),
            RoleHolder.role.label("role"),
            RoleHolder.scope.label("scope"),
            RoleHolder.display_name.label("display_name"),
        ).where(matches_any(RoleHolder.person_id, "person_ids", dialect)),
        select(literal(1), Member.person_id, no_text, no_text, Member.display_name).where(
            matches_any(Member.person_id, "person_ids", dialect)
        ),
    )


_ROLES_AND_NAMES = {dialect: DriverRead(_roles_and_names_statement(dialect)) for dialect in DIALECTS}


# LIMIT 1 written into the statement, not bound: a plan made for any limit (a prepared statement's
# generic plan) need not be the one for a first row.
_ONE = literal_column("1")


def _on_feeds_among_statement(dialect: str) -> Select[Any] | CompoundSelect:
    """Built once per dialect: the people's ids are one array parameter on PostgreSQL (a VALUES list of
    them was compiled again on every call, most of the people consumer's CPU under a resident import)."""
    if dialect != "postgresql":  # SQLite has no arrays (nor column names for a VALUES list); small data sets
        ids = bindparam("person_ids", expanding=True)
        return union(
            select(Post.author_id).where(Post.author_id.in_(ids)),
            select(MentionRow.person_id).where(MentionRow.person_id.in_(ids), MentionRow.target_type == POST),
        )
    wanted = (
        func.unnest(bindparam("person_ids", type_=postgresql.ARRAY(String)))
        .table_valued("person_id")
        .render_derived(name="wanted", with_types=False)
    )
    # A first row each in the (person, created_at) indexes' order, joined LATERAL: as `EXISTS` the planner
    # drops the order and the limit and, the authors having thousands of posts each, probes each person
    # with a sequential scan of every post (seconds a batch in a district's data set; this way ~1 ms).
    authored = (
        select(Post.id)
        .where(Post.author_id == wanted.c.person_id)
        .order_by(Post.created_at)
        .limit(_ONE)
        .lateral("authored")
    )
    mentioned = (
        select(MentionRow.id)
        .where(MentionRow.person_id == wanted.c.person_id, MentionRow.target_type == POST)
        .order_by(MentionRow.created_at)
        .limit(_ONE)
        .lateral("mentioned")
    )
    shown = wanted.outerjoin(authored, true()).outerjoin(mentioned, true())
    return (
        select(wanted.c.person_id)
        .select_from(shown)
        .where(or_(authored.c.id.is_not(None), mentioned.c.id.is_not(None)))
    )


_ON_FEEDS_AMONG = {dialect: _on_feeds_among_statement(dialect) for dialect in DIALECTS}


# The people projections are written once per identity event (a resident import sends them by the
# hundred thousand): statements built and compiled once.
_RECORD_MEMBER = Upsert(
    Member.__table__,
    ["person_id", "neighbourhood_id", "household_id", "display_name", "verified_at", "active"],
    ["person_id", "neighbourhood_id"],
    ["household_id", "display_name", "verified_at", "active"],
)
_GRANT = Upsert(
    RoleHolder.__table__,
    ["person_id", "role", "scope", "display_name"],
    ["person_id", "role", "scope"],
    ["display_name"],
)


class PeopleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _current(self) -> None:
        """Writes the member and role upserts a consumer batch kept for its commit (`Upsert.later`) before
        this repository reads or changes those tables again."""
        await write_later(self.session)

    async def member(self, person_id: str, neighbourhood_id: str) -> Member | None:
        await self._current()
        return await self.session.get(Member, (person_id, neighbourhood_id))

    async def active_members(self, person_ids: Sequence[str], neighbourhood_ids: Sequence[str]) -> list[Member]:
        await self._current()
        if not person_ids or not neighbourhood_ids:
            return []
        query = select(Member).where(
            Member.person_id.in_(person_ids), Member.neighbourhood_id.in_(neighbourhood_ids), Member.active.is_(True)
        )
        return list((await self.session.execute(query)).scalars())

    async def known_people(
        self, person_ids: Sequence[str], *, neighbourhood_id: str | None = None, district_id: str | None = None
    ) -> set[str]:
        """Which of these people are members (or office holders) of the neighbourhood, or of the district."""
        await self._current()
        ids = sorted(set(person_ids))
        if not ids:
            return set()
        if neighbourhood_id:
            members = select(Member.person_id).where(
                Member.person_id.in_(ids), Member.neighbourhood_id == neighbourhood_id, Member.active.is_(True)
            )
            scope = f"n:{neighbourhood_id}"
        else:
            members = (
                select(Member.person_id)
                .join(region_directory, region_directory.c.neighbourhood_id == Member.neighbourhood_id)
                .where(
                    Member.person_id.in_(ids),
                    region_directory.c.district_id == (district_id or ""),
                    Member.active.is_(True),
                )
            )
            scope = f"d:{district_id}"
        holders = select(RoleHolder.person_id).where(RoleHolder.person_id.in_(ids), RoleHolder.scope == scope)
        found = {row[0] for row in await self.session.execute(members)}
        found.update(row[0] for row in await self.session.execute(holders))
        return found

    async def holders(self, scope: str, roles: Iterable[str]) -> list[RoleHolder]:
        await self._current()
        query = (
            select(RoleHolder)
            .where(RoleHolder.scope == scope, RoleHolder.role.in_(sorted(set(roles))))
            .order_by(RoleHolder.person_id)
        )
        return list((await self.session.execute(query)).scalars())

    async def roles_and_names(self, person_ids: Sequence[str]) -> list[PersonFact]:
        """The roles people hold (with the name the grant carried), then their member names, in one
        statement: every post and comment page shows its authors' names and badges."""
        await self._current()
        if not person_ids:
            return []
        rows = await _ROLES_AND_NAMES[_dialect(self.session)].rows(self.session, {"person_ids": list(person_ids)})
        return sorted(
            (PersonFact(person_id, role, scope, name or "") for _, person_id, role, scope, name in rows),
            key=lambda fact: fact.role is None,  # grants first: a member name wins over a grant's
        )

    async def on_feeds(self, person_id: str) -> bool:
        """Whether any post shows this person (as its author or a mention): only then can a change to their
        name or badges change a feed page."""
        # Ordered as the (person, created_at) indexes are: with LIMIT 1 alone the planner counts on meeting
        # a match early in a sequential scan (a district's authors have thousands of posts each), and reads
        # the whole table for everyone who never posted.
        authored = select(Post.id).where(Post.author_id == person_id).order_by(Post.created_at).limit(_ONE)
        mentioned = (
            select(MentionRow.id)
            .where(MentionRow.person_id == person_id, MentionRow.target_type == POST)
            .order_by(MentionRow.created_at)
            .limit(_ONE)
        )
        found = await self.session.execute(union_all(select(authored.subquery()), select(mentioned.subquery())))
        return found.first() is not None

    async def on_feeds_among(self, person_ids: Sequence[str]) -> set[str]:
        """Which of these people any post shows (`on_feeds` for a batch, in one statement): one index probe
        per person and kind (EXISTS), not every post of theirs — in a district's data set the people who
        post have written hundreds each, and a batch of role grants asked for all of them."""
        ids = sorted(set(person_ids))
        if not ids:
            return set()
        dialect = _dialect(self.session)
        return {row[0] for row in await self.session.execute(_ON_FEEDS_AMONG[dialect], {"person_ids": ids})}

    async def record_member(self, values: dict[str, Any]) -> None:
        await _RECORD_MEMBER.later(self.session, values)

    async def member_left(self, person_id: str, neighbourhood_id: str) -> None:
        await self._current()
        await self.session.execute(
            update(Member)
            .where(Member.person_id == person_id, Member.neighbourhood_id == neighbourhood_id)
            .values(active=False)
        )

    async def grant(self, values: dict[str, Any]) -> None:
        await _GRANT.later(self.session, values)

    async def revoke(self, person_id: str, role: str, scope: str) -> None:
        await self._current()
        await self.session.execute(
            delete(RoleHolder).where(
                RoleHolder.person_id == person_id, RoleHolder.role == role, RoleHolder.scope == scope
            )
        )

    async def rename(self, person_id: str, display_name: str) -> None:
        await self._current()
        await self.session.execute(
            update(Member).where(Member.person_id == person_id).values(display_name=display_name)
        )
        await self.session.execute(
            update(RoleHolder).where(RoleHolder.person_id == person_id).values(display_name=display_name)
        )


# --- moderation ---------------------------------------------------------------------------------------


class ModerationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def report(self, report_id: str) -> ContentReport | None:
        return await self.session.get(ContentReport, report_id)

    async def report_by(self, target_type: str, target_id: str, reporter_id: str) -> ContentReport | None:
        query = select(ContentReport).where(
            ContentReport.target_type == target_type,
            ContentReport.target_id == target_id,
            ContentReport.reporter_id == reporter_id,
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def add(self, row: Any) -> None:
        self.session.add(row)
        await self.session.flush()

    async def reports(
        self, board_ids: Sequence[str], status: str, after: tuple[datetime, str] | None, limit: int
    ) -> list[ContentReport]:
        query = select(ContentReport).where(ContentReport.board_id.in_(board_ids), ContentReport.status == status)
        if after is not None:
            query = query.where(tuple_(ContentReport.created_at, ContentReport.id) > tuple_(after[0], after[1]))
        query = query.order_by(ContentReport.created_at, ContentReport.id).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def resolve_open(self, target_type: str, target_id: str, actor: str, when: datetime, note: str) -> None:
        await self.session.execute(
            update(ContentReport)
            .where(
                ContentReport.target_type == target_type,
                ContentReport.target_id == target_id,
                ContentReport.status == "open",
            )
            .values(status="actioned", resolved_by=actor, resolved_at=when, resolution=note)
        )

    async def actions(
        self,
        *,
        neighbourhood_id: str | None = None,
        subject_person_id: str | None = None,
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ModerationLog]:
        query = select(ModerationLog)
        if neighbourhood_id is not None:
            query = query.where(ModerationLog.neighbourhood_id == neighbourhood_id)
        if subject_person_id is not None:
            query = query.where(ModerationLog.subject_person_id == subject_person_id)
        if before is not None:
            query = query.where(tuple_(ModerationLog.created_at, ModerationLog.id) < tuple_(before[0], before[1]))
        query = query.order_by(ModerationLog.created_at.desc(), ModerationLog.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def mute(self, neighbourhood_id: str, person_id: str) -> Mute | None:
        return await self.session.get(Mute, (neighbourhood_id, person_id))

    async def put_mute(self, values: dict[str, Any]) -> None:
        await upsert(self.session, Mute, values, ["neighbourhood_id", "person_id"], ["until", "reason", "muted_by"])

    async def remove_mute(self, neighbourhood_id: str, person_id: str) -> bool:
        result = await self.session.execute(
            delete(Mute).where(Mute.neighbourhood_id == neighbourhood_id, Mute.person_id == person_id)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


# --- polls ----------------------------------------------------------------------------------------------


class PollRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, poll_id: str) -> Poll | None:
        return await self.session.get(Poll, poll_id)

    async def add(self, poll: Poll, options: list[PollOption]) -> None:
        self.session.add(poll)
        await self.session.flush()
        self.session.add_all(options)
        await self.session.flush()

    async def options(self, poll_id: str) -> list[PollOption]:
        query = select(PollOption).where(PollOption.poll_id == poll_id).order_by(PollOption.position)
        return list((await self.session.execute(query)).scalars())

    async def tally(self, poll_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            select(BallotChoice.option_id, func.count())
            .where(BallotChoice.poll_id == poll_id)
            .group_by(BallotChoice.option_id)
        )
        return {row[0]: int(row[1]) for row in rows}

    async def ballot_count(self, poll_id: str) -> int:
        query = select(func.count()).select_from(Ballot).where(Ballot.poll_id == poll_id)
        return int((await self.session.execute(query)).scalar_one())

    async def ballot_of(self, poll_id: str, voter_keys: Sequence[str]) -> Ballot | None:
        query = select(Ballot).where(Ballot.poll_id == poll_id, Ballot.voter_key.in_(voter_keys)).limit(1)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def choices(self, ballot_id: str) -> list[str]:
        rows = await self.session.execute(select(BallotChoice.option_id).where(BallotChoice.ballot_id == ballot_id))
        return [row[0] for row in rows]

    async def cast(self, ballot: Ballot, option_ids: Sequence[str]) -> None:
        """Flushes the ballot first: a second ballot for the same voter key fails here (unique constraint)."""
        self.session.add(ballot)
        await self.session.flush()
        self.session.add_all(
            [BallotChoice(ballot_id=ballot.id, option_id=option_id, poll_id=ballot.poll_id) for option_id in option_ids]
        )
        await self.session.flush()

    async def close(self, poll_id: str, when: datetime) -> bool:
        result = await self.session.execute(
            update(Poll).where(Poll.id == poll_id, Poll.closed_at.is_(None)).values(closed_at=when)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


# --- deliberation -----------------------------------------------------------------------------------------


class TopicRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, topic_id: str) -> Topic | None:
        return await self.session.get(Topic, topic_id)

    async def add(self, row: Any) -> None:
        self.session.add(row)
        await self.session.flush()

    async def move(self, topic_id: str, current: str, target: str, when: datetime) -> bool:
        """Compare-and-set on the stage: of two cadres moving the same topic, one wins."""
        result = await self.session.execute(
            update(Topic).where(Topic.id == topic_id, Topic.stage == current).values(stage=target, updated_at=when)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def steps(self, topic_id: str) -> list[TopicStepRow]:
        query = select(TopicStepRow).where(TopicStepRow.topic_id == topic_id).order_by(TopicStepRow.seq)
        return list((await self.session.execute(query)).scalars())

    async def next_seq(self, topic_id: str) -> int:
        query = select(func.coalesce(func.max(TopicStepRow.seq), 0)).where(TopicStepRow.topic_id == topic_id)
        return int((await self.session.execute(query)).scalar_one()) + 1

    async def milestones(self, topic_id: str) -> list[MilestoneRow]:
        query = select(MilestoneRow).where(MilestoneRow.topic_id == topic_id).order_by(MilestoneRow.position)
        return list((await self.session.execute(query)).scalars())

    async def milestone(self, milestone_id: str) -> MilestoneRow | None:
        return await self.session.get(MilestoneRow, milestone_id)

    async def rating_stats(self, topic_id: str) -> tuple[int, float]:
        row = (
            await self.session.execute(
                select(func.count(), func.avg(TopicRating.rating)).where(TopicRating.topic_id == topic_id)
            )
        ).one()
        return int(row[0]), float(row[1] or 0)

    async def rating_by(self, topic_id: str, person_id: str) -> TopicRating | None:
        return await self.session.get(TopicRating, (topic_id, person_id))

    async def listing(
        self, neighbourhood_id: str, stage: str | None, before: tuple[datetime, str] | None, limit: int
    ) -> list[Topic]:
        query = select(Topic).where(Topic.neighbourhood_id == neighbourhood_id)
        if stage:
            query = query.where(Topic.stage == stage)
        if before is not None:
            query = query.where(tuple_(Topic.created_at, Topic.id) < tuple_(before[0], before[1]))
        query = query.order_by(Topic.created_at.desc(), Topic.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def poll_ids(self, topic_id: str) -> list[str]:
        rows = await self.session.execute(
            select(Poll.id).where(Poll.topic_id == topic_id).order_by(Poll.created_at, Poll.id)
        )
        return [row[0] for row in rows]

    async def convention(self, convention_id: str, for_update: bool = False) -> ConventionRow | None:
        if for_update:
            query = select(ConventionRow).where(ConventionRow.id == convention_id).with_for_update()
            return (await self.session.execute(query)).scalar_one_or_none()
        return await self.session.get(ConventionRow, convention_id)

    async def versions(self, convention_id: str, newest_only: bool = False) -> list[ConventionVersionRow]:
        query = (
            select(ConventionVersionRow)
            .where(ConventionVersionRow.convention_id == convention_id)
            .order_by(ConventionVersionRow.version.desc())
        )
        if newest_only:
            query = query.limit(1)
        return list((await self.session.execute(query)).scalars())

    async def poll_used(self, poll_id: str) -> bool:
        query = select(ConventionVersionRow.version).where(ConventionVersionRow.poll_id == poll_id).limit(1)
        return (await self.session.execute(query)).first() is not None

    async def conventions(
        self, neighbourhood_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[ConventionRow]:
        query = select(ConventionRow).where(ConventionRow.neighbourhood_id == neighbourhood_id)
        if before is not None:
            query = query.where(tuple_(ConventionRow.created_at, ConventionRow.id) < tuple_(before[0], before[1]))
        query = query.order_by(ConventionRow.created_at.desc(), ConventionRow.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())


# --- affairs ------------------------------------------------------------------------------------------------


class AffairRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, affair_id: str) -> AffairRow | None:
        return await self.session.get(AffairRow, affair_id)

    async def add(self, row: Any) -> None:
        self.session.add(row)
        await self.session.flush()

    async def move(self, affair_id: str, current: str, target: str, when: datetime) -> bool:
        result = await self.session.execute(
            update(AffairRow)
            .where(AffairRow.id == affair_id, AffairRow.stage == current)
            .values(stage=target, updated_at=when)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def steps(self, affair_id: str) -> list[AffairStep]:
        query = select(AffairStep).where(AffairStep.affair_id == affair_id).order_by(AffairStep.at, AffairStep.id)
        return list((await self.session.execute(query)).scalars())

    async def candidates(self, affair_id: str) -> list[CandidateRow]:
        query = select(CandidateRow).where(CandidateRow.affair_id == affair_id).order_by(CandidateRow.position)
        return list((await self.session.execute(query)).scalars())

    async def listing(self, neighbourhood_id: str, before: tuple[datetime, str] | None, limit: int) -> list[AffairRow]:
        query = select(AffairRow).where(AffairRow.neighbourhood_id == neighbourhood_id)
        if before is not None:
            query = query.where(tuple_(AffairRow.created_at, AffairRow.id) < tuple_(before[0], before[1]))
        query = query.order_by(AffairRow.created_at.desc(), AffairRow.id.desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())


# --- issues feedback ------------------------------------------------------------------------------------------


class IssueLinkRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def link(self, issue_id: str, post_id: str, neighbourhood_id: str, when: datetime) -> bool:
        linked = await insert_ignore(
            self.session,
            IssueLink,
            {"issue_id": issue_id, "post_id": post_id, "neighbourhood_id": neighbourhood_id, "created_at": when},
            ["issue_id"],
        )
        prefetch.forget(self.session, IssueLink, issue_id)  # a batch's later event about it reads the row
        return linked

    async def post_of(self, issue_id: str) -> str | None:
        row = await prefetch.get(self.session, IssueLink, issue_id)
        return row.post_id if row else None

    async def prefetch_links(self, issue_ids: Sequence[str]) -> None:
        """The links of a batch's issues and the posts they point to, into the session (one statement each):
        most issues were never a post, and each of their events would ask."""
        await prefetch.load(self.session, IssueLink, issue_ids)
        posts = {link.post_id for link in prefetch.remembered(self.session, IssueLink) if link is not None}
        await prefetch.load(self.session, Post, posts)


__all__ = [
    "AffairRepository",
    "BoardRepository",
    "CommentRepository",
    "FeedVersionRepository",
    "IssueLinkRepository",
    "LikeRepository",
    "MentionRepository",
    "ModerationRepository",
    "PeopleRepository",
    "PollRepository",
    "PostRepository",
    "TopicRepository",
    "insert_ignore",
    "lineages_of",
    "subdistricts_of",
    "upsert",
]
