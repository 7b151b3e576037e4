"""gRPC ⇄ domain translation for insights (first version: the walking skeleton's surface)."""

from __future__ import annotations

import grpc

from shequtong.insights.v1 import insights_pb2, insights_pb2_grpc
from shequtong_kit import auth
from shequtong_kit.errors import NotFound
from shequtong_kit.service import ServiceApp


class InsightsServicer(insights_pb2_grpc.InsightsServiceServicer):
    def __init__(self, app: ServiceApp) -> None:
        self.app = app

    async def GetPortrait(
        self, request: insights_pb2.GetPortraitRequest, context: grpc.aio.ServicerContext
    ) -> insights_pb2.GetPortraitResponse:
        auth.current()
        raise NotFound("no such portrait", code="portrait_not_found")
