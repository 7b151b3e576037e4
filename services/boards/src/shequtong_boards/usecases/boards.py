"""Boards: opening the catalogue for neighbourhoods, listing with the caller's permissions, the district's
catalogue changes, unread counts."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.access import accesses, board_access, district_overrides, load_board, neighbourhood_reader
from shequtong_boards.domain import catalogue
from shequtong_boards.domain.policy import validate_policy
from shequtong_boards.models import Board
from shequtong_boards.repository import BoardRepository, PeopleRepository
from shequtong_boards.usecases.base import Context
from shequtong_boards.views import BoardView
from shequtong_kit import auth, regions
from shequtong_kit.auth import Principal
from shequtong_kit.errors import InvalidArgument, PermissionDenied
from shequtong_kit.ids import new_id

UNREAD_CAP = 99
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BoardUseCases:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def open_boards_for(self, session: AsyncSession, neighbourhood_id: str) -> None:
        """Creates the boards a neighbourhood lacks from its district's catalogue (safe on redelivery)."""
        repo = BoardRepository(session)
        found = await regions.find_lineage(session, neighbourhood_id)
        overrides = await district_overrides(session, found.district_id) if found else {}
        existing = await repo.kinds_in(neighbourhood_id)
        now = self.ctx.clock.now()
        opened = [
            Board(
                id=new_id(),
                neighbourhood_id=neighbourhood_id,
                district_id=found.district_id if found else None,
                scope=catalogue.NEIGHBOURHOOD,
                kind=kind.key,
                name=kind.name,
                position=kind.position,
                created_at=now,
            )
            for kind in catalogue.neighbourhood_kinds(catalogue.effective_catalogue(overrides))
            if kind.key not in existing
        ]
        await repo.add_all(opened)
        if opened and found:
            await repo.bump_catalogue_version(found.district_id)

    async def list_boards(self, principal: Principal, neighbourhood_id: str) -> list[BoardView]:
        """The neighbourhood's boards and its district's boards that the caller may read."""
        async with self.ctx.sessions() as session:
            lineage = await regions.lineage(session, neighbourhood_id)
            found = await self.ctx.catalogues.of_neighbourhood(session, neighbourhood_id, lineage.district_id)
            views = [
                BoardView(a.board, a.policy, a.perms)
                for a in await accesses(session, principal, found.boards, found.overrides)
                if a.perms.can_read
            ]
            if not views:
                raise PermissionDenied("not a member of this neighbourhood", code="not_a_member")
            return views

    async def get_board(self, principal: Principal, board_id: str) -> BoardView:
        async with self.ctx.sessions() as session:
            access = await board_access(session, principal, await load_board(session, board_id))
            access.require_read()
            return BoardView(access.board, access.policy, access.perms)

    # --- the district's catalogue ---------------------------------------------------------------

    async def list_catalogue(
        self, principal: Principal, district_id: str
    ) -> list[tuple[catalogue.BoardKind, bool, bool]]:
        """(entry, customised, opened) for each kind of the district's catalogue."""
        async with self.ctx.sessions() as session:
            overrides = await district_overrides(session, district_id)
            opened = {b.kind for b in await BoardRepository(session).of_district(district_id)}
        return [
            (kind, kind.key in overrides, kind.scope == catalogue.NEIGHBOURHOOD or kind.key in opened)
            for kind in catalogue.effective_catalogue(overrides)
        ]

    async def put_catalogue_entry(
        self,
        principal: Principal,
        district_id: str,
        kind_key: str,
        name: str,
        scope: str,
        policy_actions: dict[str, list[str]],
    ) -> tuple[catalogue.BoardKind, int]:
        if not (principal.has(auth.DISTRICT_STAFF, f"d:{district_id}") or principal.is_operator):
            raise PermissionDenied("only the district's staff change its catalogue", code="not_district_staff")
        policy = validate_policy(policy_actions)
        async with self.ctx.sessions() as session, session.begin():
            repo = BoardRepository(session)
            previous = await repo.override(district_id, kind_key.strip())
            position = previous.position if previous else None
            entry = catalogue.validate_entry(
                kind_key, name, scope or (previous.scope if previous else ""), policy, position
            )
            if previous is not None and previous.scope != entry.scope:
                raise InvalidArgument("a kind keeps the scope it was created with", code="board_scope_fixed")
            now = self.ctx.clock.now()
            await repo.put_override(
                {
                    "district_id": district_id,
                    "kind": entry.key,
                    "name": entry.name,
                    "scope": entry.scope,
                    "policy": entry.policy.to_dict(),
                    "position": entry.position,
                    "updated_by": principal.subject,
                    "updated_at": now,
                }
            )
            await repo.rename_in_district(district_id, entry.key, entry.name)
            opened: list[Board] = []
            if entry.scope == catalogue.DISTRICT:
                if not await repo.district_kind_exists(district_id, entry.key):
                    opened.append(self._board(entry, None, district_id, now))
            else:
                for neighbourhood_id in await repo.neighbourhoods_lacking(district_id, entry.key):
                    opened.append(self._board(entry, neighbourhood_id, district_id, now))
            await repo.add_all(opened)
            await repo.bump_catalogue_version(district_id)
            return entry, len(opened)

    @staticmethod
    def _board(kind: catalogue.BoardKind, neighbourhood_id: str | None, district_id: str, now: datetime) -> Board:
        return Board(
            id=new_id(),
            neighbourhood_id=neighbourhood_id,
            district_id=district_id,
            scope=kind.scope,
            kind=kind.key,
            name=kind.name,
            position=kind.position,
            created_at=now,
        )

    # --- unread ---------------------------------------------------------------------------------

    async def unread_counts(self, principal: Principal, neighbourhood_id: str) -> list[tuple[Board, int, bool]]:
        person = principal.person_id
        async with self.ctx.sessions() as session:
            lineage = await neighbourhood_reader(session, principal, neighbourhood_id)
            repo = BoardRepository(session)
            found = await self.ctx.catalogues.of_neighbourhood(session, neighbourhood_id, lineage.district_id)
            readable = [
                a.board for a in await accesses(session, principal, found.boards, found.overrides) if a.perms.can_read
            ]
            marks = await repo.last_read(person, [b.id for b in readable])
            member = await PeopleRepository(session).member(person, neighbourhood_id)
            start = member.verified_at if member else EPOCH
            counts = []
            for board in readable:
                found = await repo.unread(board.id, marks.get(board.id, start), person, UNREAD_CAP + 1)
                counts.append((board, min(found, UNREAD_CAP), found > UNREAD_CAP))
            return counts

    async def mark_read(self, principal: Principal, board_id: str) -> datetime:
        person = principal.person_id
        async with self.ctx.sessions() as session, session.begin():
            access = await board_access(session, principal, await load_board(session, board_id))
            access.require_read()
            now = self.ctx.clock.now()
            await BoardRepository(session).mark_read(person, board_id, now)
            return now
