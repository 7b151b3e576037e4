"""Boards use cases."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_boards.domain.catalogue import DEFAULT_CATALOGUE
from shequtong_boards.models import Board
from shequtong_boards.repository import BoardRepository
from shequtong_kit import regions
from shequtong_kit.auth import Principal
from shequtong_kit.clock import Clock
from shequtong_kit.errors import PermissionDenied
from shequtong_kit.ids import new_id


class BoardsService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    async def open_boards_for(self, session: AsyncSession, neighbourhood_id: str) -> None:
        """Creates the catalogue's boards a neighbourhood lacks (idempotent: safe on redelivery)."""
        repo = BoardRepository(session)
        existing = await repo.kinds_in(neighbourhood_id)
        now = self.clock.now()
        await repo.add_all(
            [
                Board(id=new_id(), neighbourhood_id=neighbourhood_id, kind=kind.key, name=kind.name, created_at=now)
                for kind in DEFAULT_CATALOGUE
                if kind.key not in existing
            ]
        )

    async def list_boards(self, principal: Principal, neighbourhood_id: str) -> list[Board]:
        async with self.sessions() as session:
            lineage = await regions.lineage(session, neighbourhood_id)
            if not (principal.is_member(neighbourhood_id) or principal.oversees(lineage)):
                raise PermissionDenied("not a member of this neighbourhood", code="not_a_member")
            return await BoardRepository(session).of_neighbourhood(neighbourhood_id)
