from __future__ import annotations

from pydantic import Field

from shequtong_kit.settings import ServiceSettings


# The kit ships no py.typed marker, so mypy run on this package alone sees ServiceSettings as Any.
class IdentitySettings(ServiceSettings):  # type: ignore[misc]
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
    # SMS for one-time login codes. SMS_HTTP_URL (+ SMS_HTTP_TOKEN): the production gateway (JSON POST).
    # Else SMS_OUTBOX_FILE: a development sink — codes are appended to this local JSONL file, nothing is sent.
    # Neither: code login answers `sms_not_configured`.
    sms_http_url: str = ""
    sms_http_token: str = ""
    sms_outbox_file: str = ""
    # Per client address (x-client-ip from the gateway): code requests per hour, and failed logins
    # (password or code) per 15 minutes before the address is refused for 15 minutes.
    code_requests_per_address_per_hour: int = 30
    login_failures_per_address: int = 50
