"""Each service's local projection of the region tree (from identity's events), for scope checks.

Services never read identity's tables; they keep this small directory to answer "which sub-district
and district is this neighbourhood in" without a call per request.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_kit.auth import Lineage
from shequtong_kit.consumer import ReceivedEvent
from shequtong_kit.db import region_directory
from shequtong_kit.errors import NotFound

NEIGHBOURHOOD_CREATED = "identity.neighbourhood.created"


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


async def find_lineage(session: AsyncSession, neighbourhood_id: str) -> Lineage | None:
    row = (
        await session.execute(
            select(region_directory.c.subdistrict_id, region_directory.c.district_id).where(
                region_directory.c.neighbourhood_id == neighbourhood_id
            )
        )
    ).first()
    return Lineage(neighbourhood_id, row[0], row[1]) if row else None


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
