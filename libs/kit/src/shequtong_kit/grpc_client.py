"""gRPC clients: channels with sane options, calls that always carry a deadline, service tokens."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import jwt

DEFAULT_DEADLINE = 5.0
# Seconds a service token's `iat` may lie ahead of this host's clock before it is not cached.
ISSUED_AHEAD_TOLERANCE = 30.0


def channel(addr: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        addr,
        options=[
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.enable_retries", 1),
        ],
    )


class ServiceTokens:
    """A service's own access token from identity (client credentials), refreshed before it expires."""

    def __init__(self, identity_addr: str, client_id: str, client_secret: str) -> None:
        self._addr = identity_addr
        self._client_id = client_id
        self._secret = client_secret
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._channel: grpc.aio.Channel | None = None

    async def token(self) -> str:
        if self._token and time.time() < self._expires - 60:
            return self._token
        async with self._lock:
            if self._token and time.time() < self._expires - 60:
                return self._token
            from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc

            if self._channel is None:
                self._channel = channel(self._addr)
            stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
            reply = await stub.IssueServiceToken(
                identity_pb2.IssueServiceTokenRequest(client_id=self._client_id, client_secret=self._secret),
                timeout=DEFAULT_DEADLINE,
            )
            claims = jwt.decode(reply.access_token, options={"verify_signature": False})
            self._token, self._expires = reply.access_token, float(claims["exp"])
            if float(claims.get("iat", 0)) > time.time() + ISSUED_AHEAD_TOLERANCE:
                # Minted by a clock ahead of ours (skew, or a test moving identity's time): verifiers would
                # call it "not yet valid" until then, so use it for this call and never keep it.
                self._expires = 0.0
            return self._token

    async def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {await self.token()}"),)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


async def identity_jwks_loader(identity_addr: str) -> Any:
    """A JWKS loader for TokenVerifier that asks identity over gRPC."""
    from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc

    ch = channel(identity_addr)
    stub = identity_pb2_grpc.IdentityServiceStub(ch)

    async def load() -> str:
        reply = await stub.GetJwks(identity_pb2.GetJwksRequest(), timeout=DEFAULT_DEADLINE)
        return str(reply.jwks_json)

    return load
