"""Who may do what on a board: the board's effective policy and the caller's audiences (token roles
against the board's neighbourhood or district), resolved once per request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_boards.domain import catalogue
from shequtong_boards.domain.policy import (
    COMMITTEE,
    STAFF,
    Permissions,
    Policy,
    district_audiences,
    neighbourhood_audiences,
    permissions,
)
from shequtong_boards.models import Board, CatalogueOverride
from shequtong_boards.repository import BoardRepository, lineages_of, subdistricts_of
from shequtong_kit import regions
from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.errors import NotFound, PermissionDenied


def override_kind(row: CatalogueOverride) -> catalogue.BoardKind:
    return catalogue.BoardKind(
        key=row.kind, name=row.name, scope=row.scope, policy=Policy.from_dict(row.policy), position=row.position
    )


async def district_overrides(session: AsyncSession, district_id: str) -> dict[str, catalogue.BoardKind]:
    return {row.kind: override_kind(row) for row in await BoardRepository(session).overrides(district_id)}


def policy_of(board: Board, overrides: dict[str, catalogue.BoardKind]) -> Policy:
    entry = catalogue.effective_entry(board.kind, overrides)
    return entry.policy if entry else catalogue.BoardKind(board.kind, board.name).policy


@dataclass(frozen=True)
class BoardAccess:
    board: Board
    policy: Policy
    audiences: frozenset[str]
    perms: Permissions
    # The board's neighbourhood (None for district-wide boards).
    lineage: Lineage | None

    def require_read(self) -> None:
        if not self.perms.can_read:
            raise PermissionDenied("this board is for the neighbourhood's members", code="board_read_forbidden")

    def require_post(self) -> None:
        self.require_read()
        if not self.perms.can_post:
            raise PermissionDenied("you may not post on this board", code="board_post_forbidden")

    def require_comment(self) -> None:
        self.require_read()
        if not self.perms.can_comment:
            raise PermissionDenied("you may not comment on this board", code="board_comment_forbidden")

    def require_answer(self) -> None:
        self.require_read()
        if not self.perms.can_answer:
            raise PermissionDenied("only the board's responders give official answers", code="not_a_responder")

    def require_moderate(self) -> None:
        if not self.perms.can_moderate:
            raise PermissionDenied("only the board's moderators may do this", code="not_a_moderator")


async def audiences_for(
    session: AsyncSession, principal: Principal, board: Board
) -> tuple[frozenset[str], Lineage | None]:
    if board.neighbourhood_id:
        lineage = await regions.lineage(session, board.neighbourhood_id)
        return neighbourhood_audiences(principal, lineage), lineage
    district_id = board.district_id or ""
    mine = await lineages_of(session, principal.neighbourhoods())
    subdistricts = await subdistricts_of(session, district_id) if principal.scopes_of("subdistrict_staff") else set()
    return district_audiences(principal, district_id, mine, subdistricts), None


async def board_access(
    session: AsyncSession,
    principal: Principal,
    board: Board,
    overrides: dict[str, catalogue.BoardKind] | None = None,
) -> BoardAccess:
    if overrides is None:
        overrides = await district_overrides(session, board.district_id or "")
    policy = policy_of(board, overrides)
    audiences, lineage = await audiences_for(session, principal, board)
    return BoardAccess(board, policy, audiences, permissions(policy, audiences), lineage)


async def accesses(
    session: AsyncSession,
    principal: Principal,
    boards: list[Board],
    overrides: dict[str, catalogue.BoardKind],
) -> list[BoardAccess]:
    """Access to many boards of one neighbourhood and its district: audiences resolved once per scope."""
    cache: dict[tuple[str | None, str | None], tuple[frozenset[str], Lineage | None]] = {}
    found = []
    for board in boards:
        scope = (board.neighbourhood_id, None if board.neighbourhood_id else board.district_id)
        if scope not in cache:
            cache[scope] = await audiences_for(session, principal, board)
        audiences, lineage = cache[scope]
        policy = policy_of(board, overrides)
        found.append(BoardAccess(board, policy, audiences, permissions(policy, audiences), lineage))
    return found


async def load_board(session: AsyncSession, board_id: str) -> Board:
    board = await BoardRepository(session).get(board_id) if board_id else None
    if board is None:
        raise NotFound("no such board", code="board_not_found")
    return board


async def access_to(session: AsyncSession, principal: Principal, board_id: str) -> BoardAccess:
    return await board_access(session, principal, await load_board(session, board_id))


async def neighbourhood_office(session: AsyncSession, principal: Principal, neighbourhood_id: str) -> Lineage:
    """The committee of the neighbourhood or staff above it (cadres run deliberation and affairs)."""
    lineage = await regions.lineage(session, neighbourhood_id)
    if not {COMMITTEE, STAFF} & neighbourhood_audiences(principal, lineage):
        raise PermissionDenied("only the neighbourhood's committee may do this", code="not_committee")
    return lineage


async def neighbourhood_reader(session: AsyncSession, principal: Principal, neighbourhood_id: str) -> Lineage:
    """A member of the neighbourhood or staff above it."""
    lineage = await regions.lineage(session, neighbourhood_id)
    if not (principal.is_member(neighbourhood_id) or principal.oversees(lineage)):
        raise PermissionDenied("not a member of this neighbourhood", code="not_a_member")
    return lineage
