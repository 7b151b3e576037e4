"""Memberships: the committee's review queue, verification, rejection, and leaving."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Query
from pydantic import BaseModel, Field, model_validator

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["memberships"])

State = Literal["pending", "verified", "rejected", "left"]
STATES = {
    "pending": identity_pb2.MEMBERSHIP_STATE_PENDING,
    "verified": identity_pb2.MEMBERSHIP_STATE_VERIFIED,
    "rejected": identity_pb2.MEMBERSHIP_STATE_REJECTED,
    "left": identity_pb2.MEMBERSHIP_STATE_LEFT,
}


class AddressModel(BaseModel):
    building: str = Field(default="", max_length=40, examples=["12号楼"])
    unit: str = Field(default="", max_length=40, examples=["2"])
    room: str = Field(default="", max_length=40, examples=["301"])
    village_group: str = Field(default="", max_length=40, examples=[""])
    house_number: str = Field(default="", max_length=40, examples=[""])

    def to_proto(self) -> identity_pb2.Address:
        return identity_pb2.Address(**self.model_dump())


def address_out(address: identity_pb2.Address) -> AddressModel:
    return AddressModel(
        building=address.building,
        unit=address.unit,
        room=address.room,
        village_group=address.village_group,
        house_number=address.house_number,
    )


class MembershipOut(BaseModel):
    id: str
    person_id: str
    neighbourhood_id: str
    household_id: str
    state: State
    party_member_claimed: bool
    display_name: str = Field(examples=["张*"])
    phone: str = Field(description="Masked (138****5678) except to the neighbourhood's committee")
    real_name: str | None = Field(description="Only to the committee and the person themself")
    reason: str | None
    reviewed_by: str | None
    reviewed_at: datetime | None
    created_at: datetime | None
    address: AddressModel


class MembershipPage(BaseModel):
    items: list[MembershipOut]
    next_cursor: str | None


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, examples=["地址与户籍信息不符"])


class VerifyIn(BaseModel):
    confirm_party_member: bool = Field(default=False, description="Also confirm a claimed party membership")


class MoveIn(BaseModel):
    household_id: str | None = Field(default=None, max_length=36, description="An existing household here")
    address: AddressModel | None = Field(default=None, description="Or a new address in the same neighbourhood")

    @model_validator(mode="after")
    def _household_or_address(self) -> MoveIn:
        if not self.household_id and self.address is None:
            raise ValueError("give household_id or address")
        return self


class ConfirmPartyIn(BaseModel):
    reason: str = Field(default="", max_length=500, examples=["组织关系已转入本居委党支部"])


class PartyConfirmationOut(BaseModel):
    membership: MembershipOut
    grant_id: str
    role: str = Field(examples=["party_member"])
    scope: str


def membership_out(m: identity_pb2.Membership) -> MembershipOut:
    state = next(name for name, value in STATES.items() if value == m.state)
    return MembershipOut(
        id=m.id,
        person_id=m.person_id,
        neighbourhood_id=m.neighbourhood_id,
        household_id=m.household_id,
        state=state,  # type: ignore[arg-type]
        party_member_claimed=m.party_member_claimed,
        display_name=m.display_name,
        phone=m.phone,
        real_name=m.real_name or None,
        reason=m.reason or None,
        reviewed_by=m.reviewed_by or None,
        reviewed_at=from_ts(m.reviewed_at),
        created_at=from_ts(m.created_at),
        address=address_out(m.address),
    )


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/registrations",
    response_model=MembershipPage,
    summary="The neighbourhood's registrations (the committee's review queue)",
)
async def list_registrations(
    neighbourhood_id: str,
    caller: SignedIn,
    state: State | None = None,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> MembershipPage:
    reply = await caller.call(
        caller.clients.identity.ListRegistrations,
        identity_pb2.ListRegistrationsRequest(
            neighbourhood_id=neighbourhood_id,
            state=STATES.get(state or "", identity_pb2.MEMBERSHIP_STATE_UNSPECIFIED),
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return MembershipPage(
        items=[membership_out(m) for m in reply.memberships], next_cursor=reply.page.next_cursor or None
    )


@router.post("/v1/memberships/{membership_id}/verify", response_model=MembershipOut, summary="Verify a registration")
async def verify(membership_id: str, caller: SignedIn, body: VerifyIn | None = None) -> MembershipOut:
    reply = await caller.call(
        caller.clients.identity.VerifyMembership,
        identity_pb2.VerifyMembershipRequest(
            membership_id=membership_id, confirm_party_member=bool(body and body.confirm_party_member)
        ),
    )
    return membership_out(reply.membership)


@router.post(
    "/v1/memberships/{membership_id}/reject",
    response_model=MembershipOut,
    summary="Reject a registration with a reason",
)
async def reject(membership_id: str, body: RejectIn, caller: SignedIn) -> MembershipOut:
    reply = await caller.call(
        caller.clients.identity.RejectMembership,
        identity_pb2.RejectMembershipRequest(membership_id=membership_id, reason=body.reason),
    )
    return membership_out(reply.membership)


@router.post("/v1/memberships/{membership_id}/leave", response_model=MembershipOut, summary="Leave a neighbourhood")
async def leave(membership_id: str, caller: SignedIn) -> MembershipOut:
    reply = await caller.call(
        caller.clients.identity.LeaveNeighbourhood,
        identity_pb2.LeaveNeighbourhoodRequest(membership_id=membership_id),
    )
    return membership_out(reply.membership)


@router.post(
    "/v1/memberships/{membership_id}/move",
    response_model=MembershipOut,
    summary="Move to another household of the same neighbourhood (the member or the committee)",
)
async def move(membership_id: str, body: MoveIn, caller: SignedIn) -> MembershipOut:
    reply = await caller.call(
        caller.clients.identity.MoveHousehold,
        identity_pb2.MoveHouseholdRequest(
            membership_id=membership_id,
            household_id=body.household_id or "",
            address=body.address.to_proto() if body.address and not body.household_id else None,
        ),
    )
    return membership_out(reply.membership)


@router.post(
    "/v1/memberships/{membership_id}/confirm-party-member",
    response_model=PartyConfirmationOut,
    summary="Confirm a verified resident's party membership (党员亮身份; cadre or secretary)",
)
async def confirm_party_member(
    membership_id: str, caller: SignedIn, body: ConfirmPartyIn | None = None
) -> PartyConfirmationOut:
    reply = await caller.call(
        caller.clients.identity.ConfirmPartyMember,
        identity_pb2.ConfirmPartyMemberRequest(membership_id=membership_id, reason=body.reason if body else ""),
    )
    return PartyConfirmationOut(
        membership=membership_out(reply.membership),
        grant_id=reply.grant.id,
        role=reply.grant.role,
        scope=reply.grant.scope,
    )
