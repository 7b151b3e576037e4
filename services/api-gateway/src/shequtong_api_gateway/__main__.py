"""Wiring only: `python -m shequtong_api_gateway`."""

from __future__ import annotations

import uvicorn

from shequtong_api_gateway.app import create_app
from shequtong_api_gateway.settings import GatewaySettings
from shequtong_kit.logging import setup_logging
from shequtong_kit.settings import load_settings_or_exit
from shequtong_kit.telemetry import setup_telemetry


def main() -> None:
    settings = load_settings_or_exit(GatewaySettings)
    setup_logging("api-gateway", settings.log_level)
    setup_telemetry("api-gateway", settings.metrics_port)
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        access_log=False,
        # The client address is decided by TRUSTED_PROXIES alone (deps.client_address); uvicorn would
        # otherwise believe X-Forwarded-For from 127.0.0.1 by default.
        proxy_headers=False,
        timeout_graceful_shutdown=20,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
