"""People sign in with phone + password or phone + one-time SMS code; access tokens are short-lived,
refresh tokens rotate. The client's address goes to identity (x-client-ip) for throttling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from pydantic import BaseModel, Field

from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.deps import Caller, client_address, clients
from shequtong_api_gateway.routing import gateway_router

router = gateway_router(prefix="/v1/auth", tags=["auth"])


def _anonymous(request: Request) -> Caller:
    """Signing in needs no token: one sent along (perhaps expired) is ignored, not refused."""
    peer = request.client.host if request.client else ""
    trusted = getattr(request.app.state, "trusted_proxies", ())
    return Caller(
        None, None, None, clients(request), client_address(peer, request.headers.get("x-forwarded-for"), trusted)
    )


Anonymous = Annotated[Caller, Depends(_anonymous)]


class LoginIn(BaseModel):
    phone: str = Field(min_length=11, max_length=20, examples=["13812345678"])
    password: str = Field(min_length=1, max_length=128, examples=["correct horse battery"])


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


class CodeRequestIn(BaseModel):
    phone: str = Field(min_length=11, max_length=20, examples=["13812345678"])


class CodeRequestOut(BaseModel):
    expires_in: int = Field(examples=[300], description="Seconds the code stays valid")
    resend_after: int = Field(examples=[60], description="Seconds before another code may be requested")


class CodeLoginIn(BaseModel):
    phone: str = Field(min_length=11, max_length=20, examples=["13812345678"])
    code: str = Field(min_length=6, max_length=6, pattern=r"^\d{6}$", examples=["042817"])


class SessionOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(examples=[900])
    refresh_token: str
    refresh_expires_in: int = Field(examples=[2592000])
    person_id: str


def session_out(pair: identity_pb2.TokenPair) -> SessionOut:
    return SessionOut(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
        person_id=pair.person_id,
    )


@router.post(
    "/login",
    response_model=SessionOut,
    summary="Sign in with phone and password",
    description="After 5 wrong passwords in a row for a phone, further attempts get 429 `too_many_attempts` "
    "for 15 minutes. Too many failed sign-ins from one network get 429 `address_throttled`.",
)
async def login(body: LoginIn, caller: Anonymous) -> SessionOut:
    reply = await caller.call(
        caller.clients.identity.Login, identity_pb2.LoginRequest(phone=body.phone, password=body.password)
    )
    return session_out(reply.tokens)


@router.post(
    "/login-code",
    status_code=202,
    response_model=CodeRequestOut,
    summary="Send a one-time sign-in code by SMS",
    description="A 6-digit code, valid 5 minutes, single use, 5 tries. The answer is the same whether or not "
    "the phone is registered (only registered phones get a message). At most one code a minute and five an "
    "hour per phone (429 `code_requested_too_soon`, `too_many_code_requests`), and a limit per network "
    "(429 `address_throttled`).",
)
async def request_login_code(body: CodeRequestIn, caller: Anonymous) -> CodeRequestOut:
    reply = await caller.call(
        caller.clients.identity.RequestLoginCode, identity_pb2.RequestLoginCodeRequest(phone=body.phone)
    )
    return CodeRequestOut(expires_in=reply.expires_in, resend_after=reply.resend_after)


@router.post(
    "/login-with-code",
    response_model=SessionOut,
    summary="Sign in with phone and the SMS code",
    description="Errors: 401 `code_invalid` (wrong, used or replaced by a newer code), `code_expired`; "
    "429 `code_attempts_exhausted` after 5 wrong tries (request a new code).",
)
async def login_with_code(body: CodeLoginIn, caller: Anonymous) -> SessionOut:
    reply = await caller.call(
        caller.clients.identity.LoginWithCode, identity_pb2.LoginWithCodeRequest(phone=body.phone, code=body.code)
    )
    return session_out(reply.tokens)


@router.post(
    "/refresh",
    response_model=SessionOut,
    summary="Exchange a refresh token for new tokens",
    description="Each refresh token works once; presenting a used one ends the whole session (`refresh_token_reused`).",
)
async def refresh(body: RefreshIn, caller: Anonymous) -> SessionOut:
    reply = await caller.call(
        caller.clients.identity.Refresh, identity_pb2.RefreshRequest(refresh_token=body.refresh_token)
    )
    return session_out(reply.tokens)


@router.post(
    "/logout",
    status_code=204,
    summary="End the session of this refresh token",
    description="Its access tokens are refused everywhere within seconds (`session_revoked`).",
)
async def logout(body: RefreshIn, caller: Anonymous) -> Response:
    await caller.call(caller.clients.identity.Logout, identity_pb2.LogoutRequest(refresh_token=body.refresh_token))
    return Response(status_code=204)
