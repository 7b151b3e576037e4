"""gRPC ⇄ domain translation for grid-gateway (first version: the walking skeleton's surface)."""

from __future__ import annotations

import grpc

from shequtong.gridgateway.v1 import gridgateway_pb2, gridgateway_pb2_grpc
from shequtong_kit import auth
from shequtong_kit.errors import NotFound
from shequtong_kit.service import ServiceApp


class GridGatewayServicer(gridgateway_pb2_grpc.GridGatewayServiceServicer):
    def __init__(self, app: ServiceApp) -> None:
        self.app = app

    async def GetTicket(
        self, request: gridgateway_pb2.GetTicketRequest, context: grpc.aio.ServicerContext
    ) -> gridgateway_pb2.GetTicketResponse:
        auth.current()
        raise NotFound("no such ticket", code="ticket_not_found")
