"""Wiring only: `python -m shequtong_identity [serve|migrate|keys new [--kid KID]]`."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shequtong_kit.service import ServiceApp

KEYS_USAGE = """usage: python -m shequtong_identity keys new [--kid KID]

Prints a new Ed25519 signing key as one IDENTITY_SIGNING_KEYS entry ({"kid", "pem"}) on stdout.
Rotation: put it FIRST in the IDENTITY_SIGNING_KEYS list (the first key signs; every listed key is
published in the JWKS, so tokens signed by the older keys keep verifying), restart identity, and remove
the old entry after the longest token lifetime has passed (access and service tokens: 15 minutes)."""


def build() -> ServiceApp:
    # Imported here so that `keys new` starts quickly.
    from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
    from shequtong_identity.consumers import consumer_specs
    from shequtong_identity.service import IdentityService
    from shequtong_identity.servicer import IdentityServicer
    from shequtong_identity.settings import IdentitySettings
    from shequtong_identity.sms import HttpSender, sender_from_settings
    from shequtong_kit.auth import TokenVerifier
    from shequtong_kit.service import ServiceApp
    from shequtong_kit.settings import load_settings_or_exit

    settings = load_settings_or_exit(IdentitySettings)
    app = ServiceApp("identity", settings, produces=["IDENTITY"])
    sms = sender_from_settings(settings)
    if isinstance(sms, HttpSender):
        app.on_stop(sms.close)
    service = IdentityService(settings, app.sessions, app.outbox, app.clock, sms)
    # Identity verifies tokens with its own keys; no call to itself.
    app.verifier = TokenVerifier(service.jwks_async)
    app.add_servicer(
        identity_pb2_grpc.add_IdentityServiceServicer_to_server,
        IdentityServicer(service),
        identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name,
    )
    for spec in consumer_specs(service):
        app.add_consumer(spec)

    async def purge_stale() -> None:
        import asyncio
        import logging

        while True:
            try:
                await service.purge_stale()
            except Exception as exc:  # a failed purge is retried next time
                logging.getLogger("shequtong_identity").warning("purge failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(600)

    app.add_task(purge_stale)
    return app


def keys_command(args: Sequence[str]) -> int:
    from shequtong_identity.domain.tokens import new_key_entry

    if not args or args[0] != "new" or len(args) not in (1, 3) or (len(args) == 3 and args[1] != "--kid"):
        print(KEYS_USAGE, file=sys.stderr)
        return 2
    kid = args[2] if len(args) == 3 else f"k-{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
    try:
        entry = new_key_entry(kid)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(entry))
    print(f"new key {kid}: prepend it to IDENTITY_SIGNING_KEYS and restart identity", file=sys.stderr)
    return 0


def main() -> None:
    if sys.argv[1:2] == ["keys"]:
        raise SystemExit(keys_command(sys.argv[2:]))
    from shequtong_kit.service import run_main

    run_main("shequtong_identity", build)


if __name__ == "__main__":
    main()
