"""Social organisations (社会组织): registration and the district's approval."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import BaseModel, Field

from shequtong.volunteers.v1 import volunteers_pb2 as pb
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.volunteers import ReasonIn, name_of, page
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/organisations", tags=["organisations"])

OrganisationState = Literal["pending", "approved", "rejected"]
STATES: dict[str, int] = {
    "pending": pb.ORGANISATION_STATE_PENDING,
    "approved": pb.ORGANISATION_STATE_APPROVED,
    "rejected": pb.ORGANISATION_STATE_REJECTED,
}


class OrganisationIn(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["宝山区阳光社工服务社"])
    credit_code: str = Field(
        min_length=18, max_length=18, description="统一社会信用代码", examples=["91350100M000100Y43"]
    )
    district_id: str = Field(min_length=1, max_length=36, description="The district whose staff approve it")
    description: str = Field(default="", max_length=2000)


class OrganisationOut(BaseModel):
    id: str
    name: str
    credit_code: str
    district_id: str
    description: str
    state: OrganisationState
    registered_by: str
    registered_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    reason: str
    admin_person_ids: list[str]


class OrganisationPage(BaseModel):
    items: list[OrganisationOut]
    next_cursor: str | None


def organisation_out(o: pb.Organisation) -> OrganisationOut:
    return OrganisationOut(
        id=o.id,
        name=o.name,
        credit_code=o.credit_code,
        district_id=o.district_id,
        description=o.description,
        state=name_of(STATES, o.state),  # type: ignore[arg-type]
        registered_by=o.registered_by,
        registered_at=from_ts(o.registered_at),
        decided_by=o.decided_by or None,
        decided_at=from_ts(o.decided_at),
        reason=o.reason,
        admin_person_ids=list(o.admin_person_ids),
    )


@router.post(
    "",
    status_code=201,
    response_model=OrganisationOut,
    summary="Register a social organisation (you become its administrator; the district approves)",
)
async def register(body: OrganisationIn, caller: SignedIn) -> OrganisationOut:
    reply = await caller.call(
        caller.clients.volunteers.RegisterOrganisation,
        pb.RegisterOrganisationRequest(
            name=body.name, credit_code=body.credit_code, district_id=body.district_id, description=body.description
        ),
    )
    return organisation_out(reply.organisation)


@router.get(
    "",
    response_model=OrganisationPage,
    summary="Approved organisations of a district; applications for its staff; yours with mine=true",
)
async def list_organisations(
    caller: SignedIn,
    district_id: str | None = None,
    state: OrganisationState | None = None,
    mine: bool = False,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> OrganisationPage:
    reply = await caller.call(
        caller.clients.volunteers.ListOrganisations,
        pb.ListOrganisationsRequest(
            district_id=district_id or "",
            state=STATES.get(state or "", pb.ORGANISATION_STATE_UNSPECIFIED),  # type: ignore[arg-type]
            mine=mine,
            page=page(cursor, page_size),
        ),
    )
    return OrganisationPage(
        items=[organisation_out(o) for o in reply.organisations], next_cursor=reply.page.next_cursor or None
    )


@router.get("/{organisation_id}", response_model=OrganisationOut, summary="One organisation")
async def get_organisation(organisation_id: str, caller: SignedIn) -> OrganisationOut:
    reply = await caller.call(caller.clients.volunteers.GetOrganisation, pb.GetOrganisationRequest(id=organisation_id))
    return organisation_out(reply.organisation)


@router.post("/{organisation_id}/approve", response_model=OrganisationOut, summary="Approve (district staff)")
async def approve(organisation_id: str, caller: SignedIn) -> OrganisationOut:
    reply = await caller.call(
        caller.clients.volunteers.ApproveOrganisation, pb.ApproveOrganisationRequest(id=organisation_id)
    )
    return organisation_out(reply.organisation)


@router.post(
    "/{organisation_id}/reject", response_model=OrganisationOut, summary="Reject with a reason (district staff)"
)
async def reject(organisation_id: str, body: ReasonIn, caller: SignedIn) -> OrganisationOut:
    reply = await caller.call(
        caller.clients.volunteers.RejectOrganisation,
        pb.RejectOrganisationRequest(id=organisation_id, reason=body.reason),
    )
    return organisation_out(reply.organisation)
