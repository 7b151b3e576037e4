"""What every neighbourhood page reads and rarely changes, kept in each process's memory and checked
against version rows: the district's boards and catalogue, and first feed pages.

Every page of a neighbourhood (home feed, board list, unread counts) needs the boards of the
neighbourhood and of its district, and the district's catalogue overrides for their policies. They
change rarely (a neighbourhood opened, a catalogue entry put), always in a transaction of this service
that moves the district's `catalogue_versions` row. A reader reads that row first and reuses what it
read before at the same version; data read after the version row is never older than it, so a copy is
never kept under a version newer than itself. Every replica sees the change at the writer's commit.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import district_overrides
from shequtong_boards.domain import catalogue
from shequtong_boards.models import Board
from shequtong_boards.repository import BoardRepository
from shequtong_boards.views import PostView


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
        self._places: dict[str, tuple[str | None, str]] = {}

    def place_of(self, board_id: str) -> tuple[str | None, str] | None:
        """The (neighbourhood or None, district) of a board this process has loaded: a board never moves,
        so this needs no version (what the board is now still comes from the catalogue at a version)."""
        return self._places.get(board_id)

    def learn_place(self, board: Board) -> None:
        self._places[board.id] = (board.neighbourhood_id, board.district_id or "")

    async def overrides(self, session: AsyncSession, district_id: str, version: int) -> dict[str, catalogue.BoardKind]:
        """The district's catalogue overrides at `version` (just read by the caller)."""
        return (await self._district(session, district_id, version)).overrides

    async def _district(self, session: AsyncSession, district_id: str, version: int) -> DistrictBoards:
        entry = self._districts.get(district_id)
        if entry is None or entry.version != version:
            entry = DistrictBoards(
                version,
                await district_overrides(session, district_id),
                await BoardRepository(session).of_district(district_id),
            )
            self._districts[district_id] = entry
        return entry

    async def of_neighbourhood(
        self, session: AsyncSession, neighbourhood_id: str, district_id: str, version: int | None = None
    ) -> Catalogue:
        """`version`: the district's catalogue version when the caller has just read it (with a feed's)."""
        if version is None:
            version = await BoardRepository(session).catalogue_version(district_id)  # first: what follows is newer
        entry = await self._district(session, district_id, version)
        return Catalogue(entry.overrides, await self._local(session, entry, neighbourhood_id), entry.district)

    async def board(
        self,
        session: AsyncSession,
        board_id: str,
        neighbourhood_id: str | None,
        district_id: str,
        version: int | None = None,
    ) -> tuple[Board, dict[str, catalogue.BoardKind]] | None:
        """A board of the neighbourhood (of the district's own when `neighbourhood_id` is None) with the
        district's overrides, at the district's catalogue `version` (read now when not given; a given one
        was read before anything this returns); None when it is not one."""
        if version is None:
            version = await BoardRepository(session).catalogue_version(district_id)
        entry = await self._district(session, district_id, version)
        boards = await self._local(session, entry, neighbourhood_id) if neighbourhood_id else entry.district
        found = next((board for board in boards if board.id == board_id), None)
        return (found, entry.overrides) if found is not None else None

    async def _local(self, session: AsyncSession, entry: DistrictBoards, neighbourhood_id: str) -> list[Board]:
        local = entry.neighbourhoods.get(neighbourhood_id)
        if local is None:
            local = entry.neighbourhoods[neighbourhood_id] = await BoardRepository(session).of_neighbourhood(
                neighbourhood_id
            )
        return local


@dataclass(frozen=True)
class FeedPage:
    """A first feed page as it was built at `versions` (its places' feed versions, in a fixed order).
    Its counters and the viewer's likes are read again on every use."""

    versions: tuple[int, ...]
    views: tuple[PostView, ...]
    next_cursor: str


class FeedPageCache:
    """First pages of feeds (a home feed per neighbourhood and readable boards, a board's feed), the most
    recently used kept.

    The reader reads its places' versions before anything else and keeps a page it built under the
    versions it read first, so a page is never kept under versions newer than itself (as the catalogue
    is). Every write that changes what a first page shows — a post written, edited, deleted, hidden,
    pinned, locked, imported, given a poll or an issue; a badge granted or revoked; a name changed —
    moves its place's version in its own transaction (`FeedVersionRepository.bump`): every replica sees it
    at the writer's commit. Counters move with every comment and like: they are not part of the page
    but read with the viewer's likes on each use, so a busy thread does not empty the cache."""

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self.hits = 0
        self.misses = 0
        self._pages: OrderedDict[Hashable, FeedPage] = OrderedDict()

    def get(self, key: Hashable, versions: tuple[int, ...]) -> FeedPage | None:
        page = self._pages.get(key)
        if page is None or page.versions != versions:
            self.misses += 1
            return None
        self._pages.move_to_end(key)
        self.hits += 1
        return page

    def keep(self, key: Hashable, page: FeedPage) -> None:
        self._pages[key] = page
        self._pages.move_to_end(key)
        while len(self._pages) > self.limit:
            self._pages.popitem(last=False)
