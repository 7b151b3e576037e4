"""The audit of full ID numbers shown: who saw whose, where, when and why."""

from __future__ import annotations

from datetime import datetime

from fastapi import Query
from pydantic import BaseModel, Field

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/id-number-reveals", tags=["personal data"])


class RevealEntry(BaseModel):
    id: str
    person_id: str
    person_display_name: str = Field(examples=["张*"])
    revealed_by: str
    revealed_by_display_name: str = Field(examples=["李**"])
    neighbourhood_id: str
    reason: str = Field(examples=["核对低保申请材料"])
    revealed_at: datetime | None


class RevealPage(BaseModel):
    items: list[RevealEntry]
    next_cursor: str | None


@router.get(
    "",
    response_model=RevealPage,
    summary="Reveals of ID numbers, newest first",
    description="In a district, sub-district or neighbourhood (`region_id`): for the staff above the "
    "neighbourhood and operators. `person_id` alone: a person sees who looked at their own number.",
)
async def list_reveals(
    caller: SignedIn,
    region_id: str | None = Query(default=None, max_length=36),
    person_id: str | None = Query(default=None, max_length=36),
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> RevealPage:
    reply = await caller.call(
        caller.clients.identity.ListIdNumberReveals,
        identity_pb2.ListIdNumberRevealsRequest(
            region_id=region_id or "",
            person_id=person_id or "",
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return RevealPage(
        items=[
            RevealEntry(
                id=r.id,
                person_id=r.person_id,
                person_display_name=r.person_display_name,
                revealed_by=r.revealed_by,
                revealed_by_display_name=r.revealed_by_display_name,
                neighbourhood_id=r.neighbourhood_id,
                reason=r.reason,
                revealed_at=from_ts(r.revealed_at),
            )
            for r in reply.reveals
        ],
        next_cursor=reply.page.next_cursor or None,
    )
