"""Wiring only: `python -m shequtong_boards [serve|migrate]`."""

from __future__ import annotations

from shequtong.boards.v1 import boards_pb2, boards_pb2_grpc
from shequtong_boards.cache import FeedPageCache
from shequtong_boards.consumers import consumer_specs
from shequtong_boards.domain.ratelimit import TokenBuckets
from shequtong_boards.service import BoardsService
from shequtong_boards.servicer import BoardsServicer
from shequtong_boards.settings import BoardsSettings
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit


def build() -> ServiceApp:
    settings = load_settings_or_exit(BoardsSettings)
    app = ServiceApp("boards", settings, produces=["BOARDS"])
    service = BoardsService(app.sessions, app.outbox, app.clock, FeedPageCache(settings.feed_cache_pages))
    app.add_servicer(
        boards_pb2_grpc.add_BoardsServiceServicer_to_server,
        BoardsServicer(service, TokenBuckets(settings.post_rate_per_minute, settings.post_burst)),
        boards_pb2.DESCRIPTOR.services_by_name["BoardsService"].full_name,
    )
    for spec in consumer_specs(service):
        app.add_consumer(spec)
    return app


def main() -> None:
    run_main("shequtong_boards", build)


if __name__ == "__main__":
    main()
