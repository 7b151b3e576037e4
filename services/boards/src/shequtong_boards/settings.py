from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class BoardsSettings(ServiceSettings):
    service_name: str = Field(default="boards", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50052
    # Posts + comments per person: a bucket of `post_burst` refilled at `post_rate_per_minute` (0 = off).
    post_rate_per_minute: float = 30.0
    post_burst: int = 30
