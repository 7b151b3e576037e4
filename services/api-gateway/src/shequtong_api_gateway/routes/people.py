"""Accounts made directly by operators (district and sub-district staff, committee members who do not
join through a neighbourhood's code)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.me import PersonOut, person_out

router = APIRouter(prefix="/v1/people", tags=["people"])


class PersonIn(BaseModel):
    real_name: str = Field(min_length=1, max_length=50, examples=["李四"])
    phone: str = Field(min_length=11, max_length=20, examples=["13912345678"])
    id_number: str = Field(min_length=18, max_length=18, examples=["11010519491231002X"])
    password: str = Field(min_length=8, max_length=128, examples=["correct horse battery"])


@router.post("", status_code=201, response_model=PersonOut, summary="Create a staff account (operators)")
async def create_person(body: PersonIn, caller: SignedIn) -> PersonOut:
    reply = await caller.call(
        caller.clients.identity.CreatePerson,
        identity_pb2.CreatePersonRequest(
            real_name=body.real_name, phone=body.phone, id_number=body.id_number, password=body.password
        ),
    )
    return person_out(reply.person)
