"""The service's own token: cached until shortly before it expires — unless identity's clock was ahead."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import jwt
import pytest

from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_kit.grpc_client import ServiceTokens
from shequtong_kit.testing import free_port


class Identity(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self) -> None:
        self.issued = 0
        self.ahead = 0.0

    async def IssueServiceToken(
        self, request: identity_pb2.IssueServiceTokenRequest, context: grpc.aio.ServicerContext
    ) -> identity_pb2.IssueServiceTokenResponse:
        self.issued += 1
        now = time.time() + self.ahead
        token = jwt.encode({"sub": "svc:x", "iat": int(now), "exp": int(now + 900)}, "k" * 32, algorithm="HS256")
        return identity_pb2.IssueServiceTokenResponse(access_token=token, expires_in=900)


@pytest.fixture
async def identity() -> AsyncIterator[tuple[Identity, str]]:
    servicer = Identity()
    server = grpc.aio.server()
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(None)


async def test_a_token_is_reused_until_near_expiry(identity: tuple[Identity, str]) -> None:
    servicer, addr = identity
    tokens = ServiceTokens(addr, "x", "secret")
    first = await tokens.token()
    assert await tokens.token() == first
    assert servicer.issued == 1
    await tokens.close()


async def test_a_token_from_a_clock_ahead_is_not_kept(identity: tuple[Identity, str]) -> None:
    servicer, addr = identity
    servicer.ahead = 15 * 3600.0
    tokens = ServiceTokens(addr, "x", "secret")
    await tokens.token()
    servicer.ahead = 0.0
    fresh = await tokens.token()
    assert servicer.issued == 2, "asked again once identity's clock is back"
    assert jwt.decode(fresh, options={"verify_signature": False})["iat"] <= time.time() + 1
    await tokens.close()
