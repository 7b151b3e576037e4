"""Wiring only: `python -m shequtong_volunteers [serve|migrate]`."""

from __future__ import annotations

from shequtong.volunteers.v1 import volunteers_pb2, volunteers_pb2_grpc
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit
from shequtong_volunteers.consumers import consumer_specs
from shequtong_volunteers.residents import IdentityResidents
from shequtong_volunteers.service import VolunteersService
from shequtong_volunteers.servicer import VolunteersServicer
from shequtong_volunteers.settings import VolunteersSettings


def build() -> ServiceApp:
    settings = load_settings_or_exit(VolunteersSettings)
    app = ServiceApp("volunteers", settings, produces=["VOLUNTEERS"])
    residents = IdentityResidents(settings.identity_addr, app.service_tokens)
    service = VolunteersService(app.sessions, app.outbox, app.clock, residents)
    app.add_servicer(
        volunteers_pb2_grpc.add_VolunteersServiceServicer_to_server,
        VolunteersServicer(service),
        volunteers_pb2.DESCRIPTOR.services_by_name["VolunteersService"].full_name,
    )
    for spec in consumer_specs(service):
        app.add_consumer(spec)
    return app


def main() -> None:
    run_main("shequtong_volunteers", build)


if __name__ == "__main__":
    main()
