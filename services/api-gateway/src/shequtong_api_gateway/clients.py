"""gRPC channels and stubs to every service, and calls that always carry a deadline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shequtong.boards.v1 import boards_pb2_grpc
from shequtong.gridgateway.v1 import gridgateway_pb2_grpc
from shequtong.identity.v1 import identity_pb2_grpc
from shequtong.insights.v1 import insights_pb2_grpc
from shequtong.issues.v1 import issues_pb2_grpc
from shequtong.volunteers.v1 import volunteers_pb2_grpc
from shequtong_api_gateway.settings import GatewaySettings
from shequtong_kit.grpc_client import channel


@dataclass
class Clients:
    channels: dict[str, grpc.aio.Channel]
    identity: identity_pb2_grpc.IdentityServiceStub
    boards: boards_pb2_grpc.BoardsServiceStub
    issues: issues_pb2_grpc.IssuesServiceStub
    grid_gateway: gridgateway_pb2_grpc.GridGatewayServiceStub
    volunteers: volunteers_pb2_grpc.VolunteersServiceStub
    insights: insights_pb2_grpc.InsightsServiceStub
    deadline: float = 5.0
    health: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def connect(cls, settings: GatewaySettings) -> Clients:
        addrs = {
            "identity": settings.identity_addr,
            "boards": settings.boards_addr,
            "issues": settings.issues_addr,
            "grid-gateway": settings.grid_gateway_addr,
            "volunteers": settings.volunteers_addr,
            "insights": settings.insights_addr,
        }
        channels = {name: channel(addr) for name, addr in addrs.items()}
        clients = cls(
            channels=channels,
            identity=identity_pb2_grpc.IdentityServiceStub(channels["identity"]),
            boards=boards_pb2_grpc.BoardsServiceStub(channels["boards"]),
            issues=issues_pb2_grpc.IssuesServiceStub(channels["issues"]),
            grid_gateway=gridgateway_pb2_grpc.GridGatewayServiceStub(channels["grid-gateway"]),
            volunteers=volunteers_pb2_grpc.VolunteersServiceStub(channels["volunteers"]),
            insights=insights_pb2_grpc.InsightsServiceStub(channels["insights"]),
            deadline=settings.grpc_deadline_seconds,
        )
        clients.health = {name: health_pb2_grpc.HealthStub(ch) for name, ch in channels.items()}
        return clients

    async def readiness(self) -> dict[str, str]:
        """Each downstream service's health as it answers it (SERVING, NOT_SERVING or the error)."""
        results: dict[str, str] = {}
        for name, stub in self.health.items():
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                results[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as exc:
                results[name] = exc.code().name
        return results

    async def close(self) -> None:
        for ch in self.channels.values():
            await ch.close()
