from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.models import Board


class BoardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def kinds_in(self, neighbourhood_id: str) -> set[str]:
        rows = await self.session.execute(select(Board.kind).where(Board.neighbourhood_id == neighbourhood_id))
        return {row[0] for row in rows}

    async def add_all(self, boards: list[Board]) -> None:
        self.session.add_all(boards)
        await self.session.flush()

    async def of_neighbourhood(self, neighbourhood_id: str) -> list[Board]:
        query = select(Board).where(Board.neighbourhood_id == neighbourhood_id).order_by(Board.id)
        return list((await self.session.execute(query)).scalars())
