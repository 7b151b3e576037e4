from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class VolunteersSettings(ServiceSettings):
    service_name: str = Field(default="volunteers", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50055
