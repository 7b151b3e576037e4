"""The issue category catalogue (per district) and neighbourhoods' own response targets."""

from __future__ import annotations

from pydantic import BaseModel, Field

from shequtong.issues.v1 import issues_pb2 as pb
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router

router = gateway_router(tags=["issue categories"])


class CategoryOut(BaseModel):
    code: str
    name: str
    grid_service_code: str | None = Field(description="The grid platform's service code; absent: not dispatchable")
    grid_service_name: str | None
    response_hours: float
    resolution_hours: float
    keywords: list[str]
    active: bool
    sort_order: int


class CatalogueOut(BaseModel):
    district_id: str | None = Field(description="Absent when the default catalogue applies")
    is_default: bool
    items: list[CategoryOut]


class CategoryIn(BaseModel):
    name: str = Field(min_length=1, max_length=60, examples=["垃圾乱堆乱放"])
    grid_service_code: str | None = Field(default=None, max_length=32, examples=["01-02"])
    grid_service_name: str | None = Field(default=None, max_length=60, examples=["暴露垃圾"])
    response_hours: float = Field(default=15, gt=0, le=24 * 365, examples=[15])
    resolution_hours: float = Field(gt=0, le=24 * 365, examples=[48])
    keywords: list[str] = Field(default_factory=list, max_length=30, examples=[["垃圾", "异味"]])
    active: bool = True
    sort_order: int = Field(default=0, ge=0, le=100000)


class ResponseTargetIn(BaseModel):
    category_code: str | None = Field(default=None, max_length=48, description="Absent: every category")
    response_hours: float = Field(ge=0, le=24 * 365, examples=[8], description="0 removes the neighbourhood's own")


class ResponseTargetOut(BaseModel):
    neighbourhood_id: str
    category_code: str | None
    response_hours: float


def category_out(c: pb.IssueCategory) -> CategoryOut:
    return CategoryOut(
        code=c.code,
        name=c.name,
        grid_service_code=c.grid_service_code or None,
        grid_service_name=c.grid_service_name or None,
        response_hours=c.response_hours,
        resolution_hours=c.resolution_hours,
        keywords=list(c.keywords),
        active=c.active,
        sort_order=c.sort_order,
    )


def catalogue_out(reply: pb.ListIssueCategoriesResponse, district_id: str | None) -> CatalogueOut:
    return CatalogueOut(
        district_id=None if reply.is_default else district_id,
        is_default=reply.is_default,
        items=[category_out(c) for c in reply.categories],
    )


@router.get(
    "/v1/districts/{district_id}/issue-categories",
    response_model=CatalogueOut,
    summary="The district's issue categories (the default catalogue if it has none of its own)",
)
async def district_categories(district_id: str, caller: SignedIn, include_inactive: bool = False) -> CatalogueOut:
    reply = await caller.call(
        caller.clients.issues.ListIssueCategories,
        pb.ListIssueCategoriesRequest(district_id=district_id, include_inactive=include_inactive),
    )
    return catalogue_out(reply, district_id)


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/issue-categories",
    response_model=CatalogueOut,
    summary="The categories a resident of this neighbourhood chooses from",
)
async def neighbourhood_categories(neighbourhood_id: str, caller: SignedIn) -> CatalogueOut:
    reply = await caller.call(
        caller.clients.issues.ListIssueCategories, pb.ListIssueCategoriesRequest(neighbourhood_id=neighbourhood_id)
    )
    district = reply.categories[0].district_id if reply.categories else ""
    return catalogue_out(reply, district or None)


@router.put(
    "/v1/districts/{district_id}/issue-categories/{code}",
    response_model=CategoryOut,
    summary="Add or change a category of the district's catalogue (district staff)",
)
async def upsert_category(district_id: str, code: str, body: CategoryIn, caller: SignedIn) -> CategoryOut:
    reply = await caller.call(
        caller.clients.issues.UpsertIssueCategory,
        pb.UpsertIssueCategoryRequest(
            district_id=district_id,
            category=pb.IssueCategory(
                code=code,
                name=body.name,
                grid_service_code=body.grid_service_code or "",
                grid_service_name=body.grid_service_name or "",
                response_hours=body.response_hours,
                resolution_hours=body.resolution_hours,
                keywords=body.keywords,
                active=body.active,
                sort_order=body.sort_order,
            ),
        ),
    )
    return category_out(reply.category)


@router.put(
    "/v1/neighbourhoods/{neighbourhood_id}/issue-response-target",
    response_model=ResponseTargetOut,
    summary="A neighbourhood's own response target (sub-district or district staff)",
)
async def set_response_target(neighbourhood_id: str, body: ResponseTargetIn, caller: SignedIn) -> ResponseTargetOut:
    reply = await caller.call(
        caller.clients.issues.SetResponseTarget,
        pb.SetResponseTargetRequest(
            neighbourhood_id=neighbourhood_id,
            category_code=body.category_code or "",
            response_hours=body.response_hours,
        ),
    )
    return ResponseTargetOut(
        neighbourhood_id=reply.neighbourhood_id,
        category_code=reply.category_code or None,
        response_hours=reply.response_hours,
    )
