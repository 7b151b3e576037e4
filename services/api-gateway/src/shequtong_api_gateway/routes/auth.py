"""People sign in with phone + password; access tokens are short-lived, refresh tokens rotate."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from shequtong.identity.v1 import identity_pb2

router = APIRouter(prefix="/v1/auth", tags=["auth"])


class LoginIn(BaseModel):
    phone: str = Field(min_length=11, max_length=20, examples=["13812345678"])
    password: str = Field(min_length=1, max_length=128, examples=["correct horse battery"])


class RefreshIn(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=200)


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
    "for 15 minutes.",
)
async def login(body: LoginIn, request: Request) -> SessionOut:
    clients = request.app.state.clients
    reply = await clients.identity.Login(
        identity_pb2.LoginRequest(phone=body.phone, password=body.password), timeout=clients.deadline
    )
    return session_out(reply.tokens)


@router.post(
    "/refresh",
    response_model=SessionOut,
    summary="Exchange a refresh token for new tokens",
    description="Each refresh token works once; presenting a used one ends the whole session (`refresh_token_reused`).",
)
async def refresh(body: RefreshIn, request: Request) -> SessionOut:
    clients = request.app.state.clients
    reply = await clients.identity.Refresh(
        identity_pb2.RefreshRequest(refresh_token=body.refresh_token), timeout=clients.deadline
    )
    return session_out(reply.tokens)


@router.post("/logout", status_code=204, summary="End the session of this refresh token")
async def logout(body: RefreshIn, request: Request) -> Response:
    clients = request.app.state.clients
    await clients.identity.Logout(
        identity_pb2.LogoutRequest(refresh_token=body.refresh_token), timeout=clients.deadline
    )
    return Response(status_code=204)
