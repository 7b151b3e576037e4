"""Households (户) of a neighbourhood, by address."""

from __future__ import annotations

from datetime import datetime

from fastapi import Query, Response
from pydantic import BaseModel

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.memberships import AddressModel, address_out
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/neighbourhoods/{neighbourhood_id}/households", tags=["households"])


class HouseholdOut(BaseModel):
    id: str
    neighbourhood_id: str
    address: AddressModel
    created_at: datetime | None


class HouseholdPage(BaseModel):
    items: list[HouseholdOut]
    next_cursor: str | None


def household_out(h: identity_pb2.Household) -> HouseholdOut:
    return HouseholdOut(
        id=h.id, neighbourhood_id=h.neighbourhood_id, address=address_out(h.address), created_at=from_ts(h.created_at)
    )


@router.post(
    "",
    status_code=201,
    response_model=HouseholdOut,
    summary="Add a household (200 with the existing one when the address is known)",
)
async def create_household(
    neighbourhood_id: str, body: AddressModel, caller: SignedIn, response: Response
) -> HouseholdOut:
    reply = await caller.call(
        caller.clients.identity.CreateHousehold,
        identity_pb2.CreateHouseholdRequest(neighbourhood_id=neighbourhood_id, address=body.to_proto()),
    )
    if not reply.created:
        response.status_code = 200
    return household_out(reply.household)


@router.get("", response_model=HouseholdPage, summary="The neighbourhood's households (committee and staff)")
async def list_households(
    neighbourhood_id: str,
    caller: SignedIn,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> HouseholdPage:
    reply = await caller.call(
        caller.clients.identity.ListHouseholds,
        identity_pb2.ListHouseholdsRequest(
            neighbourhood_id=neighbourhood_id, page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size)
        ),
    )
    return HouseholdPage(items=[household_out(h) for h in reply.households], next_cursor=reply.page.next_cursor or None)
