"""Imports of historic content (posts, comments, topics with their conventions) in batches.

The same rules as the per-item path decide (content limits, the board's policy for the author as the
members projection knows them, the deliberation chain), then one transaction writes the batch with bulk
INSERTs. Each record carries the source system's `external_ref` (unique): a re-sent batch, or two
batches racing, create each item once (`ON CONFLICT DO NOTHING RETURNING`), and events are written only
for the rows this call inserted — each item's event exactly as the per-item path builds it, so insights
(participation, topics, conventions) sees imported content like any other. Posts and comments travel
packed (`boards.post.imported`, `boards.comment.imported`: a list of those created events, a few per
batch): a million historic posts are not a million events through the relay, the stream and every
consumer's inbox. Topics keep one event per item (they are few, and their stages are events of their own). Mentions
are not resolved for historic text (nobody is notified of a months-old @), and posts in 身边事 are refused:
there a post becomes an issue, and historic issues are imported with their record by the issues service.
Who may import: platform operators and our own services (the data generator, migrations).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, NamedTuple

from google.protobuf.message import Message
from sqlalchemy import Integer, String, any_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import override_kind, policy_of
from shequtong_boards.domain import catalogue, content
from shequtong_boards.domain import deliberation as chain
from shequtong_boards.domain.content import feed_place
from shequtong_boards.domain.policy import COMMITTEE, STAFF, neighbourhood_audiences, permissions
from shequtong_boards.events import (
    COMMENT_CREATED,
    CONVENTION_ADOPTED,
    POST_CREATED,
    TOPIC_STAGE_CHANGED,
    comment_created_message,
    comments_imported_messages,
    convention_adopted_message,
    post_created_message,
    posts_imported_messages,
    topic_stage_changed_message,
)
from shequtong_boards.models import (
    Board,
    CatalogueOverride,
    Comment,
    ConventionRow,
    ConventionVersionRow,
    Member,
    MilestoneRow,
    Post,
    RoleHolder,
    Topic,
    TopicStepRow,
)
from shequtong_boards.repository import FeedVersionRepository, _insert, lineages_of
from shequtong_boards.usecases.base import Context
from shequtong_boards.usecases.topics import STAGE_NAMES
from shequtong_boards.views import SYSTEM_AUTHOR
from shequtong_kit import auth
from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.db import CompiledOnce, PlannerStatistics, insert_many, rows_among
from shequtong_kit.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from shequtong_kit.ids import new_id

MAX_BATCH = 2000
EXTERNAL_REF_MAX = 100
# Clocks differ a little between the source and here: a record "now" is not in the future.
FUTURE_SKEW = timedelta(minutes=5)


# --- what the servicer hands over (plain values) ----------------------------------------------------


# Posts and comments come by the million: tuples (a frozen dataclass sets each field through object.__setattr__).
class PostRecord(NamedTuple):
    external_ref: str
    board_id: str
    author_id: str
    title: str
    body: str
    tags: Sequence[str]
    created_at: datetime | None


class CommentRecord(NamedTuple):
    external_ref: str
    post_id: str
    post_external_ref: str
    author_id: str
    body: str
    created_at: datetime | None


@dataclass(frozen=True)
class StepRecord:
    to_stage: str
    actor_id: str
    reason: str
    at: datetime | None


@dataclass(frozen=True)
class MilestoneRecord:
    title: str
    due_at: datetime | None
    progress: int


@dataclass(frozen=True)
class ConventionRecord:
    title: str
    text: str
    tally: Sequence[tuple[str, int]]
    ballot_count: int


@dataclass(frozen=True)
class TopicRecord:
    external_ref: str
    neighbourhood_id: str
    proposer_id: str
    title: str
    description: str
    created_at: datetime | None
    steps: Sequence[StepRecord]
    owner_id: str = ""
    budget_note: str = ""
    milestones: Sequence[MilestoneRecord] = ()
    evaluation_summary: str = ""
    convention: ConventionRecord | None = None


@dataclass
class ImportOutcome:
    received: int = 0
    created: int = 0
    skipped: int = 0
    # (external_ref, id, created) in request order.
    records: list[tuple[str, str, bool]] = field(default_factory=list)


# --- checks shared by every import --------------------------------------------------------------------


def require_importer(principal: Principal) -> None:
    if not (principal.is_operator or principal.has(auth.SERVICE, "*")):
        raise PermissionDenied("imports are for platform operators and our services", code="import_forbidden")


def check_batch(size: int) -> None:
    if size == 0:
        raise InvalidArgument("the batch is empty", code="import_batch_empty")
    if size > MAX_BATCH:
        raise InvalidArgument(f"at most {MAX_BATCH} records per batch", code="import_batch_too_large", size=size)


@contextlib.contextmanager
def at_record(index: int, ref: str = "") -> Iterator[None]:
    """Names the record a refusal is about (its index in the batch and its external_ref)."""
    try:
        yield
    except DomainError as exc:
        exc.metadata.update(record=str(index), external_ref=ref[:EXTERNAL_REF_MAX])
        exc.message = f"record {index}: {exc.message}"
        exc.args = (exc.message,)
        raise


def clean_refs(refs: Sequence[str]) -> list[str]:
    cleaned: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(refs):
        with at_record(index, raw):
            ref = raw.strip()
            if not 1 <= len(ref) <= EXTERNAL_REF_MAX or any(ch in ref for ch in "\x00\r\n"):
                raise InvalidArgument(
                    f"external_ref must be 1-{EXTERNAL_REF_MAX} characters", code="external_ref_invalid"
                )
            if ref in seen:
                raise InvalidArgument("the same external_ref twice in one batch", code="external_ref_repeated")
            seen.add(ref)
            cleaned.append(ref)
    return cleaned


def past_time(value: datetime | None, now: datetime, name: str = "created_at") -> datetime:
    if value is None:
        raise InvalidArgument(f"{name} is required", code=f"{name}_required")
    if value > now + FUTURE_SKEW:
        raise InvalidArgument(f"{name} is in the future", code=f"{name}_in_future")
    return value


def person_id(value: str, what: str) -> str:
    value = value.strip()
    if not 1 <= len(value) <= 64 or "\x00" in value:
        raise InvalidArgument(f"{what} must be a person id", code=f"{what}_invalid")
    return value


class People:
    """Authors as the boards projections know them: verified memberships and roles, as principals."""

    def __init__(self, principals: dict[str, Principal]) -> None:
        self.principals = principals

    @classmethod
    async def load(cls, session: AsyncSession, person_ids: set[str]) -> People:
        ids = sorted(person_ids)
        roles: dict[str, set[tuple[str, str]]] = {pid: set() for pid in ids}
        members, holders = Member.__table__.c, RoleHolder.__table__.c
        for pid, nid, active in await rows_among(
            session, (members.person_id, members.neighbourhood_id, members.active), members.person_id, ids
        ):
            if active:
                roles[pid].add((auth.RESIDENT, f"n:{nid}"))
        for pid, role, scope in await rows_among(
            session, (holders.person_id, holders.role, holders.scope), holders.person_id, ids
        ):
            roles[pid].add((role, scope))
        return cls({pid: Principal(subject=pid, roles=frozenset(r)) for pid, r in roles.items()})

    def of(self, person: str) -> Principal:
        return self.principals.get(person) or Principal(subject=person)


class Boards:
    """The batch's boards with their lineage and effective policy (one query each, not one per record)."""

    def __init__(self, boards: dict[str, Board], lineages: dict[str, Lineage], overrides: dict[str, Any]) -> None:
        self.boards = boards
        self.lineages = lineages
        self.overrides = overrides
        self.allowed: set[tuple[str, str, str]] = set()

    @classmethod
    async def load(cls, session: AsyncSession, board_ids: set[str]) -> Boards:
        boards: dict[str, Board] = {}
        ids = sorted(board_ids)
        for start in range(0, len(ids), 1000):
            rows = await session.execute(select(Board).where(Board.id.in_(ids[start : start + 1000])))
            boards.update({b.id: b for b in rows.scalars()})
        return await cls._complete(session, boards)

    @classmethod
    async def deliberation_halls(cls, session: AsyncSession, neighbourhood_ids: set[str]) -> Boards:
        rows = await session.execute(
            select(Board).where(
                Board.neighbourhood_id.in_(sorted(neighbourhood_ids)), Board.kind == catalogue.DELIBERATION_HALL
            )
        )
        return await cls._complete(session, {b.id: b for b in rows.scalars()})

    @classmethod
    async def _complete(cls, session: AsyncSession, boards: dict[str, Board]) -> Boards:
        neighbourhoods = {b.neighbourhood_id for b in boards.values() if b.neighbourhood_id}
        lineages = {lin.neighbourhood_id: lin for lin in await lineages_of(session, neighbourhoods)}
        districts = sorted({b.district_id or "" for b in boards.values()})
        overrides: dict[str, dict[str, catalogue.BoardKind]] = {d: {} for d in districts}
        if districts:
            rows = await session.execute(select(CatalogueOverride).where(CatalogueOverride.district_id.in_(districts)))
            for row in rows.scalars():
                overrides[row.district_id][row.kind] = override_kind(row)
        return cls(boards, lineages, overrides)

    def board(self, board_id: str) -> Board:
        board = self.boards.get(board_id)
        if board is None:
            raise NotFound("no such board", code="board_not_found")
        return board

    def hall_of(self, neighbourhood_id: str) -> Board:
        for board in self.boards.values():
            if board.neighbourhood_id == neighbourhood_id:
                return board
        raise NotFound("this neighbourhood has no deliberation hall", code="board_not_found")

    def lineage(self, board: Board) -> Lineage:
        lineage = self.lineages.get(board.neighbourhood_id or "")
        if lineage is None:
            raise FailedPrecondition("the board's neighbourhood is not known here yet", code="neighbourhood_unknown")
        return lineage

    def audiences(self, principal: Principal, board: Board) -> frozenset[str]:
        return neighbourhood_audiences(principal, self.lineage(board))

    def require(self, principal: Principal, board: Board, action: str) -> None:
        """The board's policy for the person: `post` or `comment` (reading implied); decided once per
        (person, board, action) in a batch."""
        key = (principal.subject, board.id, action)
        if key in self.allowed:
            return
        perms = permissions(
            policy_of(board, self.overrides.get(board.district_id or "", {})), self.audiences(principal, board)
        )
        allowed = perms.can_read and (perms.can_post if action == "post" else perms.can_comment)
        if not allowed:
            raise FailedPrecondition(
                f"the author may not {action} on this board (not a member the board's policy admits)",
                code=f"author_may_not_{action}",
            )
        self.allowed.add(key)


async def existing_refs(session: AsyncSession, model: Any, refs: Sequence[str]) -> dict[str, str]:
    table = model.__table__
    return {
        row[0]: row[1]
        for row in await rows_among(session, (table.c.external_ref, table.c.id), table.c.external_ref, refs)
    }


async def insert_new(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> set[str]:
    """Bulk INSERT … ON CONFLICT (external_ref) DO NOTHING RETURNING id: the ids this call inserted (posts and
    comments come by the million: their rows go in as arrays, one statement compiled once)."""
    return await insert_many(model.__table__, ("external_ref",), "id").rows(session, rows)


async def posts_imported(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Imported posts show on their places' feeds: those first pages are stale (one bump per place)."""
    await FeedVersionRepository(session).bump(feed_place(row["neighbourhood_id"], row["district_id"]) for row in rows)


async def insert_all(session: AsyncSession, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), 1000):
        await session.execute(_insert(session, model.__table__), rows[start : start + 1000])


def _obj(**values: Any) -> Any:
    """A row as the event builders read it (attribute access), without the ORM's instance bookkeeping."""
    return SimpleNamespace(**values)


def post_row(
    board: Board, author: str, draft: content.PostDraft, at: datetime, ref: str, topic_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "board_id": board.id,
        "board_kind": board.kind,
        "neighbourhood_id": board.neighbourhood_id,
        "district_id": board.district_id or "",
        "author_id": author,
        "title": draft.title,
        "body": draft.body,
        "image_refs": list(draft.image_refs),
        "tags": list(draft.tags),
        "mentioned_handles": [],
        "status": content.VISIBLE,
        "pinned": False,
        "locked": False,
        "like_count": 0,
        "comment_count": 0,
        "official_answer_count": 0,
        "version": 1,
        "topic_id": topic_id,
        "affair_id": None,
        "created_at": at,
        "edited_at": None,
        "deleted_at": None,
        "deleted_by": None,
        "external_ref": ref,
    }


def comment_row(
    post_id: str,
    board_id: str,
    neighbourhood_id: str | None,
    author: str,
    body: str,
    kind: str,
    at: datetime,
    ref: str | None,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "post_id": post_id,
        "parent_id": None,
        "board_id": board_id,
        "neighbourhood_id": neighbourhood_id,
        "author_id": author,
        "body": body,
        "kind": kind,
        "status": content.VISIBLE,
        "like_count": 0,
        "reply_count": 0,
        "version": 1,
        "source_event_id": None,
        "created_at": at,
        "edited_at": None,
        "deleted_at": None,
        "external_ref": ref,
    }


async def bump_comment_counts(session: AsyncSession, per_post: dict[str, int]) -> None:
    """comment_count += n per post, the posts locked in post-id order (two batches never lock the same posts
    crosswise). PostgreSQL: the locks in one statement, the counts in another (a statement per post was a
    tenth of the comment import's database time)."""
    if not per_post:
        return
    posts = Post.__table__
    ordered = sorted(per_post.items())
    if session.get_bind().dialect.name == "postgresql":
        ids = [pid for pid, _ in ordered]
        await _LOCK_POSTS.execute(session, {"ids": ids})
        await _ADD_COMMENTS.execute(session, {"ids": ids, "counts": [n for _, n in ordered]})
        return
    statement = (
        update(posts).where(posts.c.id == bindparam("pid")).values(comment_count=posts.c.comment_count + bindparam("n"))
    )
    await session.execute(statement, [{"pid": pid, "n": n} for pid, n in ordered])


_LOCK_POSTS = CompiledOnce(
    select(Post.__table__.c.id)
    .where(Post.__table__.c.id == any_(bindparam("ids", type_=postgresql.ARRAY(String()))))
    .order_by(Post.__table__.c.id)
    # The lock the UPDATE takes (FOR UPDATE would also wait on other batches' foreign-key checks of their
    # new comments, which hold KEY SHARE on the same posts: a deadlock).
    .with_for_update(key_share=True)
)
_ADDED = (
    func.unnest(
        bindparam("ids", type_=postgresql.ARRAY(String())), bindparam("counts", type_=postgresql.ARRAY(Integer()))
    )
    .table_valued("id", "n")
    .render_derived()
)
_ADD_COMMENTS = CompiledOnce(
    update(Post.__table__)
    .where(Post.__table__.c.id == _ADDED.c.id)
    .values(comment_count=Post.__table__.c.comment_count + _ADDED.c.n)
)


class ImportUseCases:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.statistics = PlannerStatistics()

    async def _emit(self, session: AsyncSession, events: list[tuple[str, Message]], rows: int, *tables: str) -> None:
        """The batch's events, and the planner's statistics of the tables it grew (by `rows`) kept current."""
        await self.ctx.events.outbox.add_many(session, events)
        await self.statistics.wrote(session, len(events), "outbox")
        await self.statistics.wrote(session, rows, *tables)

    # --- posts ----------------------------------------------------------------------------------------
    async def posts(self, principal: Principal, records: Sequence[PostRecord]) -> ImportOutcome:
        require_importer(principal)
        check_batch(len(records))
        refs = clean_refs([r.external_ref for r in records])
        now = self.ctx.clock.now()
        drafts: list[content.PostDraft] = []
        times: list[datetime] = []
        authors: list[str] = []
        for index, record in enumerate(records):
            with at_record(index, refs[index]):
                drafts.append(content.validate_post(record.title, record.body, (), record.tags, ()))
                times.append(past_time(record.created_at, now))
                authors.append(person_id(record.author_id, "author_id"))
        async with self.ctx.sessions() as session, session.begin():
            boards = await Boards.load(session, {r.board_id.strip() for r in records})
            people = await People.load(session, set(authors))
            rows: list[dict[str, Any]] = []
            for index, record in enumerate(records):
                with at_record(index, refs[index]):
                    board = boards.board(record.board_id.strip())
                    if not board.neighbourhood_id:
                        raise InvalidArgument("imports go to a neighbourhood's boards", code="import_board_district")
                    if board.kind == catalogue.NEIGHBOURHOOD_MATTERS:
                        raise InvalidArgument(
                            "posts in 身边事 become issues: import those with ImportIssues",
                            code="import_board_collects_issues",
                        )
                    boards.require(people.of(authors[index]), board, "post")
                    rows.append(post_row(board, authors[index], drafts[index], times[index], refs[index]))
            inserted = await insert_new(session, Post, rows)
            created = [row for row in rows if row["id"] in inserted]
            await posts_imported(session, created)
            await self._emit(
                session,
                posts_imported_messages([post_created_message(_obj(**row), [], []) for row in created]),
                len(created),
                "posts",
            )
            return await self._outcome(session, Post, refs, rows, inserted)

    async def _outcome(
        self, session: AsyncSession, model: Any, refs: list[str], rows: list[dict[str, Any]], inserted: set[str]
    ) -> ImportOutcome:
        ids = {row["external_ref"]: row["id"] for row in rows if row["id"] in inserted}
        missing = [ref for ref in refs if ref not in ids]
        known = await existing_refs(session, model, missing) if missing else {}
        outcome = ImportOutcome(received=len(refs), created=len(inserted), skipped=len(refs) - len(inserted))
        outcome.records = [(ref, ids.get(ref) or known.get(ref, ""), ref in ids) for ref in refs]
        return outcome

    # --- comments -------------------------------------------------------------------------------------
    async def comments(self, principal: Principal, records: Sequence[CommentRecord]) -> ImportOutcome:
        require_importer(principal)
        check_batch(len(records))
        refs = clean_refs([r.external_ref for r in records])
        now = self.ctx.clock.now()
        bodies, times, authors = [], [], []
        for index, record in enumerate(records):
            with at_record(index, refs[index]):
                if bool(record.post_id.strip()) == bool(record.post_external_ref.strip()):
                    raise InvalidArgument(
                        "name the post by its id or by its external_ref (one of them)", code="post_ref_invalid"
                    )
                bodies.append(content.validate_comment_body(record.body))
                times.append(past_time(record.created_at, now))
                authors.append(person_id(record.author_id, "author_id"))
        async with self.ctx.sessions() as session, session.begin():
            posts = await self._posts_of(session, records)
            boards = await Boards.load(session, {p.board_id for p in posts.values()})
            people = await People.load(session, set(authors))
            rows: list[dict[str, Any]] = []
            for index, record in enumerate(records):
                with at_record(index, refs[index]):
                    key = record.post_id.strip() or "ref:" + record.post_external_ref.strip()
                    post = posts.get(key)
                    if post is None or post.status == content.DELETED:
                        raise NotFound("no such post", code="post_not_found")
                    if post.status != content.VISIBLE:
                        raise FailedPrecondition("the post is hidden", code="post_hidden")
                    if post.locked:
                        raise FailedPrecondition("the thread is locked", code="post_locked")
                    if times[index] < post.created_at:
                        raise InvalidArgument("a comment cannot be older than its post", code="created_before_post")
                    boards.require(people.of(authors[index]), boards.board(post.board_id), "comment")
                    rows.append(
                        comment_row(
                            post.id,
                            post.board_id,
                            post.neighbourhood_id,
                            authors[index],
                            bodies[index],
                            content.MEMBER_COMMENT,
                            times[index],
                            refs[index],
                        )
                    )
            inserted = await insert_new(session, Comment, rows)
            created = [row for row in rows if row["id"] in inserted]
            per_post: dict[str, int] = {}
            for row in created:
                per_post[row["post_id"]] = per_post.get(row["post_id"], 0) + 1
            kinds = {p.id: p.board_kind for p in posts.values()}
            await self._emit(
                session,
                comments_imported_messages(
                    [comment_created_message(_obj(**row), kinds[row["post_id"]], []) for row in created]
                ),
                len(created),
                "comments",
            )
            outcome = await self._outcome(session, Comment, refs, rows, inserted)
            # Last before the commit: the posts' row locks are held for as short a time as can be (batches
            # importing at once comment on the same popular posts).
            await bump_comment_counts(session, per_post)
            return outcome

    async def _posts_of(self, session: AsyncSession, records: Sequence[CommentRecord]) -> dict[str, Any]:
        """The posts commented on (the columns the rules need, not whole ORM objects), by id and by "ref:<ref>"."""
        ids = sorted({r.post_id.strip() for r in records if r.post_id.strip()})
        refs = sorted({r.post_external_ref.strip() for r in records if r.post_external_ref.strip()})
        posts = Post.__table__.c
        columns = (
            posts.id,
            posts.board_id,
            posts.board_kind,
            posts.neighbourhood_id,
            posts.status,
            posts.locked,
            posts.created_at,
            posts.external_ref,
        )
        found: dict[str, Any] = {p.id: p for p in await rows_among(session, columns, posts.id, ids)}
        found.update({f"ref:{p.external_ref}": p for p in await rows_among(session, columns, posts.external_ref, refs)})
        return found

    # --- topics and conventions ----------------------------------------------------------------------
    async def topics(self, principal: Principal, records: Sequence[TopicRecord]) -> ImportOutcome:
        require_importer(principal)
        check_batch(len(records))
        refs = clean_refs([r.external_ref for r in records])
        now = self.ctx.clock.now()
        plans = [self._plan_topic(index, refs[index], record, now) for index, record in enumerate(records)]
        async with self.ctx.sessions() as session, session.begin():
            halls = await Boards.deliberation_halls(session, {p.neighbourhood_id for p in plans})
            actors = {p.proposer_id for p in plans} | {s.actor_id for p in plans for s in p.steps}
            people = await People.load(session, actors)
            topics, posts, steps, milestones, conventions, versions, comments = [], [], [], [], [], [], []
            events: list[tuple[str, Message]] = []
            for index, p in enumerate(plans):
                with at_record(index, refs[index]):
                    hall = halls.hall_of(p.neighbourhood_id)
                    halls.require(people.of(p.proposer_id), hall, "post")
                    for step in p.steps:
                        if not {COMMITTEE, STAFF} & halls.audiences(people.of(step.actor_id), hall):
                            raise FailedPrecondition(
                                "a step is taken by the neighbourhood's committee (or staff above it)",
                                code="step_actor_not_committee",
                            )
                topic_id = new_id()
                post = post_row(
                    hall,
                    p.proposer_id,
                    content.PostDraft(p.title, p.description, (), ("议题",), ()),
                    p.created_at,
                    f"topic:{refs[index]}",
                    topic_id,
                )
                last = p.steps[-1].at if p.steps else p.created_at
                stage = p.steps[-1].to_stage if p.steps else chain.PROPOSED
                convention_id = new_id() if p.convention is not None else None
                topic = {
                    "id": topic_id,
                    "neighbourhood_id": p.neighbourhood_id,
                    "post_id": post["id"],
                    "title": p.title,
                    "description": p.description,
                    "proposer_id": p.proposer_id,
                    "stage": stage,
                    "owner_id": p.owner_id or None,
                    "budget_note": p.budget_note,
                    "evaluation_summary": p.evaluation_summary,
                    "convention_id": convention_id,
                    "created_at": p.created_at,
                    "updated_at": last,
                    "external_ref": refs[index],
                }
                topics.append((topic, post, p, convention_id))
            before = await existing_refs(session, Topic, refs)
            fresh = [t for t in topics if t[0]["external_ref"] not in before]
            inserted = await insert_new(session, Topic, [t[0] for t in fresh])
            for topic, post, p, convention_id in fresh:
                if topic["id"] not in inserted:
                    continue
                post["comment_count"] = len(p.steps)
                posts.append(post)
                topic_obj = _obj(**topic)
                events.append((POST_CREATED, post_created_message(_obj(**post), [], [])))
                history = [(chain.PROPOSED, "", p.proposer_id, "提出议题", p.created_at)]
                previous = chain.PROPOSED
                for step in p.steps:
                    history.append((step.to_stage, previous, step.actor_id, step.reason, step.at))
                    previous = step.to_stage
                for seq, (to_stage, from_stage, actor, reason, at) in enumerate(history, start=1):
                    steps.append(
                        {
                            "id": new_id(),
                            "topic_id": topic["id"],
                            "seq": seq,
                            "from_stage": from_stage,
                            "to_stage": to_stage,
                            "actor_id": actor,
                            "reason": reason,
                            "at": at,
                        }
                    )
                    topic_obj.stage = to_stage
                    events.append(
                        (TOPIC_STAGE_CHANGED, topic_stage_changed_message(topic_obj, from_stage, actor, reason, at))
                    )
                    if from_stage:
                        text = f"议题进入「{STAGE_NAMES[to_stage]}」阶段：{reason}"
                        row = comment_row(
                            post["id"],
                            post["board_id"],
                            post["neighbourhood_id"],
                            SYSTEM_AUTHOR,
                            text[: content.COMMENT_BODY_MAX],
                            content.SYSTEM_COMMENT,
                            at,
                            None,
                        )
                        comments.append(row)
                        events.append((COMMENT_CREATED, comment_created_message(_obj(**row), post["board_kind"], [])))
                for position, m in enumerate(p.milestones):
                    milestones.append(
                        {
                            "id": new_id(),
                            "topic_id": topic["id"],
                            "position": position,
                            "title": m.title,
                            "due_at": m.due_at,
                            "progress": m.progress,
                            "note": "",
                            "updated_by": p.owner_id if m.progress else None,
                            "updated_at": (p.steps[-1].at if p.steps else None) if m.progress else None,
                        }
                    )
                if p.convention is not None and convention_id is not None:
                    adopting = p.steps[-1]
                    row = {
                        "id": convention_id,
                        "neighbourhood_id": p.neighbourhood_id,
                        "topic_id": topic["id"],
                        "title": p.convention.title,
                        "current_version": 1,
                        "created_at": adopting.at,
                        "updated_at": adopting.at,
                    }
                    conventions.append(row)
                    versions.append(
                        {
                            "convention_id": convention_id,
                            "version": 1,
                            "text": p.convention.text,
                            # The vote happened before the platform: its tally is kept, there is no poll here.
                            "poll_id": "",
                            "tally": [{"label": label, "votes": votes} for label, votes in p.convention.tally],
                            "ballot_count": p.convention.ballot_count,
                            "adopted_by": adopting.actor_id,
                            "adopted_at": adopting.at,
                            "reason": adopting.reason,
                        }
                    )
                    events.append(
                        (
                            CONVENTION_ADOPTED,
                            convention_adopted_message(_obj(**row), 1, "", adopting.actor_id, adopting.at),
                        )
                    )
            await insert_all(session, Post, posts)
            await posts_imported(session, posts)
            await insert_all(session, TopicStepRow, steps)
            await insert_all(session, MilestoneRow, milestones)
            await insert_all(session, ConventionRow, conventions)
            await insert_all(session, ConventionVersionRow, versions)
            await insert_all(session, Comment, comments)
            await self._emit(session, events, len(events), "topics", "posts", "comments")
            return await self._outcome(session, Topic, refs, [t[0] for t in topics], inserted)

    def _plan_topic(self, index: int, ref: str, record: TopicRecord, now: datetime) -> _TopicPlan:
        with at_record(index, ref):
            title, description = chain.validate_proposal(record.title, record.description)
            created_at = past_time(record.created_at, now)
            proposer = person_id(record.proposer_id, "proposer_id")
            neighbourhood = record.neighbourhood_id.strip()
            if not neighbourhood:
                raise InvalidArgument("say which neighbourhood", code="neighbourhood_required")
            reached = [s.to_stage for s in record.steps]
            milestones = tuple(record.milestones)
            if milestones and chain.PROJECT not in reached:
                raise InvalidArgument("milestones belong to a project", code="milestones_unexpected")
            if any(m.progress for m in milestones) and chain.IMPLEMENTATION not in reached:
                raise InvalidArgument("progress is made during implementation", code="milestones_unexpected")
            for m in milestones:
                chain.validate_progress(m.progress, "")
            summary = record.evaluation_summary.strip()
            if summary:
                if chain.EVALUATION not in reached:
                    raise InvalidArgument(
                        "the summary is written during evaluation", code="evaluation_summary_unexpected"
                    )
                summary = chain.validate_summary(summary)
            if record.convention is not None and chain.CONVENTION not in reached:
                raise InvalidArgument(
                    "a convention is established at the end of the chain", code="convention_unexpected"
                )
            facts = chain.TopicFacts(tuple(m.progress for m in milestones), summary)
            current, previous_at = chain.PROPOSED, created_at
            steps: list[StepRecord] = []
            draft_plan: chain.ProjectPlan | None = None
            for step in record.steps:
                at = past_time(step.at, now, "at")
                if at < previous_at:
                    raise InvalidArgument(
                        "the steps must be in time order, after the proposal", code="steps_out_of_order"
                    )
                plan = None
                draft = None
                if step.to_stage == chain.PROJECT:
                    plan = draft_plan = chain.validate_plan(
                        record.owner_id, record.budget_note, [(m.title, m.due_at) for m in milestones]
                    )
                if step.to_stage == chain.CONVENTION:
                    if record.convention is None:
                        raise InvalidArgument("a convention needs its text and vote", code="convention_draft_required")
                    draft = chain.validate_draft(record.convention.title, record.convention.text, "imported")
                    _check_tally(record.convention)
                chain.check_transition(current, step.to_stage, facts, plan, draft)
                steps.append(
                    StepRecord(
                        step.to_stage, person_id(step.actor_id, "actor_id"), chain.validate_reason(step.reason), at
                    )
                )
                current, previous_at = step.to_stage, at
            convention = None
            if record.convention is not None:
                convention = ConventionRecord(
                    record.convention.title.strip(),
                    record.convention.text.strip(),
                    tuple((label.strip(), votes) for label, votes in record.convention.tally),
                    record.convention.ballot_count,
                )
            return _TopicPlan(
                neighbourhood_id=neighbourhood,
                proposer_id=proposer,
                title=title,
                description=description,
                created_at=created_at,
                steps=tuple(steps),
                owner_id=draft_plan.owner_id if draft_plan else "",
                budget_note=draft_plan.budget_note if draft_plan else "",
                milestones=tuple(MilestoneRecord(m.title.strip(), m.due_at, m.progress) for m in milestones),
                evaluation_summary=summary,
                convention=convention,
            )


def _check_tally(convention: ConventionRecord) -> None:
    if not 1 <= len(convention.tally) <= 20:
        raise InvalidArgument("the adopting vote needs its options and counts", code="convention_tally_invalid")
    for label, votes in convention.tally:
        if not 1 <= len(label.strip()) <= 100 or votes < 0:
            raise InvalidArgument("each option needs a label and a count", code="convention_tally_invalid")
    if convention.ballot_count < 0 or convention.ballot_count < max(v for _, v in convention.tally):
        raise InvalidArgument("the ballots do not add up", code="convention_tally_invalid")


@dataclass(frozen=True)
class _TopicPlan:
    neighbourhood_id: str
    proposer_id: str
    title: str
    description: str
    created_at: datetime
    steps: tuple[StepRecord, ...]
    owner_id: str
    budget_note: str
    milestones: tuple[MilestoneRecord, ...]
    evaluation_summary: str
    convention: ConventionRecord | None
