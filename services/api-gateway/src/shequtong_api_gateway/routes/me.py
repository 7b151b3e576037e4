"""The signed-in person: who they are, where they belong, what they may do."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routes.memberships import MembershipOut, membership_out
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/me", tags=["me"])


class PersonOut(BaseModel):
    id: str
    display_name: str = Field(examples=["张*"])
    real_name: str | None = Field(default=None, examples=["张三"])
    phone: str = Field(examples=["138****5678"])
    created_at: datetime | None = None


class MeOut(BaseModel):
    person: PersonOut
    memberships: list[MembershipOut]
    roles: list[str] = Field(examples=[["resident@n:0190c3a0-0000-7000-8000-000000000001"]])


def person_out(person: identity_pb2.Person) -> PersonOut:
    return PersonOut(
        id=person.id,
        display_name=person.display_name,
        real_name=person.real_name or None,
        phone=person.phone,
        created_at=from_ts(person.created_at),
    )


@router.get("", response_model=MeOut, summary="Me: person, memberships and roles")
async def me(caller: SignedIn) -> MeOut:
    reply = await caller.call(caller.clients.identity.GetMe, identity_pb2.GetMeRequest())
    return MeOut(
        person=person_out(reply.person),
        memberships=[membership_out(m) for m in reply.memberships],
        roles=list(reply.roles),
    )
