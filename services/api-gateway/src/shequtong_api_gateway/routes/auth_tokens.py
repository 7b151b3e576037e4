"""Machine clients (operators' scripts, the grid platform) exchange credentials for a token."""

from __future__ import annotations

from fastapi import Request
from pydantic import BaseModel, Field

from shequtong.identity.v1 import identity_pb2
from shequtong_api_gateway.routing import gateway_router

router = gateway_router(prefix="/v1/auth", tags=["auth"])


class ClientCredentials(BaseModel):
    client_id: str = Field(min_length=1, max_length=100)
    client_secret: str = Field(min_length=1, max_length=200)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int


@router.post("/service-token", response_model=TokenOut, summary="Client-credentials grant for machine clients")
async def service_token(body: ClientCredentials, request: Request) -> TokenOut:
    clients = request.app.state.clients
    reply = await clients.identity.IssueServiceToken(
        identity_pb2.IssueServiceTokenRequest(client_id=body.client_id, client_secret=body.client_secret),
        timeout=clients.deadline,
    )
    return TokenOut(access_token=reply.access_token, expires_in=reply.expires_in)
