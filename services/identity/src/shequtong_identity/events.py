"""Identity's outgoing events (subjects `identity.<aggregate>.<event>`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_identity.models import Region
from shequtong_kit.outbox import Outbox

NEIGHBOURHOOD_CREATED = "identity.neighbourhood.created"


async def neighbourhood_created(outbox: Outbox, session: AsyncSession, region: Region) -> None:
    await outbox.add(
        session,
        NEIGHBOURHOOD_CREATED,
        ev.NeighbourhoodCreated(
            neighbourhood_id=region.id,
            code=region.code,
            name=region.name,
            kind=region.kind,  # type: ignore[arg-type]
            subdistrict_id=region.subdistrict_id or "",
            district_id=region.district_id or "",
        ),
    )
