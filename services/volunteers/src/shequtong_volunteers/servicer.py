"""gRPC ⇄ domain translation for volunteers (first version: the walking skeleton's surface)."""

from __future__ import annotations

import grpc

from shequtong.volunteers.v1 import volunteers_pb2, volunteers_pb2_grpc
from shequtong_kit import auth
from shequtong_kit.errors import NotFound
from shequtong_kit.service import ServiceApp


class VolunteersServicer(volunteers_pb2_grpc.VolunteersServiceServicer):
    def __init__(self, app: ServiceApp) -> None:
        self.app = app

    async def ListTeams(
        self, request: volunteers_pb2.ListTeamsRequest, context: grpc.aio.ServicerContext
    ) -> volunteers_pb2.ListTeamsResponse:
        auth.current()
        raise NotFound("no such teams", code="teams_not_found")
