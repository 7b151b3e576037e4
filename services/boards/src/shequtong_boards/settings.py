from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class BoardsSettings(ServiceSettings):
    service_name: str = Field(default="boards", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50052
    # Posts + comments per person: a bucket of `post_burst` refilled at `post_rate_per_minute` (0 = off).
    post_rate_per_minute: float = 30.0
    post_burst: int = 30
    # First feed pages kept in memory per process (home feeds per neighbourhood and audience, board feeds):
    # ~20 posts each (typically tens of KB); 2,048 hold every neighbourhood of a district twice over.
    feed_cache_pages: int = Field(default=2_048, ge=0)
