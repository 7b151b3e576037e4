"""Wiring only: `python -m shequtong_insights [serve|migrate]`."""

from __future__ import annotations

from shequtong.insights.v1 import insights_pb2, insights_pb2_grpc
from shequtong_insights.consumers import Projector, consumer_specs
from shequtong_insights.region_names import RegionNames
from shequtong_insights.replay import Replayer
from shequtong_insights.service import InsightsService
from shequtong_insights.servicer import InsightsServicer
from shequtong_insights.settings import InsightsSettings
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit


def build() -> ServiceApp:
    settings = load_settings_or_exit(InsightsSettings)
    app = ServiceApp("insights", settings, produces=[])
    specs = consumer_specs(Projector(settings.insights_day_utc_offset_minutes))
    service = InsightsService(
        app.sessions,
        app.clock,
        Replayer(specs, lambda: app.js),
        settings.insights_day_utc_offset_minutes,
        RegionNames(settings.identity_addr, app.service_tokens),
    )
    app.add_servicer(
        insights_pb2_grpc.add_InsightsServiceServicer_to_server,
        InsightsServicer(service),
        insights_pb2.DESCRIPTOR.services_by_name["InsightsService"].full_name,
    )
    for spec in specs:
        app.add_consumer(spec)

    async def maintenance() -> None:
        await service.maintenance_loop(settings.insights_rebuild_check_seconds)

    app.add_task(maintenance)
    if settings.insights_detection_interval_seconds > 0:

        async def detection() -> None:
            await service.detection_loop(settings.insights_detection_interval_seconds)

        app.add_task(detection)
    return app


def main() -> None:
    run_main("shequtong_insights", build)


if __name__ == "__main__":
    main()
