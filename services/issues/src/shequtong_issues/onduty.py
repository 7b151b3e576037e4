"""Who is on duty: identity's roster, asked with the service's own token and a deadline.

A failure is never fatal to a report: the issue is created unassigned and the retrying task assigns it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import grpc

from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_kit.grpc_client import ServiceTokens, channel
from shequtong_kit.proto import ts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Duty:
    person_id: str
    fallback_to_secretary: bool


class OnDuty(Protocol):
    async def lookup(self, neighbourhood_id: str, at: datetime) -> Duty | None: ...


class IdentityOnDuty:
    def __init__(self, identity_addr: str, tokens: ServiceTokens | None, deadline: float) -> None:
        self._addr = identity_addr
        self._tokens = tokens
        self._deadline = deadline
        self._stub: identity_pb2_grpc.IdentityServiceStub | None = None

    async def lookup(self, neighbourhood_id: str, at: datetime) -> Duty | None:
        """The on-duty person, or None when identity cannot say now (unavailable, slow, nobody rostered)."""
        if not self._addr or self._tokens is None:
            return None
        if self._stub is None:
            self._stub = identity_pb2_grpc.IdentityServiceStub(channel(self._addr))
        try:
            metadata = await self._tokens.metadata()
            reply = await self._stub.GetOnDuty(
                identity_pb2.GetOnDutyRequest(neighbourhood_id=neighbourhood_id, at=ts(at)),
                metadata=metadata,
                timeout=self._deadline,
            )
        except grpc.aio.AioRpcError as exc:
            log.warning(
                "on-duty lookup failed; will assign later",
                extra={"neighbourhood_id": neighbourhood_id, "status": exc.code().name},
            )
            return None
        except Exception as exc:
            log.warning(
                "on-duty lookup failed; will assign later",
                extra={"neighbourhood_id": neighbourhood_id, "error": type(exc).__name__},
            )
            return None
        if not reply.person_id:
            return None
        return Duty(reply.person_id, reply.fallback_to_secretary)


class NoOnDuty:
    """For tests and for running without identity: every issue waits for the retrying task."""

    async def lookup(self, neighbourhood_id: str, at: datetime) -> Duty | None:
        return None
