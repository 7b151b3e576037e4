"""Boards use cases, put together: one object the servicer and the consumers call.

Each use case (see `usecases/`) runs in one transaction: the state change and its outbox events commit
together. Create-style use cases take the session from `idempotency.run_once` (the servicer's wrapper),
so a retried request with the same Idempotency-Key returns the first answer.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_boards.cache import FeedPageCache
from shequtong_boards.events import BoardsEvents
from shequtong_boards.usecases.affairs import AffairUseCases
from shequtong_boards.usecases.base import Context
from shequtong_boards.usecases.boards import BoardUseCases
from shequtong_boards.usecases.imports import ImportUseCases
from shequtong_boards.usecases.moderation import ModerationUseCases
from shequtong_boards.usecases.polls import PollUseCases
from shequtong_boards.usecases.posts import CommentUseCases, PostUseCases
from shequtong_boards.usecases.projections import ProjectionUseCases
from shequtong_boards.usecases.topics import TopicUseCases
from shequtong_kit.clock import Clock
from shequtong_kit.outbox import Outbox


class BoardsService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        clock: Clock,
        feed_pages: FeedPageCache | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        ctx = Context(
            sessions=sessions, events=BoardsEvents(outbox), clock=clock, feed_pages=feed_pages or FeedPageCache()
        )
        self.boards = BoardUseCases(ctx)
        self.posts = PostUseCases(ctx)
        self.comments = CommentUseCases(ctx, self.posts)
        self.moderation = ModerationUseCases(ctx)
        self.polls = PollUseCases(ctx)
        self.topics = TopicUseCases(ctx, self.posts)
        self.affairs = AffairUseCases(ctx, self.posts)
        self.projections = ProjectionUseCases(ctx)
        self.imports = ImportUseCases(ctx)

    async def open_boards_for(self, session: AsyncSession, neighbourhood_id: str) -> None:
        await self.boards.open_boards_for(session, neighbourhood_id)
