"""The region tree: district → sub-district → neighbourhood."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import BaseModel, Field

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/regions", tags=["regions"])

Level = Literal["district", "subdistrict", "neighbourhood"]
Kind = Literal["residential", "village"]

LEVELS = {
    "district": identity_pb2.REGION_LEVEL_DISTRICT,
    "subdistrict": identity_pb2.REGION_LEVEL_SUBDISTRICT,
    "neighbourhood": identity_pb2.REGION_LEVEL_NEIGHBOURHOOD,
}
KINDS = {"residential": common_pb2.NEIGHBOURHOOD_KIND_RESIDENTIAL, "village": common_pb2.NEIGHBOURHOOD_KIND_VILLAGE}


class RegionIn(BaseModel):
    level: Level
    code: str = Field(min_length=1, max_length=64, examples=["310113101001"])
    name: str = Field(min_length=1, max_length=200, examples=["淞南十村"])
    parent_id: str | None = Field(default=None, max_length=36)
    kind: Kind | None = Field(default=None, description="For neighbourhoods: residential committee or village")


class RegionOut(BaseModel):
    id: str
    level: Level
    code: str
    name: str
    parent_id: str | None
    kind: Kind | None
    district_id: str | None
    subdistrict_id: str | None
    created_at: datetime | None


class RegionPage(BaseModel):
    items: list[RegionOut]
    next_cursor: str | None


def region_out(region: identity_pb2.Region) -> RegionOut:
    level = next(name for name, value in LEVELS.items() if value == region.level)
    kind = next((name for name, value in KINDS.items() if value == region.kind), None)
    return RegionOut(
        id=region.id,
        level=level,  # type: ignore[arg-type]
        code=region.code,
        name=region.name,
        parent_id=region.parent_id or None,
        kind=kind,  # type: ignore[arg-type]
        district_id=region.district_id or None,
        subdistrict_id=region.subdistrict_id or None,
        created_at=from_ts(region.created_at),
    )


@router.post("", status_code=201, response_model=RegionOut, summary="Add a district, sub-district or neighbourhood")
async def create_region(body: RegionIn, caller: SignedIn) -> RegionOut:
    reply = await caller.call(
        caller.clients.identity.CreateRegion,
        identity_pb2.CreateRegionRequest(
            level=LEVELS[body.level],
            code=body.code,
            name=body.name,
            parent_id=body.parent_id or "",
            kind=KINDS.get(body.kind or "", common_pb2.NEIGHBOURHOOD_KIND_UNSPECIFIED),
        ),
    )
    return region_out(reply.region)


@router.get("/{region_id}", response_model=RegionOut, summary="One region")
async def get_region(region_id: str, caller: SignedIn) -> RegionOut:
    reply = await caller.call(caller.clients.identity.GetRegion, identity_pb2.GetRegionRequest(id=region_id))
    return region_out(reply.region)


@router.get("", response_model=RegionPage, summary="Regions under a parent, or of a level")
async def list_regions(
    caller: SignedIn,
    parent_id: str | None = None,
    level: Level | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> RegionPage:
    reply = await caller.call(
        caller.clients.identity.ListRegions,
        identity_pb2.ListRegionsRequest(
            parent_id=parent_id or "",
            level=LEVELS.get(level or "", identity_pb2.REGION_LEVEL_UNSPECIFIED),
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return RegionPage(items=[region_out(r) for r in reply.regions], next_cursor=reply.page.next_cursor or None)
