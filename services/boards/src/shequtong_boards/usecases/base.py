"""What every use case shares: sessions, the outbox's event builders, the clock, pagination helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_boards.cache import CatalogueCache, FeedPageCache
from shequtong_boards.events import BoardsEvents
from shequtong_kit.clock import Clock
from shequtong_kit.db import reading_sessions
from shequtong_kit.pagination import decode_cursor, encode_cursor, page_size


@dataclass
class Context:
    sessions: async_sessionmaker[AsyncSession]
    events: BoardsEvents
    clock: Clock
    catalogues: CatalogueCache = field(default_factory=CatalogueCache)
    feed_pages: FeedPageCache = field(default_factory=FeedPageCache)
    # For the hot read-only use cases (feeds, a post, its comments): no transaction round trips.
    reads: async_sessionmaker[AsyncSession] = field(init=False)

    def __post_init__(self) -> None:
        self.reads = reading_sessions(self.sessions)


@dataclass(frozen=True)
class Page:
    """A requested page: the decoded cursor (raw) and how many rows to return."""

    cursor: list[object] | None
    size: int

    @classmethod
    def of(cls, cursor: str, size: int) -> Page:
        return cls(decode_cursor(cursor), page_size(size))


def next_cursor(rows: list[object], size: int, key: list[object] | None) -> str:
    """Cursor for the page after `rows` (fetched with size + 1), or empty when this is the last page."""
    return encode_cursor(*key) if len(rows) > size and key is not None else ""
