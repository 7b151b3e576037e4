from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    service_name: str = Field(default="identity", validation_alias="OTEL_SERVICE_NAME")
    grpc_port: int = 50051
    # JSON list of {"kid": str, "pem": Ed25519 private key PEM}, newest (the signing one) first.
    identity_signing_keys: str
    # JSON map client_id -> secret, or client_id -> {"secret": str, "roles": ["role@scope", ...]}.
    service_accounts: str = "{}"
    pii_hmac_key: str
    pii_encryption_key: str
    access_token_ttl_seconds: int = 900
    service_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600
    # argon2id cost (OWASP's minimum profile by default: 19 MiB, t=2, p=1).
    password_time_cost: int = 2
    password_memory_kib: int = 19 * 1024
    password_parallelism: int = 1
