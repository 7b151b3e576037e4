"""Joining a neighbourhood: the committee's join codes and newcomers' registrations."""

from __future__ import annotations

import io
from datetime import datetime

import segno
from fastapi import Query, Request, Response
from pydantic import BaseModel, Field, model_validator

from shequtong.common.v1 import common_pb2
from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import OptionalCaller, SignedIn
from shequtong_api_gateway.problems import ApiProblem
from shequtong_api_gateway.routes.memberships import AddressModel, MembershipOut, membership_out
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(tags=["join"])


class JoinCodeIn(BaseModel):
    ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600, examples=[604800])
    max_uses: int = Field(default=500, ge=1, le=100_000, examples=[500])


class JoinCodeOut(BaseModel):
    code: str = Field(examples=["K7QX2M9PAB3D"])
    neighbourhood_id: str
    expires_at: datetime | None
    max_uses: int
    use_count: int
    revoked: bool
    created_by: str
    created_at: datetime | None
    usable: bool = Field(description="Not revoked, not expired, not used up")
    join_url: str = Field(examples=["https://shequtong.example/join/K7QX2M9PAB3D"], description="What its QR encodes")


class JoinCodePage(BaseModel):
    items: list[JoinCodeOut]
    next_cursor: str | None


class RegistrationIn(BaseModel):
    join_code: str = Field(min_length=1, max_length=32, examples=["K7QX2M9PAB3D"])
    real_name: str = Field(default="", max_length=50, examples=["张三"])
    phone: str = Field(default="", max_length=20, examples=["13812345678"])
    id_number: str = Field(default="", max_length=18, examples=["11010519491231002X"])
    password: str = Field(default="", max_length=128, examples=["correct horse battery"])
    household_id: str | None = Field(default=None, max_length=36)
    address: AddressModel | None = None
    party_member: bool = False

    @model_validator(mode="after")
    def _household_or_address(self) -> RegistrationIn:
        if not self.household_id and self.address is None:
            raise ValueError("give household_id or address")
        return self


def join_url(base_url: str, code: str) -> str:
    """What a join QR code encodes: <PUBLIC_BASE_URL>/join/<code>."""
    return f"{base_url.rstrip('/')}/join/{code}"


def join_code_out(code: identity_pb2.JoinCode, base_url: str) -> JoinCodeOut:
    return JoinCodeOut(
        code=code.code,
        neighbourhood_id=code.neighbourhood_id,
        expires_at=from_ts(code.expires_at),
        max_uses=code.max_uses,
        use_count=code.use_count,
        revoked=code.revoked,
        created_by=code.created_by,
        created_at=from_ts(code.created_at),
        usable=code.usable,
        join_url=join_url(base_url, code.code),
    )


@router.post(
    "/v1/neighbourhoods/{neighbourhood_id}/join-codes",
    status_code=201,
    response_model=JoinCodeOut,
    summary="Make a join code for the neighbourhood (committee)",
)
async def create_join_code(
    neighbourhood_id: str, caller: SignedIn, request: Request, body: JoinCodeIn | None = None
) -> JoinCodeOut:
    body = body or JoinCodeIn()
    reply = await caller.call(
        caller.clients.identity.CreateJoinCode,
        identity_pb2.CreateJoinCodeRequest(
            neighbourhood_id=neighbourhood_id, ttl_seconds=body.ttl_seconds, max_uses=body.max_uses
        ),
    )
    return join_code_out(reply.join_code, _base(request))


@router.get(
    "/v1/neighbourhoods/{neighbourhood_id}/join-codes",
    response_model=JoinCodePage,
    summary="The neighbourhood's join codes, newest first (committee)",
)
async def list_join_codes(
    neighbourhood_id: str,
    caller: SignedIn,
    request: Request,
    cursor: str | None = None,
    page_size: int = Query(default=20, ge=1, le=100),
) -> JoinCodePage:
    reply = await caller.call(
        caller.clients.identity.ListJoinCodes,
        identity_pb2.ListJoinCodesRequest(
            neighbourhood_id=neighbourhood_id, page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size)
        ),
    )
    return JoinCodePage(
        items=[join_code_out(c, _base(request)) for c in reply.join_codes], next_cursor=reply.page.next_cursor or None
    )


@router.post("/v1/join-codes/{code}/revoke", response_model=JoinCodeOut, summary="Revoke a join code (committee)")
async def revoke_join_code(code: str, caller: SignedIn, request: Request) -> JoinCodeOut:
    reply = await caller.call(caller.clients.identity.RevokeJoinCode, identity_pb2.RevokeJoinCodeRequest(code=code))
    return join_code_out(reply.join_code, _base(request))


def _base(request: Request) -> str:
    return str(request.app.state.settings.public_base_url)


async def _usable_code(code: str, caller: SignedIn) -> identity_pb2.JoinCode:
    reply = await caller.call(caller.clients.identity.GetJoinCode, identity_pb2.GetJoinCodeRequest(code=code))
    if not reply.join_code.usable:
        raise ApiProblem(409, "join_code_not_usable", "this join code is revoked, expired or used up")
    return reply.join_code  # type: ignore[no-any-return]


def qr_image(url: str, kind: str, scale: int, border: int) -> bytes:
    """A regular QR code (error correction M) of `url` as PNG or SVG."""
    out = io.BytesIO()
    segno.make(url, error="m", micro=False).save(out, kind=kind, scale=scale, border=border)
    return out.getvalue()


QR_SCALE = Query(default=8, ge=1, le=40, description="Pixels per module")
QR_BORDER = Query(default=4, ge=0, le=10, description="Quiet zone, in modules (4 by the standard)")
QR_HEADERS = {"Cache-Control": "private, max-age=300"}


@router.get(
    "/v1/join-codes/{code}",
    response_model=JoinCodeOut,
    summary="One join code (committee)",
)
async def get_join_code(code: str, caller: SignedIn, request: Request) -> JoinCodeOut:
    reply = await caller.call(caller.clients.identity.GetJoinCode, identity_pb2.GetJoinCodeRequest(code=code))
    return join_code_out(reply.join_code, _base(request))


@router.get(
    "/v1/join-codes/{code}/qr.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The QR code encoding the join URL"}},
    summary="The join code as a QR image, PNG (committee)",
    description="Encodes `<PUBLIC_BASE_URL>/join/<code>`. 409 `join_code_not_usable` for a revoked, expired or "
    "used-up code.",
)
async def join_code_png(
    code: str, caller: SignedIn, request: Request, scale: int = QR_SCALE, border: int = QR_BORDER
) -> Response:
    found = await _usable_code(code, caller)
    png = qr_image(join_url(_base(request), found.code), "png", scale, border)
    return Response(png, media_type="image/png", headers=QR_HEADERS)


@router.get(
    "/v1/join-codes/{code}/qr.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The QR code encoding the join URL"}},
    summary="The join code as a QR image, SVG (committee)",
    description="Encodes `<PUBLIC_BASE_URL>/join/<code>`; scales without loss for printing.",
)
async def join_code_svg(
    code: str, caller: SignedIn, request: Request, scale: int = QR_SCALE, border: int = QR_BORDER
) -> Response:
    found = await _usable_code(code, caller)
    svg = qr_image(join_url(_base(request), found.code), "svg", scale, border)
    return Response(svg, media_type="image/svg+xml", headers=QR_HEADERS)


@router.post(
    "/v1/registrations",
    status_code=201,
    response_model=MembershipOut,
    summary="Register with a join code (pending until the committee verifies)",
    description="Newcomers give real name, phone, ID number and password. A signed-in person joining a further "
    "neighbourhood sends only the code and the household.",
)
async def register(body: RegistrationIn, caller: OptionalCaller) -> MembershipOut:
    reply = await caller.call(
        caller.clients.identity.Register,
        identity_pb2.RegisterRequest(
            join_code=body.join_code,
            real_name=body.real_name,
            phone=body.phone,
            id_number=body.id_number,
            password=body.password,
            household_id=body.household_id or "",
            address=body.address.to_proto() if body.address else None,
            party_member=body.party_member,
        ),
    )
    return membership_out(reply.membership)
