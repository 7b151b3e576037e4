"""A neighbourhood's boards (版块)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from shequtong.boards.v1 import boards_pb2
from shequtong_api_gateway.deps import SignedIn

router = APIRouter(prefix="/v1/neighbourhoods/{neighbourhood_id}/boards", tags=["boards"])


class BoardOut(BaseModel):
    id: str
    neighbourhood_id: str
    kind: str
    name: str


@router.get("", response_model=list[BoardOut], summary="The neighbourhood's boards")
async def list_boards(neighbourhood_id: str, caller: SignedIn) -> list[BoardOut]:
    reply = await caller.call(
        caller.clients.boards.ListBoards, boards_pb2.ListBoardsRequest(neighbourhood_id=neighbourhood_id)
    )
    return [BoardOut(id=b.id, neighbourhood_id=b.neighbourhood_id, kind=b.kind, name=b.name) for b in reply.boards]
