"""The duty roster: cadres' shifts and who is on duty now."""

from __future__ import annotations

from datetime import datetime

from fastapi import Query
from pydantic import AwareDatetime, BaseModel, Field

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts, ts

router = gateway_router(prefix="/v1/neighbourhoods/{neighbourhood_id}", tags=["roster"])


class ShiftIn(BaseModel):
    person_id: str = Field(min_length=1, max_length=36)
    starts_at: AwareDatetime = Field(examples=["2026-03-01T00:00:00Z"])
    ends_at: AwareDatetime = Field(examples=["2026-03-01T08:00:00Z"])


class ShiftOut(BaseModel):
    id: str
    neighbourhood_id: str
    person_id: str
    display_name: str
    starts_at: datetime | None
    ends_at: datetime | None
    created_by: str
    created_at: datetime | None


class ShiftPage(BaseModel):
    items: list[ShiftOut]
    next_cursor: str | None


class OnDutyOut(BaseModel):
    person_id: str
    display_name: str
    fallback_to_secretary: bool = Field(description="True when nobody is rostered and the secretary answers")
    shift_id: str | None


def shift_out(s: identity_pb2.Shift) -> ShiftOut:
    return ShiftOut(
        id=s.id,
        neighbourhood_id=s.neighbourhood_id,
        person_id=s.person_id,
        display_name=s.display_name,
        starts_at=from_ts(s.starts_at),
        ends_at=from_ts(s.ends_at),
        created_by=s.created_by,
        created_at=from_ts(s.created_at),
    )


@router.post("/roster", status_code=201, response_model=ShiftOut, summary="Put a cadre on duty (committee)")
async def create_shift(neighbourhood_id: str, body: ShiftIn, caller: SignedIn) -> ShiftOut:
    reply = await caller.call(
        caller.clients.identity.CreateShift,
        identity_pb2.CreateShiftRequest(
            neighbourhood_id=neighbourhood_id,
            person_id=body.person_id,
            starts_at=ts(body.starts_at),
            ends_at=ts(body.ends_at),
        ),
    )
    return shift_out(reply.shift)


@router.get("/roster", response_model=ShiftPage, summary="Shifts that end after `since` (default now)")
async def list_shifts(
    neighbourhood_id: str,
    caller: SignedIn,
    since: AwareDatetime | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> ShiftPage:
    reply = await caller.call(
        caller.clients.identity.ListShifts,
        identity_pb2.ListShiftsRequest(
            neighbourhood_id=neighbourhood_id,
            since=ts(since),
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return ShiftPage(items=[shift_out(s) for s in reply.shifts], next_cursor=reply.page.next_cursor or None)


@router.get("/on-duty", response_model=OnDutyOut, summary="Who is on duty at `at` (default now)")
async def on_duty(neighbourhood_id: str, caller: SignedIn, at: AwareDatetime | None = None) -> OnDutyOut:
    reply = await caller.call(
        caller.clients.identity.GetOnDuty,
        identity_pb2.GetOnDutyRequest(neighbourhood_id=neighbourhood_id, at=ts(at)),
    )
    return OnDutyOut(
        person_id=reply.person_id,
        display_name=reply.display_name,
        fallback_to_secretary=reply.fallback_to_secretary,
        shift_id=reply.shift_id or None,
    )
