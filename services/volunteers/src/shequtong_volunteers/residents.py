"""Who is a verified resident where: identity's answer (LookupResidents), asked with the service's own token
and a deadline — the volunteers service keeps no membership projection of its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_kit.errors import Unavailable
from shequtong_kit.grpc_client import ServiceTokens, channel


class Residents(Protocol):
    async def lookup(self, person_ids: Sequence[str]) -> dict[tuple[str, str], str]:
        """(person id, neighbourhood id) -> display name, for every verified membership of these people."""
        ...


class IdentityResidents:
    def __init__(self, identity_addr: str, tokens: ServiceTokens | None, deadline: float = 10.0) -> None:
        self._addr = identity_addr
        self._tokens = tokens
        self._deadline = deadline
        self._stub: identity_pb2_grpc.IdentityServiceStub | None = None

    async def lookup(self, person_ids: Sequence[str]) -> dict[tuple[str, str], str]:
        if not self._addr or self._tokens is None:
            raise Unavailable("identity is not configured here", code="identity_unavailable")
        if self._stub is None:
            self._stub = identity_pb2_grpc.IdentityServiceStub(channel(self._addr))
        try:
            reply = await self._stub.LookupResidents(
                identity_pb2.LookupResidentsRequest(person_ids=list(person_ids)),
                metadata=await self._tokens.metadata(),
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                "identity could not say who the residents are; try again", code="identity_unavailable"
            ) from exc
        return {(r.person_id, r.neighbourhood_id): r.display_name for r in reply.residencies}
