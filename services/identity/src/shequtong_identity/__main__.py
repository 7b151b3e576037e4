"""Wiring only: `python -m shequtong_identity [serve|migrate]`."""

from __future__ import annotations

from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_identity.service import IdentityService
from shequtong_identity.servicer import IdentityServicer
from shequtong_identity.settings import IdentitySettings
from shequtong_kit.auth import TokenVerifier
from shequtong_kit.service import ServiceApp, run_main
from shequtong_kit.settings import load_settings_or_exit


def build() -> ServiceApp:
    settings = load_settings_or_exit(IdentitySettings)
    app = ServiceApp("identity", settings, produces=["IDENTITY"])
    service = IdentityService(settings, app.sessions, app.outbox, app.clock)
    # Identity verifies tokens with its own keys; no call to itself.
    app.verifier = TokenVerifier(service.jwks_async)
    app.add_servicer(
        identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        IdentityServicer(service),
        identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    )
    return app


def main() -> None:
    run_main("shequtong_identity", build)


if __name__ == "__main__":
    main()
