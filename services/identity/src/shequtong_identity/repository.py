from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_identity.models import Region


class RegionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, region_id: str) -> Region | None:
        return await self.session.get(Region, region_id)

    async def by_code(self, code: str) -> Region | None:
        return (await self.session.execute(select(Region).where(Region.code == code))).scalar_one_or_none()

    async def add(self, region: Region) -> None:
        self.session.add(region)
        await self.session.flush()

    async def children(self, parent_id: str | None, level: int | None, after: str | None, limit: int) -> list[Region]:
        query = select(Region).order_by(Region.id).limit(limit)
        if parent_id:
            query = query.where(Region.parent_id == parent_id)
        if level:
            query = query.where(Region.level == level)
        if after:
            query = query.where(Region.id > after)
        return list((await self.session.execute(query)).scalars())
