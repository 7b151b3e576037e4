"""gRPC ⇄ domain translation for issues (first version: the walking skeleton's surface)."""

from __future__ import annotations

import grpc

from shequtong.issues.v1 import issues_pb2, issues_pb2_grpc
from shequtong_kit import auth
from shequtong_kit.errors import NotFound
from shequtong_kit.service import ServiceApp


class IssuesServicer(issues_pb2_grpc.IssuesServiceServicer):
    def __init__(self, app: ServiceApp) -> None:
        self.app = app

    async def GetIssue(
        self, request: issues_pb2.GetIssueRequest, context: grpc.aio.ServicerContext
    ) -> issues_pb2.GetIssueResponse:
        auth.current()
        raise NotFound("no such issue", code="issue_not_found")
