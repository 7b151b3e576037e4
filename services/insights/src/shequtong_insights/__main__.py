"""Wiring only: `python -m shequtong_insights [serve|migrate]`."""

from __future__ import annotations

from shequtong.insights.v1 import insights_pb2, insights_pb2_grpc
from shequtong_insights.consumers import consumer_specs
from shequtong_insights.servicer import InsightsServicer
from shequtong_insights.settings import InsightsSettings
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit


def build() -> ServiceApp:
    settings = load_settings_or_exit(InsightsSettings)
    app = ServiceApp("insights", settings, produces=[])
    app.add_servicer(
        insights_pb2_grpc.add_InsightsServiceServicer_to_server,
        InsightsServicer(app),
        insights_pb2.DESCRIPTOR.services_by_name["InsightsService"].full_name,
    )
    for spec in consumer_specs():
        app.add_consumer(spec)
    return app


def main() -> None:
    run_main("shequtong_insights", build)


if __name__ == "__main__":
    main()
