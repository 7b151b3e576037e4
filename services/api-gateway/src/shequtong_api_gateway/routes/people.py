"""Accounts made directly by operators (district and sub-district staff, committee members who do not
join through a neighbourhood's code)."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel, Field

from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.me import PersonOut, person_out
from shequtong_api_gateway.routing import gateway_router

router = gateway_router(prefix="/v1/people", tags=["people"])


class PersonIn(BaseModel):
    real_name: str = Field(min_length=1, max_length=50, examples=["李四"])
    phone: str = Field(min_length=11, max_length=20, examples=["13912345678"])
    id_number: str = Field(min_length=18, max_length=18, examples=["11010519491231002X"])
    password: str = Field(min_length=8, max_length=128, examples=["correct horse battery"])


class ProfileIn(BaseModel):
    real_name: str = Field(min_length=1, max_length=50, examples=["张三丰"])
    reason: str = Field(min_length=1, max_length=500, examples=["登记时姓名录入有误，已核对身份证"])


class RevealIn(BaseModel):
    neighbourhood_id: str = Field(min_length=1, max_length=36, description="Where you sit on the committee")
    reason: str = Field(min_length=1, max_length=500, examples=["核对低保申请材料"])


class RevealOut(BaseModel):
    id_number: str = Field(examples=["11010519491231002X"])
    reveal_id: str = Field(description="The audit entry recording this reveal")


@router.post("", status_code=201, response_model=PersonOut, summary="Create a staff account (operators)")
async def create_person(body: PersonIn, caller: SignedIn) -> PersonOut:
    reply = await caller.call(
        caller.clients.identity.CreatePerson,
        identity_pb2.CreatePersonRequest(
            real_name=body.real_name, phone=body.phone, id_number=body.id_number, password=body.password
        ),
    )
    return person_out(reply.person)


@router.patch(
    "/{person_id}",
    response_model=PersonOut,
    summary="Correct a person's real name (the committee of one of their neighbourhoods, or an operator)",
    description="A person cannot change their own real name (`self_update`): it was verified against the ID card.",
)
async def update_profile(person_id: str, body: ProfileIn, caller: SignedIn) -> PersonOut:
    reply = await caller.call(
        caller.clients.identity.UpdateProfile,
        identity_pb2.UpdateProfileRequest(person_id=person_id, real_name=body.real_name, reason=body.reason),
    )
    return person_out(reply.person)


@router.post(
    "/{person_id}/id-number/reveal",
    response_model=RevealOut,
    summary="Show a person's full ID number (cadres and secretary where they registered; audited)",
    description="Every call is recorded (who, whose, when, why) and listed to the staff above the "
    "neighbourhood at GET /v1/id-number-reveals. Not replayable with an Idempotency-Key, never cached.",
)
async def reveal_id_number(person_id: str, body: RevealIn, caller: SignedIn, response: Response) -> RevealOut:
    reply = await caller.call(
        caller.clients.identity.RevealIdNumber,
        identity_pb2.RevealIdNumberRequest(
            person_id=person_id, neighbourhood_id=body.neighbourhood_id, reason=body.reason
        ),
    )
    response.headers["Cache-Control"] = "no-store"
    return RevealOut(id_number=reply.id_number, reveal_id=reply.reveal_id)
