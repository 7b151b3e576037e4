"""The deliberation chain: topics from proposal to convention, with every step on record, and the
neighbourhood's conventions (versioned, each version adopted by a vote)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import board_access, neighbourhood_office, neighbourhood_reader
from shequtong_boards.domain import catalogue
from shequtong_boards.domain import deliberation as chain
from shequtong_boards.domain import polls as poll_rules
from shequtong_boards.domain.content import PostDraft, time_key
from shequtong_boards.models import (
    ConventionRow,
    ConventionVersionRow,
    MilestoneRow,
    Topic,
    TopicRating,
    TopicStepRow,
)
from shequtong_boards.repository import BoardRepository, PollRepository, PostRepository, TopicRepository
from shequtong_boards.usecases.base import Context, Page, next_cursor
from shequtong_boards.usecases.posts import PostUseCases, add_system_comment
from shequtong_boards.views import ConventionView, Paged, TopicView, authors, time_cursor
from shequtong_kit.auth import Principal
from shequtong_kit.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from shequtong_kit.ids import new_id

STAGE_NAMES = {
    chain.PROPOSED: "提出议题",
    chain.REVIEW: "把关筛选",
    chain.CONSULTATION: "开展协商",
    chain.PROJECT: "形成项目",
    chain.IMPLEMENTATION: "推动实施",
    chain.EVALUATION: "效果评估",
    chain.CONVENTION: "建立公约",
    chain.DECLINED: "未予立项",
    chain.CONCLUDED: "议题办结",
}


class TopicUseCases:
    def __init__(self, ctx: Context, posts: PostUseCases) -> None:
        self.ctx = ctx
        self.posts = posts

    async def propose(
        self, session: AsyncSession, principal: Principal, neighbourhood_id: str, title: str, description: str
    ) -> TopicView:
        """A resident (or cadre) proposes; the topic's discussion thread opens in 议事厅."""
        title, description = chain.validate_proposal(title, description)
        board = await BoardRepository(session).of_kind(neighbourhood_id, catalogue.DELIBERATION_HALL)
        if board is None:
            raise NotFound("this neighbourhood has no deliberation hall", code="board_not_found")
        access = await board_access(session, principal, board)
        access.require_post()
        now = self.ctx.clock.now()
        topic_id = new_id()
        post = await self.posts.insert_post(
            session, board, principal.subject, PostDraft(title, description, (), ("议题",), ()), topic_id=topic_id
        )
        topic = Topic(
            id=topic_id,
            neighbourhood_id=neighbourhood_id,
            post_id=post.id,
            title=title,
            description=description,
            proposer_id=principal.subject,
            stage=chain.PROPOSED,
            budget_note="",
            evaluation_summary="",
            created_at=now,
            updated_at=now,
        )
        repo = TopicRepository(session)
        await repo.add(topic)
        await repo.add(
            TopicStepRow(
                id=new_id(),
                topic_id=topic.id,
                seq=1,
                from_stage="",
                to_stage=chain.PROPOSED,
                actor_id=principal.subject,
                reason="提出议题",
                at=now,
            )
        )
        await self.ctx.events.topic_stage_changed(session, topic, "", principal.subject, "提出议题", now)
        return await self.view(session, principal, topic)

    async def _topic(self, session: AsyncSession, principal: Principal, topic_id: str) -> Topic:
        topic = await TopicRepository(session).get(topic_id) if topic_id else None
        if topic is None:
            raise NotFound("no such topic", code="topic_not_found")
        await neighbourhood_reader(session, principal, topic.neighbourhood_id)
        return topic

    async def view(self, session: AsyncSession, principal: Principal, topic: Topic) -> TopicView:
        repo = TopicRepository(session)
        count, average = await repo.rating_stats(topic.id)
        mine = await repo.rating_by(topic.id, principal.subject)
        people = await authors(session, [topic.proposer_id], topic.neighbourhood_id, None)
        return TopicView(
            topic=topic,
            proposer=people[topic.proposer_id],
            steps=tuple(await repo.steps(topic.id)),
            milestones=tuple(await repo.milestones(topic.id)),
            rating_count=count,
            rating_average=average,
            my_rating=mine.rating if mine else 0,
            poll_ids=tuple(await repo.poll_ids(topic.id)),
        )

    async def get(self, principal: Principal, topic_id: str) -> TopicView:
        async with self.ctx.sessions() as session:
            return await self.view(session, principal, await self._topic(session, principal, topic_id))

    async def list_topics(self, principal: Principal, neighbourhood_id: str, stage: str, page: Page) -> Paged:
        before = time_key(page.cursor)
        if stage and stage not in chain.STAGES:
            raise InvalidArgument("unknown stage", code="topic_stage_invalid")
        async with self.ctx.sessions() as session:
            await neighbourhood_reader(session, principal, neighbourhood_id)
            rows = await TopicRepository(session).listing(neighbourhood_id, stage or None, before, page.size + 1)
            shown = rows[: page.size]
            views = [await self.view(session, principal, t) for t in shown]
            key = time_cursor(shown[-1].created_at, shown[-1].id) if shown else None
            return Paged(items=list(views), next_cursor=next_cursor(list(rows), page.size, key))

    async def advance(
        self,
        principal: Principal,
        topic_id: str,
        target: str,
        reason: str,
        plan: tuple[str, str, Sequence[tuple[str, datetime | None]]] | None,
        draft: tuple[str, str, str] | None,
    ) -> TopicView:
        reason = chain.validate_reason(reason)
        async with self.ctx.sessions() as session, session.begin():
            topic = await self._topic(session, principal, topic_id)
            await neighbourhood_office(session, principal, topic.neighbourhood_id)
            repo = TopicRepository(session)
            milestones = await repo.milestones(topic.id)
            facts = chain.TopicFacts(tuple(m.progress for m in milestones), topic.evaluation_summary)
            project = chain.validate_plan(*plan) if plan is not None and target == chain.PROJECT else None
            convention = chain.validate_draft(*draft) if draft is not None and target == chain.CONVENTION else None
            chain.check_transition(topic.stage, target, facts, project, convention)
            now = self.ctx.clock.now()
            current = topic.stage
            if project is not None:
                await self._form_project(session, topic, project)
            if convention is not None:
                await self._adopt(session, principal, topic, convention, reason, now)
            if not await repo.move(topic.id, current, target, now):
                raise Conflict("the topic moved meanwhile; reload it", code="topic_changed")
            await repo.add(
                TopicStepRow(
                    id=new_id(),
                    topic_id=topic.id,
                    seq=await repo.next_seq(topic.id),
                    from_stage=current,
                    to_stage=target,
                    actor_id=principal.subject,
                    reason=reason,
                    at=now,
                )
            )
            await session.refresh(topic)
            await self.ctx.events.topic_stage_changed(session, topic, current, principal.subject, reason, now)
            post = await PostRepository(session).get(topic.post_id)
            if post is not None:
                await add_system_comment(self.ctx, session, post, f"议题进入「{STAGE_NAMES[target]}」阶段：{reason}")
            return await self.view(session, principal, topic)

    async def _form_project(self, session: AsyncSession, topic: Topic, plan: chain.ProjectPlan) -> None:
        topic.owner_id, topic.budget_note = plan.owner_id, plan.budget_note
        repo = TopicRepository(session)
        for position, milestone in enumerate(plan.milestones):
            await repo.add(
                MilestoneRow(
                    id=new_id(),
                    topic_id=topic.id,
                    position=position,
                    title=milestone.title,
                    due_at=milestone.due_at,
                    progress=0,
                    note="",
                )
            )

    async def _tally(self, session: AsyncSession, topic: Topic, poll_id: str) -> tuple[list[dict[str, object]], int]:
        """The adopting vote: a poll of this topic that has closed; its result is kept with the text."""
        polls = PollRepository(session)
        poll = await polls.get(poll_id)
        if poll is None or poll.topic_id != topic.id:
            raise InvalidArgument("the vote must be one of this topic's polls", code="convention_poll_invalid")
        chain.ensure_poll_closed(poll_rules.state(poll.opens_at, poll.closes_at, poll.closed_at, self.ctx.clock.now()))
        if await TopicRepository(session).poll_used(poll.id):
            raise FailedPrecondition("that vote already adopted a version", code="convention_poll_used")
        counts = await polls.tally(poll.id)
        tally = [{"label": o.label, "votes": counts.get(o.id, 0)} for o in await polls.options(poll.id)]
        return tally, await polls.ballot_count(poll.id)

    async def _adopt(
        self,
        session: AsyncSession,
        principal: Principal,
        topic: Topic,
        draft: chain.ConventionDraft,
        reason: str,
        now: datetime,
    ) -> ConventionRow:
        tally, ballots = await self._tally(session, topic, draft.poll_id)
        convention = ConventionRow(
            id=new_id(),
            neighbourhood_id=topic.neighbourhood_id,
            topic_id=topic.id,
            title=draft.title,
            current_version=1,
            created_at=now,
            updated_at=now,
        )
        repo = TopicRepository(session)
        await repo.add(convention)
        await repo.add(
            ConventionVersionRow(
                convention_id=convention.id,
                version=1,
                text=draft.text,
                poll_id=draft.poll_id,
                tally=tally,
                ballot_count=ballots,
                adopted_by=principal.subject,
                adopted_at=now,
                reason=reason,
            )
        )
        topic.convention_id = convention.id
        await session.flush()
        await self.ctx.events.convention_adopted(session, convention, 1, draft.poll_id, principal.subject, now)
        return convention

    async def update_milestone(
        self, principal: Principal, topic_id: str, milestone_id: str, progress: int, note: str
    ) -> TopicView:
        progress, note = chain.validate_progress(progress, note)
        async with self.ctx.sessions() as session, session.begin():
            topic = await self._topic(session, principal, topic_id)
            if topic.owner_id != principal.subject:
                await neighbourhood_office(session, principal, topic.neighbourhood_id)
            chain.ensure_stage(topic.stage, chain.IMPLEMENTATION, "milestone progress")
            milestone = await TopicRepository(session).milestone(milestone_id) if milestone_id else None
            if milestone is None or milestone.topic_id != topic.id:
                raise NotFound("no such milestone", code="milestone_not_found")
            milestone.progress, milestone.note = progress, note
            milestone.updated_by, milestone.updated_at = principal.subject, self.ctx.clock.now()
            await session.flush()
            return await self.view(session, principal, topic)

    async def rate(
        self, session: AsyncSession, principal: Principal, topic_id: str, rating: int, comment: str
    ) -> TopicView:
        rating, comment = chain.validate_rating(rating, comment)
        topic = await self._topic(session, principal, topic_id)
        if not principal.is_resident(topic.neighbourhood_id):
            raise PermissionDenied("residents rate the result", code="not_a_resident")
        chain.ensure_stage(topic.stage, chain.EVALUATION, "rating")
        repo = TopicRepository(session)
        if await repo.rating_by(topic.id, principal.subject) is not None:
            raise AlreadyExists("you have rated this topic", code="already_rated")
        try:
            await repo.add(
                TopicRating(
                    topic_id=topic.id,
                    person_id=principal.subject,
                    rating=rating,
                    comment=comment,
                    created_at=self.ctx.clock.now(),
                )
            )
        except IntegrityError:
            raise AlreadyExists("you have rated this topic", code="already_rated") from None
        return await self.view(session, principal, topic)

    async def summarise(self, principal: Principal, topic_id: str, summary: str) -> TopicView:
        summary = chain.validate_summary(summary)
        async with self.ctx.sessions() as session, session.begin():
            topic = await self._topic(session, principal, topic_id)
            await neighbourhood_office(session, principal, topic.neighbourhood_id)
            chain.ensure_stage(topic.stage, chain.EVALUATION, "the evaluation summary")
            topic.evaluation_summary, topic.updated_at = summary, self.ctx.clock.now()
            await session.flush()
            return await self.view(session, principal, topic)

    # --- conventions ------------------------------------------------------------------------------

    async def conventions(self, principal: Principal, neighbourhood_id: str, page: Page) -> Paged:
        before = time_key(page.cursor)
        async with self.ctx.sessions() as session:
            await neighbourhood_reader(session, principal, neighbourhood_id)
            repo = TopicRepository(session)
            rows = await repo.conventions(neighbourhood_id, before, page.size + 1)
            shown = rows[: page.size]
            views = [ConventionView(c, tuple(await repo.versions(c.id, newest_only=True))) for c in shown]
            key = time_cursor(shown[-1].created_at, shown[-1].id) if shown else None
            return Paged(items=list(views), next_cursor=next_cursor(list(rows), page.size, key))

    async def convention(self, principal: Principal, convention_id: str) -> ConventionView:
        async with self.ctx.sessions() as session:
            repo = TopicRepository(session)
            row = await repo.convention(convention_id) if convention_id else None
            if row is None:
                raise NotFound("no such convention", code="convention_not_found")
            await neighbourhood_reader(session, principal, row.neighbourhood_id)
            return ConventionView(row, tuple(await repo.versions(row.id)))

    async def amend(
        self, session: AsyncSession, principal: Principal, convention_id: str, text: str, poll_id: str, reason: str
    ) -> ConventionView:
        reason = chain.validate_reason(reason)
        repo = TopicRepository(session)
        row = await repo.convention(convention_id, for_update=True) if convention_id else None
        if row is None:
            raise NotFound("no such convention", code="convention_not_found")
        await neighbourhood_office(session, principal, row.neighbourhood_id)
        topic = await repo.get(row.topic_id)
        assert topic is not None
        draft = chain.validate_draft(row.title, text, poll_id)
        tally, ballots = await self._tally(session, topic, draft.poll_id)
        now = self.ctx.clock.now()
        version = row.current_version + 1
        await repo.add(
            ConventionVersionRow(
                convention_id=row.id,
                version=version,
                text=draft.text,
                poll_id=draft.poll_id,
                tally=tally,
                ballot_count=ballots,
                adopted_by=principal.subject,
                adopted_at=now,
                reason=reason,
            )
        )
        row.current_version, row.updated_at = version, now
        await session.flush()
        await self.ctx.events.convention_adopted(session, row, version, draft.poll_id, principal.subject, now)
        return ConventionView(row, tuple(await repo.versions(row.id)))
