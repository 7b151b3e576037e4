from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class IssuesSettings(ServiceSettings):
    service_name: str = Field(default="issues", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50053
