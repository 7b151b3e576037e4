"""Polls on posts: one ballot per verified resident or per household, results hidden until close when
asked; a second ballot for the same voter fails on the ballots' unique constraint, whatever the timing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import board_access, load_board, neighbourhood_office
from shequtong_boards.domain import deliberation as chain
from shequtong_boards.domain import polls as rules
from shequtong_boards.domain.content import DELETED, VISIBLE
from shequtong_boards.models import Ballot, Poll, PollOption, Post
from shequtong_boards.repository import (
    FeedVersionRepository,
    PeopleRepository,
    PollRepository,
    PostRepository,
    TopicRepository,
    lineages_of,
)
from shequtong_boards.usecases.base import Context
from shequtong_boards.views import PollView
from shequtong_kit import auth
from shequtong_kit.auth import Principal
from shequtong_kit.errors import AlreadyExists, FailedPrecondition, NotFound, PermissionDenied
from shequtong_kit.ids import new_id


class PollUseCases:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        post_id: str,
        question: str,
        options: Sequence[str],
        kind: str,
        max_choices: int,
        basis: str,
        hide_results_until_close: bool,
        opens_at: datetime | None,
        closes_at: datetime | None,
    ) -> PollView:
        now = self.ctx.clock.now()
        spec = rules.validate_poll(
            question, options, kind, max_choices, basis, hide_results_until_close, opens_at, closes_at, now
        )
        post = await PostRepository(session).get(post_id) if post_id else None
        if post is None or post.status != VISIBLE:
            raise NotFound("no such post", code="post_not_found")
        access = await board_access(session, principal, await load_board(session, post.board_id))
        access.require_read()
        if post.topic_id:
            # Votes of the deliberation chain are the committee's to call.
            await neighbourhood_office(session, principal, post.neighbourhood_id or "")
            topic = await TopicRepository(session).get(post.topic_id)
            if topic is None or topic.stage in (chain.DECLINED, chain.CONCLUDED):
                raise FailedPrecondition("the topic is closed", code="topic_closed")
        elif not (access.perms.can_moderate or (post.author_id == principal.subject and access.perms.can_post)):
            raise PermissionDenied("only the post's author or a moderator adds a poll", code="poll_create_forbidden")
        poll = Poll(
            id=new_id(),
            post_id=post.id,
            board_id=post.board_id,
            neighbourhood_id=post.neighbourhood_id,
            topic_id=post.topic_id,
            question=spec.question,
            kind=spec.kind,
            max_choices=spec.max_choices,
            basis=spec.basis,
            hide_results_until_close=spec.hide_results_until_close,
            opens_at=spec.opens_at,
            closes_at=spec.closes_at,
            created_by=principal.subject,
            created_at=now,
        )
        await PollRepository(session).add(
            poll,
            [PollOption(id=new_id(), poll_id=poll.id, position=i, label=label) for i, label in enumerate(spec.options)],
        )
        await FeedVersionRepository(session).posts_changed(post)  # the post lists its polls
        await self.ctx.events.poll_created(session, poll)
        return await self.view(session, principal, poll)

    async def _readable(self, session: AsyncSession, principal: Principal, poll_id: str) -> tuple[Poll, Post]:
        poll = await PollRepository(session).get(poll_id) if poll_id else None
        post = await PostRepository(session).get(poll.post_id) if poll else None
        if poll is None or post is None or post.status == DELETED:
            raise NotFound("no such poll", code="poll_not_found")
        access = await board_access(session, principal, await load_board(session, post.board_id))
        access.require_read()
        return poll, post

    async def _voter(
        self, session: AsyncSession, principal: Principal, poll: Poll, post: Post
    ) -> tuple[str, str | None]:
        """(voter key, household) of the caller: a verified resident where the poll is held."""
        homes = sorted(principal.neighbourhoods(auth.RESIDENT))
        if poll.neighbourhood_id:
            home = poll.neighbourhood_id if poll.neighbourhood_id in homes else None
        else:
            home = next(
                (
                    lin.neighbourhood_id
                    for lin in await lineages_of(session, homes)
                    if lin.district_id == post.district_id
                ),
                None,
            )
        if home is None:
            raise PermissionDenied("only verified residents vote", code="not_a_resident")
        household = None
        if poll.basis == rules.HOUSEHOLD:
            member = await PeopleRepository(session).member(principal.subject, home)
            household = member.household_id if member is not None and member.active else None
        return rules.voter_key(poll.basis, principal.subject, household), household

    async def view(self, session: AsyncSession, principal: Principal, poll: Poll) -> PollView:
        repo = PollRepository(session)
        state = rules.state(poll.opens_at, poll.closes_at, poll.closed_at, self.ctx.clock.now())
        visible = rules.results_visible(poll.hide_results_until_close, state)
        mine: tuple[str, ...] = ()
        keys = [f"p:{principal.subject}"]
        if poll.basis == rules.HOUSEHOLD:
            homes = (
                [poll.neighbourhood_id] if poll.neighbourhood_id else sorted(principal.neighbourhoods(auth.RESIDENT))
            )
            for home in homes:
                member = await PeopleRepository(session).member(principal.subject, home)
                if member is not None and member.household_id:
                    keys.append(f"h:{member.household_id}")
        ballot = await repo.ballot_of(poll.id, keys)
        if ballot is not None:
            mine = tuple(await repo.choices(ballot.id))
        return PollView(
            poll=poll,
            options=tuple(await repo.options(poll.id)),
            tally=await repo.tally(poll.id) if visible else None,
            ballot_count=await repo.ballot_count(poll.id),
            state=state,
            results_visible=visible,
            my_choices=mine,
        )

    async def get(self, principal: Principal, poll_id: str) -> PollView:
        async with self.ctx.sessions() as session:
            poll, _ = await self._readable(session, principal, poll_id)
            return await self.view(session, principal, poll)

    async def vote(
        self, session: AsyncSession, principal: Principal, poll_id: str, option_ids: Sequence[str]
    ) -> PollView:
        poll, post = await self._readable(session, principal, poll_id)
        now = self.ctx.clock.now()
        rules.ensure_open(rules.state(poll.opens_at, poll.closes_at, poll.closed_at, now))
        repo = PollRepository(session)
        picks = rules.validate_ballot(
            poll.kind, poll.max_choices, list(option_ids), [o.id for o in await repo.options(poll.id)]
        )
        key, household = await self._voter(session, principal, poll, post)
        already = self._already(poll)
        if await repo.ballot_of(poll.id, [key]) is not None:
            raise AlreadyExists(already, code="already_voted")
        try:
            await repo.cast(
                Ballot(
                    id=new_id(),
                    poll_id=poll.id,
                    voter_key=key,
                    person_id=principal.subject,
                    household_id=household,
                    cast_at=now,
                ),
                picks,
            )
        except IntegrityError:
            # A concurrent ballot for the same voter committed first: the constraint decides.
            raise AlreadyExists(already, code="already_voted") from None
        await self.ctx.events.vote_cast(session, poll, principal.subject, household, now)
        return await self.view(session, principal, poll)

    @staticmethod
    def _already(poll: Poll) -> str:
        return "your household has voted" if poll.basis == rules.HOUSEHOLD else "you have voted"

    async def close(self, principal: Principal, poll_id: str) -> PollView:
        async with self.ctx.sessions() as session, session.begin():
            poll, post = await self._readable(session, principal, poll_id)
            access = await board_access(session, principal, await load_board(session, post.board_id))
            if not (poll.created_by == principal.subject or access.perms.can_moderate):
                raise PermissionDenied("only the poll's creator or a moderator closes it", code="poll_close_forbidden")
            now = self.ctx.clock.now()
            if rules.state(poll.opens_at, poll.closes_at, poll.closed_at, now) == rules.CLOSED:
                raise FailedPrecondition("the poll is closed", code="poll_closed")
            await PollRepository(session).close(poll.id, now)
            await session.refresh(poll)
            return await self.view(session, principal, poll)
