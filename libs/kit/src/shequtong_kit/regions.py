"""Each service's local projection of the region tree (from identity's events), for scope checks.

Services never read identity's tables; they keep this small directory to answer "which sub-district
and district is this neighbourhood in" without a call per request.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_kit.auth import Lineage
from shequtong_kit.consumer import ReceivedEvent
from shequtong_kit.db import region_directory
from shequtong_kit.errors import NotFound

NEIGHBOURHOOD_CREATED = "identity.neighbourhood.created"
# The key of a session's `info` that holds the process's LineageCache.
LINEAGE_CACHE = "shequtong.lineages"


async def record_neighbourhood(
    session: AsyncSession, message: ev.NeighbourhoodCreated, _event: ReceivedEvent | None = None
) -> None:
    values = {
        "subdistrict_id": message.subdistrict_id,
        "district_id": message.district_id,
        "kind": int(message.kind),
        "code": message.code,
        "name": message.name,
    }
    cache = lineage_cache(session)
    if cache is not None:
        cache.forget(message.neighbourhood_id)
    exists = await session.execute(
        select(region_directory.c.neighbourhood_id).where(
            region_directory.c.neighbourhood_id == message.neighbourhood_id
        )
    )
    if exists.first() is None:
        await session.execute(region_directory.insert().values(neighbourhood_id=message.neighbourhood_id, **values))
    else:
        await session.execute(
            update(region_directory)
            .where(region_directory.c.neighbourhood_id == message.neighbourhood_id)
            .values(**values)
        )


ROUTES = {NEIGHBOURHOOD_CREATED: (ev.NeighbourhoodCreated, record_neighbourhood)}


class LineageCache:
    """The lineages (and kinds) this process has read, kept for its life.

    Correct without invalidation because a neighbourhood never moves and never changes kind: identity
    creates it under its sub-district and district, residential or village, and has no operation that
    changes them. Only neighbourhoods found are kept (one not known yet may arrive with the next event).
    The runtime's sessions carry one in their `info` (`session_factory(engine, cache_lineages=True)`); a
    session without one reads the directory."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._known: dict[str, tuple[Lineage, int]] = {}

    def get(self, neighbourhood_id: str) -> Lineage | None:
        found = self._known.get(neighbourhood_id)
        return found[0] if found else None

    def kind(self, neighbourhood_id: str) -> int | None:
        found = self._known.get(neighbourhood_id)
        return found[1] if found else None

    def keep(self, lineage: Lineage, kind: int) -> None:
        if len(self._known) >= self.limit:
            self._known.clear()  # a city has thousands; this only bounds a misuse
        self._known[lineage.neighbourhood_id] = (lineage, kind)

    def forget(self, neighbourhood_id: str) -> None:
        self._known.pop(neighbourhood_id, None)


def lineage_cache(session: AsyncSession) -> LineageCache | None:
    """The process's cache the session carries, if any (identity keeps its own regions' lineages there)."""
    return session.info.get(LINEAGE_CACHE)


async def find_lineage(session: AsyncSession, neighbourhood_id: str) -> Lineage | None:
    found = await lineages(session, [neighbourhood_id])
    return found[0] if found else None


async def lineages(session: AsyncSession, neighbourhood_ids: Iterable[str]) -> list[Lineage]:
    """The lineages of the neighbourhoods known here (unknown ids are left out), one query for those the
    session's cache lacks."""
    ids = sorted(set(neighbourhood_ids))
    cache = lineage_cache(session)
    found = [lin for lin in (cache.get(i) for i in ids) if lin is not None] if cache else []
    missing = [i for i in ids if not cache or cache.get(i) is None]
    if missing:
        rows = await session.execute(
            select(
                region_directory.c.neighbourhood_id,
                region_directory.c.subdistrict_id,
                region_directory.c.district_id,
                region_directory.c.kind,
            ).where(region_directory.c.neighbourhood_id.in_(missing))
        )
        for row in rows:
            lineage = Lineage(row[0], row[1], row[2])
            found.append(lineage)
            if cache is not None:
                cache.keep(lineage, int(row[3]))
    return found


async def neighbourhood_kind(session: AsyncSession, neighbourhood_id: str) -> int:
    """The neighbourhood's kind (identity's `NeighbourhoodKind` number; 0 when not known here)."""
    cache = lineage_cache(session)
    if cache is None:
        query = select(region_directory.c.kind).where(region_directory.c.neighbourhood_id == neighbourhood_id)
        row = (await session.execute(query)).first()
        return int(row[0]) if row else 0
    if cache.kind(neighbourhood_id) is None:
        await lineages(session, [neighbourhood_id])  # keeps the lineage and the kind together
    return cache.kind(neighbourhood_id) or 0


async def lineage(session: AsyncSession, neighbourhood_id: str) -> Lineage:
    found = await find_lineage(session, neighbourhood_id)
    if found is None:
        raise NotFound("no such neighbourhood", code="neighbourhood_not_found")
    return found


async def neighbourhoods_under(
    session: AsyncSession, *, subdistrict_id: str | None = None, district_id: str | None = None
) -> list[str]:
    query = select(region_directory.c.neighbourhood_id)
    if subdistrict_id:
        query = query.where(region_directory.c.subdistrict_id == subdistrict_id)
    if district_id:
        query = query.where(region_directory.c.district_id == district_id)
    return [row[0] for row in (await session.execute(query)).all()]
