"""SQLAlchemy queries of grid-gateway."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_grid_gateway.domain import tickets as rules
from shequtong_grid_gateway.models import (
    CatalogueEntry,
    CatalogueSource,
    CategoryMapping,
    DeliveryAttempt,
    GridUpdate,
    PollCursor,
    Ticket,
)
from shequtong_kit.db import region_directory


class TicketRepository:
    def __init__(self, session: AsyncSession, skip_locked: bool = False) -> None:
        self.session = session
        # PostgreSQL: row locks (FOR UPDATE [SKIP LOCKED]); SQLite serialises writers itself.
        self.skip_locked = skip_locked

    # --- tickets ------------------------------------------------------------------------------
    async def get(self, ticket_id: str, lock: bool = False) -> Ticket | None:
        query = select(Ticket).where(Ticket.id == ticket_id)
        if lock and self.skip_locked:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def by_dispatch(self, dispatch_id: str) -> Ticket | None:
        return (
            await self.session.execute(select(Ticket).where(Ticket.dispatch_id == dispatch_id))
        ).scalar_one_or_none()

    async def by_external(self, platform: str, external_id: str, lock: bool = False) -> Ticket | None:
        query = select(Ticket).where(Ticket.platform == platform, Ticket.external_id == external_id)
        if lock and self.skip_locked:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def add(self, *objects: object) -> None:
        self.session.add_all(objects)
        await self.session.flush()

    async def claim_due(
        self, platform: str, now: datetime, limit: int, instance: str, lease: timedelta
    ) -> list[Ticket]:
        """Oldest due tickets that never reached the platform, leased to this replica, in one statement
        (the lease set and the tickets returned). On PostgreSQL the candidates are locked with SKIP LOCKED,
        so replicas claim disjoint sets."""
        candidates = (
            select(Ticket.id)
            .where(
                Ticket.platform == platform,
                Ticket.state == rules.PENDING,
                Ticket.external_id.is_(None),
                Ticket.token.is_(None),
                Ticket.next_attempt_at <= now,
                or_(Ticket.claimed_until.is_(None), Ticket.claimed_until < now),
            )
            .order_by(Ticket.queued_at, Ticket.id)
            .limit(limit)
        )
        if self.skip_locked:
            candidates = candidates.with_for_update(skip_locked=True)
        claim = (
            update(Ticket)
            .where(Ticket.id.in_(candidates))
            .values(claimed_by=instance, claimed_until=now + lease)
            .returning(Ticket)
            .execution_options(synchronize_session=False)
        )
        claimed = list((await self.session.execute(claim)).scalars())
        return sorted(claimed, key=lambda t: (t.queued_at, t.id))  # RETURNING keeps no order

    async def release_claims(self, ids: Sequence[str], instance: str) -> None:
        if ids:
            await self.session.execute(
                update(Ticket)
                .where(Ticket.id.in_(ids), Ticket.claimed_by == instance)
                .values(claimed_by=None, claimed_until=None)
            )

    async def release_backoff(self, platform: str, now: datetime) -> int:
        """The platform is back: waiting tickets may go now (the send rate still applies)."""
        result = await self.session.execute(
            update(Ticket)
            .where(Ticket.platform == platform, Ticket.state == rules.PENDING, Ticket.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def overdue(self, platform: str, queued_before: datetime, now: datetime, limit: int) -> list[Ticket]:
        query = (
            select(Ticket)
            .where(
                Ticket.platform == platform,
                Ticket.state == rules.PENDING,
                Ticket.queued_at < queued_before,
                or_(Ticket.claimed_until.is_(None), Ticket.claimed_until < now),
            )
            .order_by(Ticket.queued_at)
            .limit(limit)
        )
        if self.skip_locked:
            query = query.with_for_update(skip_locked=True)
        return list((await self.session.execute(query)).scalars())

    async def awaiting_token(self, platform: str, limit: int) -> list[Ticket]:
        query = (
            select(Ticket)
            .where(Ticket.platform == platform, Ticket.external_id.is_(None), Ticket.token.is_not(None))
            .order_by(Ticket.sent_at)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def to_check(self, platform: str, limit: int) -> list[Ticket]:
        """Tickets on the grid and not settled, least recently checked first (the backstop)."""
        query = (
            select(Ticket)
            .where(
                Ticket.platform == platform,
                Ticket.external_id.is_not(None),
                Ticket.state.in_(sorted(rules.ON_THE_GRID - rules.SETTLED)),
            )
            .order_by(Ticket.last_checked_at.is_not(None), Ticket.last_checked_at, Ticket.id)
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def page(
        self,
        *,
        state: str,
        districts: set[str] | None,
        issue_id: str,
        dispatch_id: str,
        before: str | None,
        limit: int,
    ) -> list[Ticket]:
        query = select(Ticket).order_by(Ticket.id.desc()).limit(limit)
        if state:
            query = query.where(Ticket.state == state)
        if districts is not None:
            query = query.where(Ticket.district_id.in_(sorted(districts)))
        if issue_id:
            query = query.where(Ticket.issue_id == issue_id)
        if dispatch_id:
            query = query.where(Ticket.dispatch_id == dispatch_id)
        if before:
            query = query.where(Ticket.id < before)
        return list((await self.session.execute(query)).scalars())

    async def backlog(self, platform: str) -> tuple[int, datetime | None, int]:
        pending = (
            await self.session.execute(
                select(func.count(), func.min(Ticket.queued_at)).where(
                    Ticket.platform == platform, Ticket.state == rules.PENDING
                )
            )
        ).one()
        failed = (
            await self.session.execute(
                select(func.count()).where(Ticket.platform == platform, Ticket.state == rules.FAILED)
            )
        ).scalar_one()
        return int(pending[0]), pending[1], int(failed)

    async def neighbourhood_name(self, neighbourhood_id: str) -> str | None:
        row = (
            await self.session.execute(
                select(region_directory.c.name).where(region_directory.c.neighbourhood_id == neighbourhood_id)
            )
        ).first()
        return str(row[0]) if row and row[0] else None

    async def hold_neighbourhood(self, neighbourhood_id: str) -> None:
        """Until the commit, the one transaction here that makes a ticket of, or learns of, this neighbourhood
        (PostgreSQL: a transaction advisory lock; SQLite serialises writers itself, and a writer whose reads
        are stale fails and is retried)."""
        if self.skip_locked:
            await self.session.execute(
                select(func.pg_advisory_xact_lock(func.hashtextextended("grid-lineage:" + neighbourhood_id, 0)))
            )

    async def fill_lineage(self, neighbourhood_id: str, subdistrict_id: str, district_id: str) -> None:
        await self.session.execute(
            update(Ticket)
            .where(Ticket.neighbourhood_id == neighbourhood_id, Ticket.district_id.is_(None))
            .values(subdistrict_id=subdistrict_id, district_id=district_id)
        )

    # --- attempts and updates -----------------------------------------------------------------
    async def attempts_of(self, ticket_id: str, limit: int) -> tuple[list[DeliveryAttempt], int]:
        rows = (
            await self.session.execute(
                select(DeliveryAttempt)
                .where(DeliveryAttempt.ticket_id == ticket_id)
                .order_by(DeliveryAttempt.number.desc(), DeliveryAttempt.id.desc())
                .limit(limit)
            )
        ).scalars()
        count = (
            await self.session.execute(select(func.count()).where(DeliveryAttempt.ticket_id == ticket_id))
        ).scalar_one()
        return list(reversed(list(rows))), int(count)

    async def updates_of(self, ticket_id: str) -> list[GridUpdate]:
        rows = (await self.session.execute(select(GridUpdate).where(GridUpdate.ticket_id == ticket_id))).scalars()
        return sorted(rows, key=lambda u: rules.update_order(u.updated_at, u.update_id))

    async def update_exists(self, platform: str, update_id: str) -> bool:
        found = await self.session.execute(
            select(GridUpdate.id).where(GridUpdate.platform == platform, GridUpdate.update_id == update_id)
        )
        return found.first() is not None

    async def known_update_ids(self, platform: str, update_ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(update_ids), 500):
            chunk = update_ids[start : start + 500]
            rows = await self.session.execute(
                select(GridUpdate.update_id).where(GridUpdate.platform == platform, GridUpdate.update_id.in_(chunk))
            )
            known.update(row[0] for row in rows)
        return known

    async def orphans(self, platform: str, external_id: str) -> list[GridUpdate]:
        rows = (
            await self.session.execute(
                select(GridUpdate).where(
                    GridUpdate.platform == platform,
                    GridUpdate.service_request_id == external_id,
                    GridUpdate.ticket_id.is_(None),
                )
            )
        ).scalars()
        return sorted(rows, key=lambda u: rules.update_order(u.updated_at, u.update_id))

    async def orphan_ids(self, platform: str, limit: int) -> list[str]:
        """External ids with unattached updates whose ticket now knows that id."""
        query = (
            select(GridUpdate.service_request_id)
            .join(
                Ticket,
                and_(Ticket.platform == GridUpdate.platform, Ticket.external_id == GridUpdate.service_request_id),
            )
            .where(GridUpdate.platform == platform, GridUpdate.ticket_id.is_(None))
            .distinct()
            .limit(limit)
        )
        return [row[0] for row in (await self.session.execute(query)).all()]

    # --- polling ------------------------------------------------------------------------------
    async def lease_poll(self, platform: str, instance: str, now: datetime, lease: timedelta) -> PollCursor | None:
        """The cursor, leased to this replica for `lease`; None when another replica holds it."""
        if await self.session.get(PollCursor, platform) is None:
            self.session.add(PollCursor(platform=platform, cursor_at=None, last_error=""))
            await self.session.flush()
        result = await self.session.execute(
            update(PollCursor)
            .where(
                PollCursor.platform == platform,
                or_(
                    PollCursor.lease_until.is_(None),
                    PollCursor.lease_until < now,
                    PollCursor.leased_by == instance,
                ),
            )
            .values(leased_by=instance, lease_until=now + lease)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        return (
            await self.session.execute(
                select(PollCursor).where(PollCursor.platform == platform).execution_options(populate_existing=True)
            )
        ).scalar_one()

    async def finish_poll(
        self, platform: str, instance: str, now: datetime, cursor_at: datetime | None, error: str
    ) -> None:
        values: dict[str, object] = {"leased_by": None, "lease_until": None, "last_polled_at": now, "last_error": error}
        if cursor_at is not None:
            values["cursor_at"] = cursor_at
        await self.session.execute(
            update(PollCursor).where(PollCursor.platform == platform, PollCursor.leased_by == instance).values(**values)
        )

    # --- catalogue ----------------------------------------------------------------------------
    async def catalogue_source(self, district_key: str) -> CatalogueSource | None:
        return await self.session.get(CatalogueSource, district_key)

    async def catalogue_sources(self) -> list[CatalogueSource]:
        return list((await self.session.execute(select(CatalogueSource))).scalars())

    async def catalogue_entries(self, district_key: str) -> list[CatalogueEntry]:
        query = (
            select(CatalogueEntry)
            .where(CatalogueEntry.district_key == district_key)
            .order_by(CatalogueEntry.service_code)
        )
        return list((await self.session.execute(query)).scalars())

    async def category_mappings(self, district_key: str) -> list[CategoryMapping]:
        query = (
            select(CategoryMapping)
            .where(CategoryMapping.district_key == district_key)
            .order_by(CategoryMapping.category_code)
        )
        return list((await self.session.execute(query)).scalars())

    async def replace_catalogue(
        self,
        district_key: str,
        source: str,
        loaded_at: datetime,
        entries: Iterable[CatalogueEntry],
        mappings: Iterable[CategoryMapping],
    ) -> None:
        await self.session.execute(delete(CatalogueEntry).where(CatalogueEntry.district_key == district_key))
        await self.session.execute(delete(CategoryMapping).where(CategoryMapping.district_key == district_key))
        existing = await self.session.get(CatalogueSource, district_key)
        if existing is None:
            self.session.add(CatalogueSource(district_key=district_key, source=source, loaded_at=loaded_at))
        else:
            existing.source = source
            existing.loaded_at = loaded_at
        self.session.add_all(list(entries))
        self.session.add_all(list(mappings))
        await self.session.flush()
