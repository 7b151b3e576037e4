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
    # A kept page of 20 short posts measured 61 KiB (its messages add a few); 20 posts of the 5,000-character
    # maximum would take ~0.55 MiB (text as read and as a message). 512 pages: ~35 MB usually, under 300 MB
    # at that worst, inside the chart's 512Mi boards limit (deploy/helm/OPERATORS.md).
    feed_cache_pages: int = Field(default=512, ge=0)
