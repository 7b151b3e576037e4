"""Wiring only: `python -m shequtong_grid_gateway [serve|migrate]`."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from shequtong.gridgateway.v1 import gridgateway_pb2, gridgateway_pb2_grpc
from shequtong_grid_gateway.consumers import consumer_specs
from shequtong_grid_gateway.domain.catalogue import CatalogueError, CatalogueSpec, parse_catalogue_file
from shequtong_grid_gateway.open311 import Open311Platform
from shequtong_grid_gateway.service import GridService
from shequtong_grid_gateway.servicer import GridGatewayServicer
from shequtong_grid_gateway.settings import GridGatewaySettings
from shequtong_grid_gateway.webhook import HttpServer, create_http_app, readiness
from shequtong_grid_gateway.workers import DeliveryWorker, Poller
from shequtong_kit.db import is_sqlite
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit


def load_catalogue(path: str) -> dict[str, CatalogueSpec]:
    if not path:
        return {}
    try:
        return parse_catalogue_file(Path(path).read_text(encoding="utf-8"))
    except (OSError, CatalogueError) as exc:
        print(f"GRID_CATALOGUE_FILE: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def build() -> ServiceApp:
    settings = load_settings_or_exit(GridGatewaySettings)
    app = ServiceApp("grid-gateway", settings, produces=["GRID"])
    platform = Open311Platform(
        settings.grid_platform_name,
        settings.grid_base_url,
        settings.grid_api_key,
        timeout=settings.grid_http_timeout_seconds,
        jurisdiction_id=settings.grid_jurisdiction_id,
    )
    service = GridService(
        settings,
        app.sessions,
        app.outbox,
        app.clock,
        {platform.name: platform},
        skip_locked=not is_sqlite(app.engine),
        instance=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        catalogue_specs=load_catalogue(settings.grid_catalogue_file),
    )
    app.add_servicer(
        gridgateway_pb2_grpc.add_GridGatewayServiceServicer_to_server,
        GridGatewayServicer(service),
        gridgateway_pb2.DESCRIPTOR.services_by_name["GridGatewayService"].full_name,
    )
    for spec in consumer_specs(service):
        app.add_consumer(spec)
    http = HttpServer(
        create_http_app(service, settings, readiness(app.engine, lambda: app.nc)),
        settings.http_host,
        settings.http_port,
    )
    app.on_start(service.started)
    app.add_task(http.run)
    app.add_task(DeliveryWorker(service, platform, settings).run)
    app.add_task(Poller(service, platform, settings).run)
    app.on_stop(platform.aclose)
    return app


def main() -> None:
    run_main("shequtong_grid_gateway", build)


if __name__ == "__main__":
    main()
