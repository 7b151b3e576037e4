"""Configuration of the simulator, from environment variables alone.

Every value has a development default so `shequtong-grid-simulator` starts with no set-up;
a malformed value stops the process at start rather than half-working later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

ResponseMode = Literal["id", "token"]


class SettingsError(ValueError):
    """A configuration value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    http_port: int = 8090
    api_key: str = "dev-grid-key"
    webhook_url: str = ""
    # Signed by default: a receiver under test should never learn to accept unsigned pushes.
    webhook_secret: str = "dev-grid-webhook-secret"
    webhook_api_key: str = "dev-grid-webhook-key"
    webhook_max_attempts: int = 5
    webhook_backoff_seconds: float = 0.5
    webhook_timeout_seconds: float = 5.0
    auto_advance_seconds: float = 0.0
    services_file: str = ""
    state_file: str = ""
    response_mode: ResponseMode = "id"
    # The real platform answers in China Standard Time; emitting +08:00 keeps receivers honest
    # about parsing zones instead of assuming UTC.
    utc_offset: timedelta = timedelta(hours=8)
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        d = cls()

        def get(name: str, default: str) -> str:
            return env.get(name, default).strip()

        response_mode = get("SIMULATOR_RESPONSE_MODE", d.response_mode)
        if response_mode not in ("id", "token"):
            raise SettingsError(f"SIMULATOR_RESPONSE_MODE must be 'id' or 'token', not {response_mode!r}")
        settings = cls(
            host=get("HOST", d.host),
            http_port=_int("HTTP_PORT", get("HTTP_PORT", str(d.http_port)), low=0, high=65535),
            api_key=get("SIMULATOR_API_KEY", d.api_key),
            webhook_url=get("SIMULATOR_WEBHOOK_URL", d.webhook_url),
            webhook_secret=env.get("SIMULATOR_WEBHOOK_SECRET", d.webhook_secret),
            webhook_api_key=get("SIMULATOR_WEBHOOK_API_KEY", d.webhook_api_key),
            webhook_max_attempts=_int(
                "SIMULATOR_WEBHOOK_MAX_ATTEMPTS",
                get("SIMULATOR_WEBHOOK_MAX_ATTEMPTS", str(d.webhook_max_attempts)),
                low=1,
                high=100,
            ),
            webhook_backoff_seconds=_float(
                "SIMULATOR_WEBHOOK_BACKOFF_SECONDS",
                get("SIMULATOR_WEBHOOK_BACKOFF_SECONDS", str(d.webhook_backoff_seconds)),
            ),
            webhook_timeout_seconds=_float(
                "SIMULATOR_WEBHOOK_TIMEOUT_SECONDS",
                get("SIMULATOR_WEBHOOK_TIMEOUT_SECONDS", str(d.webhook_timeout_seconds)),
            ),
            auto_advance_seconds=_float(
                "SIMULATOR_AUTO_ADVANCE_SECONDS",
                get("SIMULATOR_AUTO_ADVANCE_SECONDS", str(d.auto_advance_seconds)),
            ),
            services_file=get("SIMULATOR_SERVICES_FILE", d.services_file),
            state_file=get("SIMULATOR_STATE_FILE", d.state_file),
            response_mode="token" if response_mode == "token" else "id",
            utc_offset=parse_utc_offset(get("SIMULATOR_UTC_OFFSET", "+08:00")),
            log_level=get("LOG_LEVEL", d.log_level).upper(),
        )
        settings.check()
        return settings

    def check(self) -> None:
        if not self.api_key:
            raise SettingsError("SIMULATOR_API_KEY must not be empty")
        if self.webhook_url:
            if not re.match(r"^https?://", self.webhook_url):
                raise SettingsError("SIMULATOR_WEBHOOK_URL must be an http(s) URL")
            if not self.webhook_secret:
                raise SettingsError("SIMULATOR_WEBHOOK_SECRET must not be empty when a webhook URL is set")


def _int(name: str, raw: str, *, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}")
    return value


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise SettingsError(f"{name} must not be negative")
    return value


def parse_utc_offset(raw: str) -> timedelta:
    """'+08:00', '-05:30', 'Z' or '+00:00' → timedelta."""
    if raw.upper() == "Z":
        return timedelta(0)
    m = re.fullmatch(r"([+-])(\d{2}):(\d{2})", raw)
    if not m:
        raise SettingsError(f"SIMULATOR_UTC_OFFSET must look like +08:00, not {raw!r}")
    sign = -1 if m.group(1) == "-" else 1
    offset = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
    if offset > timedelta(hours=14):
        raise SettingsError("SIMULATOR_UTC_OFFSET out of range")
    return sign * offset
