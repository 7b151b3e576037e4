"""The district's boards and catalogue, kept in each process's memory and checked against one row.

Every page of a neighbourhood (home feed, board list, unread counts) needs the boards of the
neighbourhood and of its district, and the district's catalogue overrides for their policies. They
change rarely (a neighbourhood opened, a catalogue entry put), always in a transaction of this service
that moves the district's `catalogue_versions` row. A reader reads that row first and reuses what it
read before at the same version; data read after the version row is never older than it, so a copy is
never kept under a version newer than itself. Every replica sees the change at the writer's commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import district_overrides
from shequtong_boards.domain import catalogue
from shequtong_boards.models import Board
from shequtong_boards.repository import BoardRepository


@dataclass
class DistrictBoards:
    version: int
    overrides: dict[str, catalogue.BoardKind]
    district: list[Board]
    # Filled per neighbourhood as pages ask for them.
    neighbourhoods: dict[str, list[Board]] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalogue:
    """What a neighbourhood page needs: the overrides, the neighbourhood's boards and the district's."""

    overrides: dict[str, catalogue.BoardKind]
    local: list[Board]
    district: list[Board]

    @property
    def boards(self) -> list[Board]:
        """The neighbourhood's boards, then the district's (the order pages list them in)."""
        return self.local + self.district


class CatalogueCache:
    def __init__(self) -> None:
        self._districts: dict[str, DistrictBoards] = {}

    async def of_neighbourhood(self, session: AsyncSession, neighbourhood_id: str, district_id: str) -> Catalogue:
        repo = BoardRepository(session)
        version = await repo.catalogue_version(district_id)  # first: what follows is at least this new
        entry = self._districts.get(district_id)
        if entry is None or entry.version != version:
            entry = DistrictBoards(
                version, await district_overrides(session, district_id), await repo.of_district(district_id)
            )
            self._districts[district_id] = entry
        local = entry.neighbourhoods.get(neighbourhood_id)
        if local is None:
            local = entry.neighbourhoods[neighbourhood_id] = await repo.of_neighbourhood(neighbourhood_id)
        return Catalogue(entry.overrides, local, entry.district)
