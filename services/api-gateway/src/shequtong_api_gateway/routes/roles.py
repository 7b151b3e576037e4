"""Scoped roles: granted and revoked along the hierarchy, every change audited."""

from __future__ import annotations

from datetime import datetime

from fastapi import Query
from pydantic import BaseModel, Field

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/roles", tags=["roles"])


class GrantIn(BaseModel):
    person_id: str = Field(min_length=1, max_length=36)
    role: str = Field(min_length=1, max_length=40, examples=["cadre"])
    scope: str = Field(min_length=1, max_length=80, examples=["n:0190c3a0-0000-7000-8000-000000000001"])
    reason: str = Field(default="", max_length=500, examples=["2026年换届当选"])


class RevokeIn(BaseModel):
    reason: str = Field(default="", max_length=500, examples=["任期届满"])


class GrantOut(BaseModel):
    id: str
    person_id: str
    display_name: str
    role: str
    scope: str
    granted_by: str
    reason: str
    granted_at: datetime | None
    revoked: bool
    revoked_by: str | None
    revoked_at: datetime | None


class GrantPage(BaseModel):
    items: list[GrantOut]
    next_cursor: str | None


def grant_out(g: identity_pb2.RoleGrant) -> GrantOut:
    return GrantOut(
        id=g.id,
        person_id=g.person_id,
        display_name=g.display_name,
        role=g.role,
        scope=g.scope,
        granted_by=g.granted_by,
        reason=g.reason,
        granted_at=from_ts(g.granted_at),
        revoked=g.revoked,
        revoked_by=g.revoked_by or None,
        revoked_at=from_ts(g.revoked_at),
    )


@router.post("", status_code=201, response_model=GrantOut, summary="Grant a scoped role")
async def grant(body: GrantIn, caller: SignedIn) -> GrantOut:
    reply = await caller.call(
        caller.clients.identity.GrantRole,
        identity_pb2.GrantRoleRequest(person_id=body.person_id, role=body.role, scope=body.scope, reason=body.reason),
    )
    return grant_out(reply.grant)


@router.post("/{grant_id}/revoke", response_model=GrantOut, summary="Revoke a role grant")
async def revoke(grant_id: str, caller: SignedIn, body: RevokeIn | None = None) -> GrantOut:
    reply = await caller.call(
        caller.clients.identity.RevokeRole,
        identity_pb2.RevokeRoleRequest(grant_id=grant_id, reason=body.reason if body else ""),
    )
    return grant_out(reply.grant)


@router.get("", response_model=GrantPage, summary="Role grants of a person or in a scope")
async def list_grants(
    caller: SignedIn,
    person_id: str | None = None,
    scope: str | None = None,
    include_revoked: bool = False,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> GrantPage:
    reply = await caller.call(
        caller.clients.identity.ListRoleGrants,
        identity_pb2.ListRoleGrantsRequest(
            person_id=person_id or "",
            scope=scope or "",
            include_revoked=include_revoked,
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return GrantPage(items=[grant_out(g) for g in reply.grants], next_cursor=reply.page.next_cursor or None)
