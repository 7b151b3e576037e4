"""Open affairs: elections and owners'-committee formation, published as a post that members follow,
moved one stage at a time by the committee, with candidates and results on record."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import neighbourhood_office, neighbourhood_reader
from shequtong_boards.domain import affairs as rules
from shequtong_boards.domain.content import PostDraft, time_key
from shequtong_boards.models import AffairRow, AffairStep, CandidateRow
from shequtong_boards.repository import AffairRepository, BoardRepository, PostRepository
from shequtong_boards.usecases.base import Context, Page, next_cursor
from shequtong_boards.usecases.posts import PostUseCases, add_system_comment
from shequtong_boards.views import AffairView, Paged, time_cursor
from shequtong_kit.auth import Principal
from shequtong_kit.errors import Conflict, InvalidArgument, NotFound
from shequtong_kit.ids import new_id

CANDIDATES_MAX = 100


class AffairUseCases:
    def __init__(self, ctx: Context, posts: PostUseCases) -> None:
        self.ctx = ctx
        self.posts = posts

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        neighbourhood_id: str,
        kind: str,
        title: str,
        purpose: str,
        policy_basis: str,
        procedure: str,
    ) -> AffairView:
        process = rules.process_of(kind)
        title, purpose, policy_basis, procedure = rules.validate_affair(title, purpose, policy_basis, procedure)
        await neighbourhood_office(session, principal, neighbourhood_id)
        board = await BoardRepository(session).of_kind(neighbourhood_id, process.board_kind)
        if board is None:
            raise NotFound("the neighbourhood lacks the board for this affair", code="board_not_found")
        now = self.ctx.clock.now()
        affair_id = new_id()
        first = process.stage_keys()[0]
        body = "\n\n".join(
            part
            for part in (
                f"【目的】{purpose}",
                f"【政策依据】{policy_basis}" if policy_basis else "",
                f"【程序】{procedure}" if procedure else "",
                "【进程】" + " → ".join(name for _, name in process.stages),
            )
            if part
        )
        post = await self.posts.insert_post(
            session,
            board,
            principal.subject,
            PostDraft(title, body[:5000], (), (process.name_of(first),), ()),
            affair_id=affair_id,
        )
        affair = AffairRow(
            id=affair_id,
            neighbourhood_id=neighbourhood_id,
            kind=kind,
            board_id=board.id,
            post_id=post.id,
            title=title,
            purpose=purpose,
            policy_basis=policy_basis,
            procedure=procedure,
            stage=first,
            result_summary="",
            created_by=principal.subject,
            created_at=now,
            updated_at=now,
        )
        repo = AffairRepository(session)
        await repo.add(affair)
        await repo.add(
            AffairStep(id=new_id(), affair_id=affair.id, stage=first, actor_id=principal.subject, note="", at=now)
        )
        await self.ctx.events.affair_stage_changed(session, affair, "", principal.subject, "", now)
        return await self.view(session, affair)

    async def view(self, session: AsyncSession, affair: AffairRow) -> AffairView:
        repo = AffairRepository(session)
        return AffairView(
            affair=affair,
            process=rules.process_of(affair.kind),
            steps=tuple(await repo.steps(affair.id)),
            candidates=tuple(await repo.candidates(affair.id)),
        )

    async def _affair(self, session: AsyncSession, principal: Principal, affair_id: str, office: bool) -> AffairRow:
        affair = await AffairRepository(session).get(affair_id) if affair_id else None
        if affair is None:
            raise NotFound("no such affair", code="affair_not_found")
        if office:
            await neighbourhood_office(session, principal, affair.neighbourhood_id)
        else:
            await neighbourhood_reader(session, principal, affair.neighbourhood_id)
        return affair

    async def get(self, principal: Principal, affair_id: str) -> AffairView:
        async with self.ctx.sessions() as session:
            return await self.view(session, await self._affair(session, principal, affair_id, office=False))

    async def list_affairs(self, principal: Principal, neighbourhood_id: str, page: Page) -> Paged:
        before = time_key(page.cursor)
        async with self.ctx.sessions() as session:
            await neighbourhood_reader(session, principal, neighbourhood_id)
            rows = await AffairRepository(session).listing(neighbourhood_id, before, page.size + 1)
            shown = rows[: page.size]
            views = [await self.view(session, a) for a in shown]
            key = time_cursor(shown[-1].created_at, shown[-1].id) if shown else None
            return Paged(items=list(views), next_cursor=next_cursor(list(rows), page.size, key))

    async def advance(self, principal: Principal, affair_id: str, target: str, note: str) -> AffairView:
        note = rules.validate_note(note)
        async with self.ctx.sessions() as session, session.begin():
            affair = await self._affair(session, principal, affair_id, office=True)
            process = rules.process_of(affair.kind)
            current = affair.stage
            rules.next_stage(process, current, target)
            now = self.ctx.clock.now()
            repo = AffairRepository(session)
            if not await repo.move(affair.id, current, target, now):
                raise Conflict("the affair moved meanwhile; reload it", code="affair_changed")
            await repo.add(
                AffairStep(
                    id=new_id(), affair_id=affair.id, stage=target, actor_id=principal.subject, note=note, at=now
                )
            )
            await session.refresh(affair)
            await self.ctx.events.affair_stage_changed(session, affair, current, principal.subject, note, now)
            post = await PostRepository(session).get(affair.post_id)
            if post is not None:
                text = f"进入「{process.name_of(target)}」阶段" + (f"：{note}" if note else "")
                await add_system_comment(self.ctx, session, post, text)
            return await self.view(session, affair)

    async def add_candidate(
        self, session: AsyncSession, principal: Principal, affair_id: str, name: str, person_id: str, statement: str
    ) -> AffairView:
        name, statement = rules.validate_candidate(name, statement)
        affair = await self._affair(session, principal, affair_id, office=True)
        rules.ensure_nominating(rules.process_of(affair.kind), affair.stage)
        repo = AffairRepository(session)
        existing = await repo.candidates(affair.id)
        if len(existing) >= CANDIDATES_MAX:
            raise InvalidArgument("too many candidates", code="candidates_too_many")
        if person_id and any(c.person_id == person_id for c in existing):
            raise InvalidArgument("this person is already a candidate", code="candidate_duplicate")
        try:
            await repo.add(
                CandidateRow(
                    id=new_id(),
                    affair_id=affair.id,
                    position=len(existing) + 1,
                    name=name,
                    person_id=person_id or None,
                    statement=statement,
                    votes=0,
                    elected=False,
                )
            )
        except IntegrityError:
            raise Conflict("another candidate was added meanwhile; retry", code="affair_changed") from None
        return await self.view(session, affair)

    async def record_result(
        self, principal: Principal, affair_id: str, summary: str, results: Sequence[tuple[str, int, bool]]
    ) -> AffairView:
        summary = summary.strip()
        if not 1 <= len(summary) <= rules.TEXT_MAX:
            raise InvalidArgument("summarise the result", code="affair_result_summary_invalid")
        async with self.ctx.sessions() as session, session.begin():
            affair = await self._affair(session, principal, affair_id, office=True)
            process = rules.process_of(affair.kind)
            rules.ensure_results_stage(process, affair.stage)
            candidates = {c.id: c for c in await AffairRepository(session).candidates(affair.id)}
            for candidate_id, votes, elected in results:
                candidate = candidates.get(candidate_id)
                if candidate is None:
                    raise InvalidArgument("a result names an unknown candidate", code="candidate_not_found")
                if votes < 0:
                    raise InvalidArgument("votes cannot be negative", code="candidate_votes_invalid")
                candidate.votes, candidate.elected = votes, elected
            affair.result_summary, affair.updated_at = summary, self.ctx.clock.now()
            await session.flush()
            post = await PostRepository(session).get(affair.post_id)
            if post is not None:
                elected_names = "、".join(c.name for c in candidates.values() if c.elected)
                text = f"结果公示：{summary}" + (f"（当选：{elected_names}）" if elected_names else "")
                await add_system_comment(self.ctx, session, post, text)
            return await self.view(session, affair)
