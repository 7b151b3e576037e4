from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class GridGatewaySettings(ServiceSettings):
    service_name: str = Field(default="grid-gateway", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50054

    # The webhook server (/v1/grid/servicerequestupdates, /healthz, /readyz).
    http_port: int = 8081
    http_host: str = "0.0.0.0"

    # The district grid platform (Open311 GeoReport v2), e.g. https://grid.example.gov.cn/open311/v2
    grid_base_url: str = Field(min_length=1)
    grid_api_key: str = Field(min_length=1)
    grid_jurisdiction_id: str = ""
    grid_platform_name: str = "district"
    grid_http_timeout_seconds: float = Field(default=10.0, gt=0, le=120)

    # Pushed updates: HMAC secret, the api_key the platform sends, the replay window, body limit.
    grid_webhook_secret: str = Field(min_length=1)
    grid_webhook_api_key: str = Field(min_length=1)
    grid_webhook_window_seconds: int = Field(default=300, ge=10, le=3600)
    grid_webhook_max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=4 * 1024 * 1024)

    # Delivery: oldest first, bounded rate, exponential back-off with jitter, a circuit breaker.
    grid_send_rate_per_second: float = Field(default=20.0, ge=0)
    grid_send_burst: int = Field(default=10, ge=1)
    grid_delivery_batch: int = Field(default=50, ge=1, le=1000)
    # Sends in flight at once (started oldest first); 1 = strictly one after the other.
    grid_send_concurrency: int = Field(default=4, ge=1, le=64)
    grid_delivery_idle_seconds: float = Field(default=1.0, gt=0)
    grid_claim_lease_seconds: float = Field(default=60.0, ge=5)
    grid_retry_base_seconds: float = Field(default=1.0, gt=0)
    grid_retry_max_delay_seconds: float = Field(default=300.0, gt=0)
    # A ticket still undelivered after this long fails (the issue is told); 0 = never.
    grid_give_up_after_seconds: float = Field(default=72 * 3600, ge=0)
    grid_circuit_failure_threshold: int = Field(default=5, ge=1)
    grid_circuit_cooldown_seconds: float = Field(default=30.0, gt=0)

    # Polling as the backstop of pushed updates: servicerequestupdates.json, then requests.json.
    grid_poll_interval_seconds: float = Field(default=30.0, gt=0)
    grid_poll_overlap_seconds: float = Field(default=120.0, ge=0)
    grid_poll_lookback_seconds: float = Field(default=24 * 3600, gt=0)
    grid_poll_requests_batch: int = Field(default=50, ge=1, le=200)
    grid_poll_requests_every_seconds: float = Field(default=300.0, gt=0)

    # The service catalogue: a JSON file (see domain/catalogue.py), else the platform's services.json.
    grid_catalogue_file: str = ""
    grid_catalogue_refresh_seconds: float = Field(default=3600.0, gt=0)
