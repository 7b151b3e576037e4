from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = Field(default="api-gateway", validation_alias="OTEL_SERVICE_NAME")
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    metrics_port: int = 0
    log_level: str = "INFO"
    identity_addr: str
    boards_addr: str
    issues_addr: str
    grid_gateway_addr: str
    volunteers_addr: str
    insights_addr: str
    # NATS, for following ended sessions (identity.session.revoked); empty: the gateway does not follow them
    # (the services still refuse those tokens).
    nats_url: str = ""
    # Public base URL used in links we hand out (join QR codes, media).
    public_base_url: str = "http://127.0.0.1:8080"
    # Proxies/load balancers (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed; empty: none,
    # the connection's peer is the client address.
    trusted_proxies: str = ""
    grpc_deadline_seconds: float = 5.0
    max_body_bytes: int = 1_000_000
    workers: int = 1

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for part in value.replace(",", " ").split():
            ipaddress.ip_network(part, strict=False)  # ValueError: fail at start, not per request
        return value
