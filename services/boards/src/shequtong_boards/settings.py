from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class BoardsSettings(ServiceSettings):
    service_name: str = Field(default="boards", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50052
