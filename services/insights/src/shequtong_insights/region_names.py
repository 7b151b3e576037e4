"""Names of sub-districts for comparison labels, asked of identity when needed and remembered.

Identity's events name neighbourhoods but not sub-districts; a comparison row is still useful with the
id alone, so a failed look-up only means the label falls back to the id (and is asked again later).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import grpc

from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_kit.grpc_client import ServiceTokens, channel

log = logging.getLogger(__name__)

DEADLINE = 2.0
MAX_CACHED = 20_000


class RegionNames:
    def __init__(self, identity_addr: str, tokens: ServiceTokens | None) -> None:
        self._addr = identity_addr
        self._tokens = tokens
        self._stub: identity_pb2_grpc.IdentityServiceStub | None = None
        self._known: dict[str, str] = {}

    async def _one(self, region_id: str) -> None:
        if self._tokens is None:
            return
        if self._stub is None:
            self._stub = identity_pb2_grpc.IdentityServiceStub(channel(self._addr))
        try:
            reply = await self._stub.GetRegion(
                identity_pb2.GetRegionRequest(id=region_id), metadata=await self._tokens.metadata(), timeout=DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self._known[region_id] = ""
            return
        except Exception as exc:  # identity unreachable, token refused: the label falls back to the id
            log.info("region name look-up failed", extra={"error": type(exc).__name__})
            return
        if len(self._known) < MAX_CACHED:
            self._known[region_id] = reply.region.name

    async def names(self, region_ids: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(region_ids))
        await asyncio.gather(*(self._one(rid) for rid in wanted if rid not in self._known))
        return {rid: self._known.get(rid, "") for rid in wanted}
