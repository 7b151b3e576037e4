"""SQLAlchemy queries of the issues service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_issues.domain.catalogue import Category as CategoryRule
from shequtong_issues.domain.states import OPEN, State
from shequtong_issues.models import (
    Category,
    Dispatch,
    Feedback,
    GridUpdate,
    Issue,
    ResponseTarget,
    SlaBreach,
    SlaClock,
    TimelineEntry,
)
from shequtong_kit.db import region_directory

OPEN_STATES = sorted(s.value for s in OPEN)


@dataclass(frozen=True)
class IssueQuery:
    neighbourhood_id: str | None = None
    subdistrict_id: str | None = None
    escalated_only: bool = False
    public_only: bool = False
    assignee_id: str | None = None
    reporter_id: str | None = None
    states: Sequence[str] = field(default_factory=tuple)
    category_code: str | None = None
    overdue_at: datetime | None = None  # only issues overdue at this time


def category_rule(row: Category) -> CategoryRule:
    return CategoryRule(
        code=row.code,
        name=row.name,
        grid_service_code=row.grid_service_code,
        grid_service_name=row.grid_service_name,
        response_hours=row.response_hours,
        resolution_hours=row.resolution_hours,
        keywords=tuple(row.keywords or ()),
        active=row.active,
        sort_order=row.sort_order,
    )


class IssueRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Row locks on PostgreSQL; SQLite serialises writers itself (and has no FOR UPDATE).
        self._locks = session.bind is not None and session.bind.dialect.name == "postgresql"

    # --- one issue ----------------------------------------------------------------------------------
    async def get(self, issue_id: str, lock: bool = False) -> Issue | None:
        query = select(Issue).where(Issue.id == issue_id)
        if lock and self._locks:
            query = query.with_for_update()
        return (await self.session.execute(query.execution_options(populate_existing=lock))).scalar_one_or_none()

    async def try_lock(self, issue_id: str) -> Issue | None:
        """The issue locked for this transaction, or None when another replica holds it (PostgreSQL)."""
        query = select(Issue).where(Issue.id == issue_id).execution_options(populate_existing=True)
        if self._locks:
            query = query.with_for_update(skip_locked=True)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_post(self, post_id: str) -> Issue | None:
        return (await self.session.execute(select(Issue).where(Issue.source_post_id == post_id))).scalar_one_or_none()

    def add(self, *rows: Any) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    # --- lists and counts ---------------------------------------------------------------------------
    def _filtered(self, query: Any, q: IssueQuery) -> Any:
        if q.neighbourhood_id:
            query = query.where(Issue.neighbourhood_id == q.neighbourhood_id)
        if q.subdistrict_id:
            query = query.where(Issue.subdistrict_id == q.subdistrict_id)
        if q.escalated_only:
            query = query.where(Issue.escalated.is_(True))
        if q.public_only:
            query = query.where(Issue.public.is_(True))
        if q.assignee_id:
            query = query.where(Issue.assignee_id == q.assignee_id)
        if q.reporter_id:
            query = query.where(Issue.reporter_id == q.reporter_id)
        if q.states:
            query = query.where(Issue.state.in_(list(q.states)))
        if q.category_code:
            query = query.where(Issue.category_code == q.category_code)
        if q.overdue_at is not None:
            query = query.where(_overdue(q.overdue_at))
        return query

    async def find(self, q: IssueQuery, before_id: str | None, limit: int) -> list[Issue]:
        query = self._filtered(select(Issue), q).order_by(Issue.id.desc()).limit(limit)
        if before_id:
            query = query.where(Issue.id < before_id)
        return list((await self.session.execute(query)).scalars())

    async def count_by(self, q: IssueQuery, column: Any) -> dict[str, int]:
        query = self._filtered(select(column, func.count()), q).group_by(column)
        return {str(row[0]): int(row[1]) for row in (await self.session.execute(query)).all()}

    async def count_open_overdue(self, q: IssueQuery, now: datetime) -> tuple[int, int, int]:
        query = self._filtered(
            select(
                func.count(),
                func.count().filter(Issue.state.in_(OPEN_STATES)),
                func.count().filter(_overdue(now)),
            ),
            q,
        )
        row = (await self.session.execute(query)).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def per_neighbourhood(self, q: IssueQuery, now: datetime) -> list[tuple[str, int, int, int]]:
        query = self._filtered(
            select(
                Issue.neighbourhood_id,
                func.count(),
                func.count().filter(Issue.state.in_(OPEN_STATES)),
                func.count().filter(_overdue(now)),
            ),
            q,
        ).group_by(Issue.neighbourhood_id)
        rows = (await self.session.execute(query.order_by(Issue.neighbourhood_id))).all()
        return [(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]

    async def count_breaches(self, neighbourhood_ids: Sequence[str]) -> int:
        if not neighbourhood_ids:
            return 0
        query = select(func.count()).select_from(SlaBreach).where(SlaBreach.neighbourhood_id.in_(neighbourhood_ids))
        return int((await self.session.execute(query)).scalar_one())

    # --- timeline -------------------------------------------------------------------------------------
    async def timeline(self, issue_id: str, after_seq: int, limit: int, include_internal: bool) -> list[TimelineEntry]:
        query = (
            select(TimelineEntry)
            .where(TimelineEntry.issue_id == issue_id, TimelineEntry.seq > after_seq)
            .order_by(TimelineEntry.seq)
            .limit(limit)
        )
        if not include_internal:
            query = query.where(TimelineEntry.internal.is_(False))
        return list((await self.session.execute(query)).scalars())

    # --- clocks ---------------------------------------------------------------------------------------
    async def running_clocks(self, issue_id: str) -> list[SlaClock]:
        query = select(SlaClock).where(SlaClock.issue_id == issue_id, SlaClock.stopped_at.is_(None))
        return list((await self.session.execute(query.order_by(SlaClock.id))).scalars())

    async def latest_clock(self, issue_id: str, round_: int, clock: str, level: str) -> SlaClock | None:
        query = (
            select(SlaClock)
            .where(
                SlaClock.issue_id == issue_id,
                SlaClock.round == round_,
                SlaClock.clock == clock,
                SlaClock.level == level,
            )
            .order_by(SlaClock.id.desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def clocks(self, issue_id: str) -> list[SlaClock]:
        query = select(SlaClock).where(SlaClock.issue_id == issue_id).order_by(SlaClock.id)
        return list((await self.session.execute(query)).scalars())

    async def breaches(self, issue_id: str) -> list[SlaBreach]:
        query = select(SlaBreach).where(SlaBreach.issue_id == issue_id).order_by(SlaBreach.detected_at, SlaBreach.id)
        return list((await self.session.execute(query)).scalars())

    async def breach_exists(self, issue_id: str, clock: str, level: str, round_: int) -> bool:
        query = select(SlaBreach.id).where(
            SlaBreach.issue_id == issue_id,
            SlaBreach.clock == clock,
            SlaBreach.level == level,
            SlaBreach.round == round_,
        )
        return (await self.session.execute(query)).first() is not None

    async def due_clocks(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(clock id, issue id) of running clocks past due and not yet breached, oldest due first."""
        query = (
            select(SlaClock.id, SlaClock.issue_id)
            .where(SlaClock.stopped_at.is_(None), SlaClock.breached_at.is_(None), SlaClock.due_at <= now)
            .order_by(SlaClock.due_at)
            .limit(limit)
        )
        return [(str(r[0]), str(r[1])) for r in (await self.session.execute(query)).all()]

    async def clock(self, clock_id: str) -> SlaClock | None:
        query = select(SlaClock).where(SlaClock.id == clock_id).execution_options(populate_existing=True)
        return (await self.session.execute(query)).scalar_one_or_none()

    # --- background work -----------------------------------------------------------------------------
    async def expired_feedback(self, now: datetime, limit: int) -> list[str]:
        query = (
            select(Issue.id)
            .where(Issue.state == State.RESOLVED.value, Issue.feedback_due_at < now)
            .order_by(Issue.feedback_due_at)
            .limit(limit)
        )
        return [str(r[0]) for r in (await self.session.execute(query)).all()]

    async def pending_assignments(self, limit: int) -> list[tuple[str, str]]:
        query = (
            select(Issue.id, Issue.neighbourhood_id)
            .where(Issue.assignment_pending.is_(True))
            .order_by(Issue.id)
            .limit(limit)
        )
        return [(str(r[0]), str(r[1])) for r in (await self.session.execute(query)).all()]

    # --- dispatches, grid updates, feedback --------------------------------------------------------
    async def dispatch_count(self, issue_id: str, round_: int) -> int:
        query = (
            select(func.count()).select_from(Dispatch).where(Dispatch.issue_id == issue_id, Dispatch.round == round_)
        )
        return int((await self.session.execute(query)).scalar_one())

    async def dispatch(self, dispatch_id: str) -> Dispatch | None:
        return await self.session.get(Dispatch, dispatch_id)

    async def grid_update_seen(self, key: str) -> bool:
        query = select(GridUpdate.id).where(GridUpdate.update_key == key)
        return (await self.session.execute(query)).first() is not None

    async def feedback_for(self, issue_id: str, round_: int) -> Feedback | None:
        query = select(Feedback).where(Feedback.issue_id == issue_id, Feedback.round == round_)
        return (await self.session.execute(query)).scalar_one_or_none()

    # --- catalogue ------------------------------------------------------------------------------------
    async def categories(self, district_id: str) -> tuple[list[Category], bool]:
        """The district's own catalogue, else the default one (and True): both read by one statement."""
        query = (
            select(Category)
            .where(Category.district_id.in_(sorted({district_id, ""})))
            .order_by(Category.sort_order, Category.code)
        )
        rows = list((await self.session.execute(query)).scalars())
        own = [row for row in rows if district_id and row.district_id == district_id]
        if own:
            return own, False
        return [row for row in rows if row.district_id == ""], True

    async def response_targets(self, neighbourhood_id: str, category_code: str) -> tuple[float | None, float | None]:
        """(neighbourhood-wide target, neighbourhood+category target)."""
        query = select(ResponseTarget.category_code, ResponseTarget.response_hours).where(
            ResponseTarget.neighbourhood_id == neighbourhood_id,
            ResponseTarget.category_code.in_(["", category_code]),
        )
        rows = {str(r[0]): float(r[1]) for r in (await self.session.execute(query)).all()}
        return rows.get(""), rows.get(category_code)

    async def response_target(self, neighbourhood_id: str, category_code: str) -> ResponseTarget | None:
        return await self.session.get(ResponseTarget, (neighbourhood_id, category_code))

    async def delete_response_target(self, neighbourhood_id: str, category_code: str) -> None:
        await self.session.execute(
            delete(ResponseTarget).where(
                ResponseTarget.neighbourhood_id == neighbourhood_id, ResponseTarget.category_code == category_code
            )
        )

    # --- regions --------------------------------------------------------------------------------------
    async def neighbourhood_name(self, neighbourhood_id: str) -> str:
        query = select(region_directory.c.name).where(region_directory.c.neighbourhood_id == neighbourhood_id)
        row = (await self.session.execute(query)).first()
        return str(row[0]) if row else ""

    async def district_of_subdistrict(self, subdistrict_id: str) -> str | None:
        query = (
            select(region_directory.c.district_id).where(region_directory.c.subdistrict_id == subdistrict_id).limit(1)
        )
        row = (await self.session.execute(query)).first()
        return str(row[0]) if row else None


def _overdue(now: datetime) -> Any:
    return and_(
        Issue.state.in_(OPEN_STATES),
        or_(Issue.response_due_at < now, Issue.resolution_due_at < now),
    )
