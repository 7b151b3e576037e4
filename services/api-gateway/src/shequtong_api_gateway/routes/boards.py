"""A neighbourhood's boards (版块), the district's board catalogue, unread counts."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from shequtong.boards.v1 import boards_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["boards"])

Scope = Literal["neighbourhood", "district"]
SCOPES = {"neighbourhood": boards_pb2.BOARD_SCOPE_NEIGHBOURHOOD, "district": boards_pb2.BOARD_SCOPE_DISTRICT}
AUDIENCE_HELP = (
    "Audiences: anyone, member, resident, committee, secretary, party_member, volunteer, police, doctor, "
    "lawyer, property_manager, owners_committee, staff (sub-district/district staff above), district_staff."
)


class Policy(BaseModel):
    read: list[str] = Field(default_factory=list, max_length=20, examples=[["member", "staff"]])
    post: list[str] = Field(default_factory=list, max_length=20, examples=[["resident", "committee"]])
    comment: list[str] = Field(default_factory=list, max_length=20, examples=[["member"]])
    answer: list[str] = Field(default_factory=list, max_length=20, examples=[["committee"]])
    moderate: list[str] = Field(default_factory=list, max_length=20, examples=[["committee", "staff"]])


class Permissions(BaseModel):
    can_read: bool
    can_post: bool
    can_comment: bool
    can_answer: bool
    can_moderate: bool


class BoardOut(BaseModel):
    id: str
    neighbourhood_id: str | None = Field(description="Empty for district-wide boards")
    district_id: str | None
    scope: Scope
    kind: str = Field(examples=["neighbourhood_matters"])
    name: str = Field(examples=["身边事"])
    position: int
    policy: Policy
    permissions: Permissions = Field(description="What the caller may do here")
    created_at: datetime | None


class CatalogueEntryOut(BaseModel):
    kind: str
    name: str
    scope: Scope
    policy: Policy
    customised: bool
    opened: bool
    position: int


class CatalogueEntryIn(BaseModel):
    name: str = Field(min_length=1, max_length=40, examples=["大调研"])
    scope: Scope | None = Field(default=None, description="Required for a new kind; a default kind keeps its own")
    policy: Policy = Field(description=AUDIENCE_HELP)


class CatalogueEntryPut(BaseModel):
    entry: CatalogueEntryOut
    boards_opened: int


class UnreadOut(BaseModel):
    board_id: str
    kind: str
    unread: int
    capped: bool = Field(description="True when there are more than `unread` (show 99+)")


class ReadOut(BaseModel):
    read_at: datetime | None


def policy_out(policy: boards_pb2.BoardPolicy) -> Policy:
    return Policy(
        read=list(policy.read),
        post=list(policy.post),
        comment=list(policy.comment),
        answer=list(policy.answer),
        moderate=list(policy.moderate),
    )


def scope_name(value: int) -> Scope:
    return "district" if value == boards_pb2.BOARD_SCOPE_DISTRICT else "neighbourhood"


def board_out(b: boards_pb2.Board) -> BoardOut:
    p = b.permissions
    return BoardOut(
        id=b.id,
        neighbourhood_id=b.neighbourhood_id or None,
        district_id=b.district_id or None,
        scope=scope_name(b.scope),
        kind=b.kind,
        name=b.name,
        position=b.position,
        policy=policy_out(b.policy),
        permissions=Permissions(
            can_read=p.can_read,
            can_post=p.can_post,
            can_comment=p.can_comment,
            can_answer=p.can_answer,
            can_moderate=p.can_moderate,
        ),
        created_at=from_ts(b.created_at),
    )


def entry_out(e: boards_pb2.CatalogueEntry) -> CatalogueEntryOut:
    return CatalogueEntryOut(
        kind=e.kind,
        name=e.name,
        scope=scope_name(e.scope),
        policy=policy_out(e.policy),
        customised=e.customised,
        opened=e.opened,
        position=e.position,
    )


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/boards",
    response_model=list[BoardOut],
    summary="The neighbourhood's boards (and its district's), with what the caller may do on each",
)
async def list_boards(neighbourhood_id: str, caller: SignedIn) -> list[BoardOut]:
    reply = await caller.call(
        caller.clients.boards.ListBoards, boards_pb2.ListBoardsRequest(neighbourhood_id=neighbourhood_id)
    )
    return [board_out(b) for b in reply.boards]


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/boards/unread",
    response_model=list[UnreadOut],
    summary="Unread posts per board for the caller",
)
async def unread_counts(neighbourhood_id: str, caller: SignedIn) -> list[UnreadOut]:
    reply = await caller.call(
        caller.clients.boards.GetUnreadCounts, boards_pb2.GetUnreadCountsRequest(neighbourhood_id=neighbourhood_id)
    )
    return [UnreadOut(board_id=c.board_id, kind=c.kind, unread=c.unread, capped=c.capped) for c in reply.counts]


@router.get("/v1/boards/{board_id}", response_model=BoardOut, summary="One board")
async def get_board(board_id: str, caller: SignedIn) -> BoardOut:
    reply = await caller.call(caller.clients.boards.GetBoard, boards_pb2.GetBoardRequest(board_id=board_id))
    return board_out(reply.board)


@router.post("/v1/boards/{board_id}/read", response_model=ReadOut, summary="Mark the board read up to now")
async def mark_read(board_id: str, caller: SignedIn) -> ReadOut:
    reply = await caller.call(caller.clients.boards.MarkBoardRead, boards_pb2.MarkBoardReadRequest(board_id=board_id))
    return ReadOut(read_at=from_ts(reply.read_at))


@router.get(
    "/v1/districts/{district_id}/board-catalogue",
    response_model=list[CatalogueEntryOut],
    summary="The district's board catalogue: kinds, names, policies",
)
async def list_catalogue(district_id: str, caller: SignedIn) -> list[CatalogueEntryOut]:
    reply = await caller.call(
        caller.clients.boards.ListCatalogue, boards_pb2.ListCatalogueRequest(district_id=district_id)
    )
    return [entry_out(e) for e in reply.entries]


@router.put(
    "/v1/districts/{district_id}/board-catalogue/{kind}",
    response_model=CatalogueEntryPut,
    summary="Change a board kind's name or policy for the district, or add a kind (district staff)",
)
async def put_catalogue_entry(
    district_id: str, kind: str, body: CatalogueEntryIn, caller: SignedIn
) -> CatalogueEntryPut:
    reply = await caller.call(
        caller.clients.boards.PutCatalogueEntry,
        boards_pb2.PutCatalogueEntryRequest(
            district_id=district_id,
            kind=kind,
            name=body.name,
            scope=SCOPES.get(body.scope or "", boards_pb2.BOARD_SCOPE_UNSPECIFIED),
            policy=boards_pb2.BoardPolicy(**body.policy.model_dump()),
        ),
    )
    return CatalogueEntryPut(entry=entry_out(reply.entry), boards_opened=reply.boards_opened)
