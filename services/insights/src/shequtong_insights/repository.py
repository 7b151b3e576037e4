"""SQLAlchemy queries of insights: projection writes (upserts that work on PostgreSQL and SQLite) and
the reads behind portraits, comparisons, exports, detection and prompts."""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, false, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_insights.domain import painpoints as pp
from shequtong_insights.domain.access import PromptScope
from shequtong_insights.domain.facts import NOT_OPEN, IssueFacts
from shequtong_insights.domain.figures import RawFigures
from shequtong_insights.domain.members import MemberFacts
from shequtong_insights.domain.periods import Period
from shequtong_insights.models import (
    PROJECTION_TABLES,
    Activity,
    Convention,
    DailyCounter,
    Issue,
    Lock,
    Member,
    Neighbourhood,
    Prompt,
    RebuildRun,
    Topic,
)
from shequtong_kit import prefetch
from shequtong_kit.db import (
    CompiledOnce,
    PlannerStatistics,
    Upsert,
    as_arrays,
    inbox,
    insert_many,
    matches_any,
    once_per_transaction,
    region_directory,
    unnested_insert,
)

CHUNK = 500
PROJECTION_LOCK = "projection"
PENDING_FIGURES = "insights.pending_figures"
# The memberships a transaction read and saved (`MemberRows`).
MEMBERS = "insights.members"
CHUNK_MEMBERS = 1000
DETECTOR_LOCK = "detector"
FACT_FIELDS = tuple(IssueFacts.__dataclass_fields__)


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class DoesNotFit(ValueError):
    """A value wider than its projection column: no retry can store it."""


def _fits(table: Any, **values: str) -> None:
    for name, value in values.items():
        length = table.c[name].type.length
        if length is not None and len(value) > length:
            raise DoesNotFit(f"{table.name}.{name} holds at most {length} characters")


def _width(table: Any, name: str) -> int:
    return int(table.c[name].type.length)


@dataclass
class PendingFigures:
    counters: Counter[tuple[str, date, str]] = field(default_factory=Counter)
    activity: set[tuple[str, date, str]] = field(default_factory=set)


def _chunks(ids: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


_COUNTER_COLUMNS = ("neighbourhood_id", "day", "metric", "value")
# What `_fits` checks, read once: a counter is added twice per imported resident.
_COUNTER_NEIGHBOURHOOD = _width(DailyCounter.__table__, "neighbourhood_id")
_COUNTER_METRIC = _width(DailyCounter.__table__, "metric")
_ACTIVITY_COLUMNS = ("neighbourhood_id", "day", "person_id")


def _add_counters() -> CompiledOnce:
    counters = DailyCounter.__table__
    stmt = unnested_insert(counters, _COUNTER_COLUMNS)
    stmt = stmt.on_conflict_do_update(
        index_elements=["neighbourhood_id", "day", "metric"], set_={"value": counters.c.value + stmt.excluded.value}
    )
    return CompiledOnce(stmt)


_ADD_COUNTERS = _add_counters()
_ADD_ACTIVITY = CompiledOnce(unnested_insert(Activity.__table__, _ACTIVITY_COLUMNS).on_conflict_do_nothing())


@dataclass
class MemberRows:
    """The memberships of one transaction as plain values, not ORM objects: an import's pack makes a
    thousand at a time, and building, tracking and flushing them as objects cost more than everything else
    insights does with its residents."""

    known: dict[str, MemberFacts | None] = field(default_factory=dict)  # read or saved; None: no row
    stored: set[str] = field(default_factory=set)  # those with a row in the database
    changed: set[str] = field(default_factory=set)  # saved since they were last written


@functools.cache
def _members_among(dialect: str) -> Any:
    """The membership rows among `ids`, locked (FOR UPDATE on PostgreSQL), in key order."""
    members = Member.__table__
    columns = [members.c[name] for name in MemberFacts._fields]
    return (
        select(*columns)
        .where(matches_any(members.c.membership_id, "ids", dialect))
        .order_by(members.c.membership_id)
        .with_for_update()
    )


# A changed membership's row, locked since it was read: its new values.
_UPDATE_MEMBERS = Upsert(Member.__table__, MemberFacts._fields, ["membership_id"], MemberFacts._fields[3:])


class ProjectionWriter:
    """Writes of the event handlers; each handler runs in one transaction with its inbox row."""

    def __init__(self, session: AsyncSession, statistics: PlannerStatistics | None = None) -> None:
        self.session = session
        # The process's account of the rows it inserted (an import's residents grow the members' table by
        # hundreds of thousands): analyzed as it grows, so the batches' look-ups keep using its index.
        self.statistics = statistics
        self._member_rows: MemberRows | None = None  # the session's, once asked for

    async def share_projection_lock(self) -> None:
        """Handlers share this row lock; a rebuild takes it exclusively while it drops everything.

        Taken once per transaction: the consumer handles a whole batch of events in one."""

        async def lock() -> None:
            await self.session.execute(select(Lock.name).where(Lock.name == PROJECTION_LOCK).with_for_update(read=True))

        await once_per_transaction(self.session, PROJECTION_LOCK, lock)

    async def add(self, neighbourhood_id: str, day: date, metric: str, delta: int = 1) -> None:
        if not neighbourhood_id or delta == 0:
            return
        if len(neighbourhood_id) > _COUNTER_NEIGHBOURHOOD or len(metric) > _COUNTER_METRIC:
            _fits(DailyCounter.__table__, neighbourhood_id=neighbourhood_id, metric=metric)
        self._pending.counters[(neighbourhood_id, day, metric)] += delta

    async def took_part(self, neighbourhood_id: str, day: date, person_id: str) -> None:
        if not neighbourhood_id or not person_id:
            return
        _fits(Activity.__table__, neighbourhood_id=neighbourhood_id, person_id=person_id)
        self._pending.activity.add((neighbourhood_id, day, person_id))

    @property
    def _pending(self) -> PendingFigures:
        """Counters and activity of this transaction's events, written together by `write_pending`."""
        pending = self.session.info.get(PENDING_FIGURES)
        if pending is None:
            pending = self.session.info[PENDING_FIGURES] = PendingFigures()
        return pending

    async def write_pending(self) -> None:
        """The transaction's new memberships, one upsert of every counter delta and one insert of every
        activity row."""
        await self.write_members()
        pending = self.session.info.pop(PENDING_FIGURES, None)
        if pending is None:
            return
        if self.session.get_bind().dialect.name == "postgresql":
            await self._write_pending_postgres(pending)
            return
        counters = DailyCounter.__table__
        for chunk in _chunks(list(pending.counters.items())):
            stmt = _insert(self.session, counters).values(
                [{"neighbourhood_id": n, "day": d, "metric": m, "value": v} for (n, d, m), v in chunk if v]
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["neighbourhood_id", "day", "metric"],
                set_={"value": counters.c.value + stmt.excluded.value},
            )
            await self.session.execute(stmt)
        for rows in _chunks(sorted(pending.activity)):
            stmt = _insert(self.session, Activity.__table__).values(
                [{"neighbourhood_id": n, "day": d, "person_id": p} for n, d, p in rows]
            )
            await self.session.execute(stmt.on_conflict_do_nothing())

    async def _write_pending_postgres(self, pending: PendingFigures) -> None:
        """The same two writes as arrays unnested into rows: one statement text whatever the count, compiled
        once (SQLAlchemy compiles every `INSERT … ON CONFLICT` again, a multi-row one per row count)."""
        # In key order, as every writer does: two transactions never wait on each other's rows crosswise.
        deltas = sorted((n, d, m, v) for (n, d, m), v in pending.counters.items() if v)
        if deltas:
            await _ADD_COUNTERS.execute(self.session, as_arrays(_COUNTER_COLUMNS, deltas))
        if pending.activity:
            await _ADD_ACTIVITY.execute(self.session, as_arrays(_ACTIVITY_COLUMNS, sorted(pending.activity)))

    async def neighbourhood(self, values: dict[str, Any]) -> None:
        """Upsert; the earliest time seen is when it opened (a copy of the event keeps it)."""
        found = await self.session.get(Neighbourhood, values["neighbourhood_id"], with_for_update=True)
        if found is None:
            self.session.add(Neighbourhood(**values))
            return
        for key in ("code", "name", "kind", "subdistrict_id", "district_id"):
            setattr(found, key, values[key])
        found.created_at = min(found.created_at, values["created_at"])

    async def member(self, membership_id: str) -> MemberFacts | None:
        """The membership as this transaction knows it (its row locked, or as a handler saved it), None when
        it has none."""
        known = self._members.known
        if membership_id not in known:
            await self._load_members([membership_id])
        return known[membership_id]

    def save_member(self, facts: MemberFacts) -> None:
        """Kept until `write_members` (at the end of the event's handler, or of a batch flushed at its commit)."""
        members = self._members
        members.known[facts.membership_id] = facts
        members.changed.add(facts.membership_id)

    @property
    def _members(self) -> MemberRows:
        members = self._member_rows
        if members is None:
            members = self.session.info.get(MEMBERS)
            if members is None:
                members = self.session.info[MEMBERS] = MemberRows()
            self._member_rows = members
        return members

    async def _load_members(self, membership_ids: Iterable[str]) -> None:
        """The rows of these memberships not known yet, locked (in key order, as every writer takes them), and
        which of them have none; one statement per 1,000."""
        members = self._members
        wanted = sorted({key for key in membership_ids if key not in members.known})
        statement = _members_among(self.session.get_bind().dialect.name)
        for start in range(0, len(wanted), CHUNK_MEMBERS):
            chunk = wanted[start : start + CHUNK_MEMBERS]
            found = {row[0]: MemberFacts(*row) for row in await self.session.execute(statement, {"ids": chunk})}
            members.stored.update(found)
            for key in chunk:
                members.known[key] = found.get(key)

    async def write_members(self) -> None:
        """Writes the memberships saved since the last call: new ones in one plain INSERT per 1,000 (a row
        another transaction made meanwhile fails the batch, whose events are then applied one per transaction,
        each to the row it finds), changed ones (locked since they were read) in one upsert per 1,000."""
        members: MemberRows | None = self.session.info.get(MEMBERS)
        if members is None or not members.changed:
            return
        changed = sorted(members.changed)
        members.changed.clear()
        new: list[dict[str, Any]] = []
        stored: list[dict[str, Any]] = []
        for key in changed:
            facts = members.known[key]
            if facts is None:
                continue
            (stored if key in members.stored else new).append(facts._asdict())
        if new:
            await insert_many(Member.__table__).rows(self.session, new)
            members.stored.update(row["membership_id"] for row in new)
            if self.statistics is not None:
                await self.statistics.wrote(self.session, len(new), Member.__tablename__)
        if stored:
            await _UPDATE_MEMBERS.many(self.session, stored)

    def add_row(self, row: Any) -> None:
        prefetch.add(self.session, row)

    async def issue(self, issue_id: str) -> IssueFacts:
        row = await prefetch.get(self.session, Issue, issue_id, lock=True)
        if row is None:
            return IssueFacts(issue_id)
        return IssueFacts(**{name: getattr(row, name) for name in FACT_FIELDS})

    async def save_issue(self, facts: IssueFacts) -> None:
        """Written at the handler's flush (per event, or once at the commit of a prefetched batch)."""
        row = await prefetch.get(self.session, Issue, facts.issue_id)
        values = {name: getattr(facts, name) for name in FACT_FIELDS}
        if row is None:
            prefetch.add(self.session, Issue(**values))
        else:
            for name, value in values.items():
                setattr(row, name, value)

    async def topic(self, topic_id: str) -> Topic | None:
        return await prefetch.get(self.session, Topic, topic_id, lock=True)

    async def convention(self, convention_id: str) -> Convention | None:
        return await prefetch.get(self.session, Convention, convention_id, lock=True)

    async def prefetch_rows(
        self, members: Iterable[str], topics: Iterable[str], conventions: Iterable[str], issues: Iterable[str]
    ) -> None:
        """The rows a batch's handlers will lock and change, locked in one statement per table (after the
        projection lock, as the handlers take it: a rebuild holding it never waits on these rows)."""
        await self.share_projection_lock()
        await self._load_members(members)
        await prefetch.load(self.session, Topic, topics, lock=True)
        await prefetch.load(self.session, Convention, conventions, lock=True)
        await prefetch.load(self.session, Issue, issues, lock=True)


class Reader:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # --- places ----------------------------------------------------------------------------------
    async def neighbourhood(self, neighbourhood_id: str) -> Neighbourhood | None:
        return await self.session.get(Neighbourhood, neighbourhood_id)

    async def neighbourhoods(
        self,
        *,
        subdistrict_id: str = "",
        district_id: str = "",
        kind: int | None = None,
        after: str = "",
        limit: int | None = None,
    ) -> list[Neighbourhood]:
        query = select(Neighbourhood).order_by(Neighbourhood.neighbourhood_id)
        if subdistrict_id:
            query = query.where(Neighbourhood.subdistrict_id == subdistrict_id)
        if district_id:
            query = query.where(Neighbourhood.district_id == district_id)
        if kind is not None:
            query = query.where(Neighbourhood.kind == kind)
        if after:
            query = query.where(Neighbourhood.neighbourhood_id > after)
        if limit is not None:
            query = query.limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def district_of_subdistrict(self, subdistrict_id: str) -> str:
        row = (
            await self.session.execute(
                select(Neighbourhood.district_id).where(Neighbourhood.subdistrict_id == subdistrict_id).limit(1)
            )
        ).first()
        return str(row[0]) if row else ""

    async def places(self) -> dict[str, pp.Place]:
        rows = await self.session.execute(
            select(Neighbourhood.neighbourhood_id, Neighbourhood.subdistrict_id, Neighbourhood.district_id)
        )
        return {nid: pp.Place(nid, sid, did) for nid, sid, did in rows}

    # --- figures ---------------------------------------------------------------------------------
    async def raw_figures(self, ids: Sequence[str], period: Period, now: datetime) -> dict[str, RawFigures]:
        """Raw figures of each neighbourhood over `period` (residents as at its end or now, if sooner)."""
        raws = {nid: RawFigures() for nid in ids}
        at = min(period.end, now)
        for chunk in _chunks(list(ids)):
            await self._counters(chunk, period, raws)
            await self._active(chunk, period, raws)
            await self._residents(chunk, at, raws)
            await self._issues(chunk, period, raws)
            await self._topics_and_conventions(chunk, at, raws)
        return raws

    async def _counters(self, ids: Sequence[str], period: Period, raws: dict[str, RawFigures]) -> None:
        d = DailyCounter
        rows = await self.session.execute(
            select(d.neighbourhood_id, d.metric, func.sum(d.value))
            .where(d.neighbourhood_id.in_(ids), d.day >= period.first_day, d.day <= period.last_day)
            .group_by(d.neighbourhood_id, d.metric)
        )
        for nid, metric, total in rows:
            raws[nid].counters[metric] += int(total or 0)

    async def _active(self, ids: Sequence[str], period: Period, raws: dict[str, RawFigures]) -> None:
        a = Activity
        rows = await self.session.execute(
            select(a.neighbourhood_id, func.count(func.distinct(a.person_id)))
            .where(a.neighbourhood_id.in_(ids), a.day >= period.first_day, a.day <= period.last_day)
            .group_by(a.neighbourhood_id)
        )
        for nid, count in rows:
            raws[nid].active = int(count)

    async def _residents(self, ids: Sequence[str], at: datetime, raws: dict[str, RawFigures]) -> None:
        mm = Member
        rows = await self.session.execute(
            select(
                mm.neighbourhood_id,
                func.count(),
                func.count(func.distinct(func.nullif(mm.household_id, ""))),
            )
            .where(
                mm.neighbourhood_id.in_(ids),
                mm.verified_at.is_not(None),
                mm.verified_at < at,
                or_(mm.left_at.is_(None), mm.left_at >= at),
            )
            .group_by(mm.neighbourhood_id)
        )
        for nid, residents, households in rows:
            raws[nid].residents = int(residents)
            raws[nid].households = int(households)

    async def _issues(self, ids: Sequence[str], period: Period, raws: dict[str, RawFigures]) -> None:
        i = Issue
        reported = await self.session.execute(
            select(i.neighbourhood_id, i.category_code, i.reported_at, i.first_response_at, i.state).where(
                i.neighbourhood_id.in_(ids), i.reported_at >= period.start, i.reported_at < period.end
            )
        )
        for nid, category, reported_at, responded_at, state in reported:
            raw = raws[nid]
            raw.categories[category or "uncategorised"] += 1
            if responded_at is not None:
                raw.response_seconds.append(max(0.0, (responded_at - reported_at).total_seconds()))
            if state not in NOT_OPEN:
                raw.issues_open += 1
        resolved = await self.session.execute(
            select(i.neighbourhood_id, i.reported_at, i.last_resolved_at, i.last_reopened_at, i.resolved_level).where(
                i.neighbourhood_id.in_(ids),
                i.reported_at.is_not(None),
                i.last_resolved_at >= period.start,
                i.last_resolved_at < period.end,
            )
        )
        for nid, reported_at, resolved_at, reopened_at, level in resolved:
            facts = IssueFacts(
                "",
                reported_at=reported_at,
                last_resolved_at=resolved_at,
                last_reopened_at=reopened_at,
                resolved_level=level,
            )
            seconds = facts.resolution_seconds
            if seconds is not None:
                raws[nid].resolutions.append((seconds, facts.resolved_inside))

    async def _topics_and_conventions(self, ids: Sequence[str], at: datetime, raws: dict[str, RawFigures]) -> None:
        rows = await self.session.execute(
            select(Topic.neighbourhood_id, Topic.stage, func.count())
            .where(Topic.neighbourhood_id.in_(ids))
            .group_by(Topic.neighbourhood_id, Topic.stage)
        )
        for nid, stage, count in rows:
            raws[nid].topic_stages[stage] = int(count)
        rows = await self.session.execute(
            select(Convention.neighbourhood_id, func.count())
            .where(Convention.neighbourhood_id.in_(ids), Convention.first_adopted_at < at)
            .group_by(Convention.neighbourhood_id)
        )
        for nid, count in rows:
            raws[nid].conventions_total = int(count)

    async def daily(self, ids: Sequence[str], period: Period) -> dict[tuple[str, date], Counter[str]]:
        result: dict[tuple[str, date], Counter[str]] = defaultdict(Counter)
        d = DailyCounter
        for chunk in _chunks(list(ids)):
            rows = await self.session.execute(
                select(d.neighbourhood_id, d.day, d.metric, d.value).where(
                    d.neighbourhood_id.in_(chunk), d.day >= period.first_day, d.day <= period.last_day
                )
            )
            for nid, day, metric, value in rows:
                result[(nid, day)][metric] += int(value)
        a = Activity
        for chunk in _chunks(list(ids)):
            rows = await self.session.execute(
                select(a.neighbourhood_id, a.day, func.count())
                .where(a.neighbourhood_id.in_(chunk), a.day >= period.first_day, a.day <= period.last_day)
                .group_by(a.neighbourhood_id, a.day)
            )
            for nid, day, count in rows:
                result[(nid, day)]["active_residents"] += int(count)
        return result

    # --- detection -------------------------------------------------------------------------------
    async def sightings(self, since: datetime, until: datetime) -> list[pp.Sighting]:
        i = Issue
        rows = await self.session.execute(
            select(i.issue_id, i.neighbourhood_id, i.category_code, i.building, i.reported_at).where(
                i.reported_at >= since, i.reported_at < until, i.neighbourhood_id != ""
            )
        )
        return [pp.Sighting(*row) for row in rows]

    async def overdue(self, now: datetime) -> dict[str, list[str]]:
        i = Issue
        rows = await self.session.execute(
            select(i.neighbourhood_id, i.issue_id).where(
                i.neighbourhood_id != "",
                i.state.not_in(sorted(NOT_OPEN)),
                or_(
                    and_(i.first_response_at.is_(None), i.response_due_at.is_not(None), i.response_due_at < now),
                    and_(i.resolution_due_at.is_not(None), i.resolution_due_at < now),
                    i.sla_breaches > 0,
                ),
            )
        )
        found: dict[str, list[str]] = defaultdict(list)
        for nid, issue_id in rows:
            found[nid].append(issue_id)
        return found

    async def raised_since(self, since: datetime) -> list[pp.Raised]:
        p = Prompt
        rows = await self.session.execute(
            select(p.level, p.place_id, p.rule, p.subject, p.window_end).where(p.window_end > since)
        )
        return [pp.Raised(*row) for row in rows]

    # --- prompts ---------------------------------------------------------------------------------
    async def prompt(self, prompt_id: str, for_update: bool = False) -> Prompt | None:
        return await self.session.get(Prompt, prompt_id, with_for_update=for_update)

    async def prompts(
        self,
        scope: PromptScope,
        *,
        neighbourhood_id: str,
        subdistrict_id: str,
        district_id: str,
        status: str,
        rule: str,
        before: str,
        limit: int,
    ) -> list[Prompt]:
        p = Prompt
        query = select(p).order_by(p.id.desc()).limit(limit)
        if not scope.everything:
            allowed = []
            if scope.neighbourhoods:
                allowed.append(and_(p.level == pp.NEIGHBOURHOOD, p.neighbourhood_id.in_(sorted(scope.neighbourhoods))))
            if scope.subdistricts:
                allowed.append(p.subdistrict_id.in_(sorted(scope.subdistricts)))
            if scope.districts:
                allowed.append(p.district_id.in_(sorted(scope.districts)))
            query = query.where(or_(*allowed) if allowed else false())
        if neighbourhood_id:
            query = query.where(p.neighbourhood_id == neighbourhood_id)
        if subdistrict_id:
            query = query.where(p.subdistrict_id == subdistrict_id)
        if district_id:
            query = query.where(p.district_id == district_id)
        if status:
            query = query.where(p.status == status)
        if rule:
            query = query.where(p.rule == rule)
        if before:
            query = query.where(p.id < before)
        return list((await self.session.execute(query)).scalars())

    # --- rebuild ---------------------------------------------------------------------------------
    async def rebuild(self, rebuild_id: str) -> RebuildRun | None:
        return await self.session.get(RebuildRun, rebuild_id)

    async def unfinished_rebuilds(self) -> list[RebuildRun]:
        query = select(RebuildRun).where(RebuildRun.phase != "done").order_by(RebuildRun.started_at)
        return list((await self.session.execute(query)).scalars())


async def take_lock(session: AsyncSession, name: str) -> None:
    """Exclusive row lock for the rest of the transaction (PostgreSQL; SQLite serialises writers)."""
    await session.execute(select(Lock.name).where(Lock.name == name).with_for_update())


async def drop_projections(session: AsyncSession, consumers: Iterable[str]) -> int:
    """Empties every projection, the region directory and the consumers' inbox rows; rows dropped."""
    dropped = 0
    for table in (*PROJECTION_TABLES, region_directory):
        result = await session.execute(delete(table))
        dropped += max(result.rowcount or 0, 0)  # type: ignore[attr-defined]
    names = list(consumers)
    await session.execute(delete(inbox).where(inbox.c.consumer.in_(names)))
    return dropped


__all__ = ["ProjectionWriter", "Reader", "drop_projections", "take_lock"]
