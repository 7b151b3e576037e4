"""Wiring only: `python -m shequtong_grid_gateway [serve|migrate]`."""

from __future__ import annotations

from shequtong.gridgateway.v1 import gridgateway_pb2, gridgateway_pb2_grpc
from shequtong_grid_gateway.consumers import consumer_specs
from shequtong_grid_gateway.servicer import GridGatewayServicer
from shequtong_grid_gateway.settings import GridGatewaySettings
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit


def build() -> ServiceApp:
    settings = load_settings_or_exit(GridGatewaySettings)
    app = ServiceApp("grid-gateway", settings, produces=["GRID"])
    app.add_servicer(
        gridgateway_pb2_grpc.add_GridGatewayServiceServicer_to_server,
        GridGatewayServicer(app),
        gridgateway_pb2.DESCRIPTOR.services_by_name["GridGatewayService"].full_name,
    )
    for spec in consumer_specs():
        app.add_consumer(spec)
    return app


def main() -> None:
    run_main("shequtong_grid_gateway", build)


if __name__ == "__main__":
    main()
