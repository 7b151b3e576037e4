"""Ended sessions reach every verifier: a follower of `identity.session.revoked`.

Identity publishes `identity.session.revoked` when a refresh-token family ends (logout, a replayed
refresh token). Access tokens of that family stay cryptographically valid until they expire, so every
process that verifies tokens keeps the revoked session ids in `TokenVerifier.revoked_sessions`.

At start the follower reads the IDENTITY stream from (now − lookback) — the lookback must cover an
access token's lifetime — with an ephemeral ordered push consumer (no durable state: every replica
and every restart reads for itself), then keeps following it. Ids older than the lookback are dropped
again, since any token carrying them has expired by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.message import DecodeError
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_kit.auth import TokenVerifier
from shequtong_kit.nats_io import ensure_stream

log = logging.getLogger(__name__)

SESSION_REVOKED = "identity.session.revoked"
STREAM = "IDENTITY"
DEFAULT_LOOKBACK = timedelta(minutes=20)


class SessionRevocationFollower:
    """Feeds `verifier.revoked_sessions` from the IDENTITY stream for as long as `run()` runs."""

    def __init__(
        self,
        js: JetStreamContext,
        verifier: TokenVerifier,
        lookback: timedelta = DEFAULT_LOOKBACK,
    ) -> None:
        self._js = js
        self._verifier = verifier
        self._lookback = lookback
        # (monotonic time added, session id): for forgetting ids once their tokens have expired.
        self._seen: deque[tuple[float, str]] = deque()
        self._subscription: Any = None
        self.received = 0

    def _on_revoked(self, data: bytes) -> None:
        try:
            message = ev.SessionRevoked.FromString(data)
        except DecodeError:
            log.warning("undecodable session revocation skipped")
            return
        if not message.session_id:
            return
        # The JetStream timestamps are the server's wall clock: compare with the real time, not a test clock.
        revoked_at = message.revoked_at.ToDatetime(tzinfo=UTC) if message.HasField("revoked_at") else None
        age = (datetime.now(UTC) - revoked_at).total_seconds() if revoked_at else 0.0
        if age > self._lookback.total_seconds():
            return
        self._verifier.revoked_sessions.add(message.session_id)
        self._seen.append((time.monotonic() - max(age, 0.0), message.session_id))
        self.received += 1
        self._forget_expired()

    def _forget_expired(self) -> None:
        horizon = time.monotonic() - self._lookback.total_seconds()
        while self._seen and self._seen[0][0] < horizon:
            _, session_id = self._seen.popleft()
            self._verifier.revoked_sessions.discard(session_id)

    async def start(self) -> None:
        """Subscribes (creating the IDENTITY stream if identity has not yet); messages arrive in the background."""
        await ensure_stream(self._js, STREAM)

        async def on_message(msg: Any) -> None:
            self._on_revoked(msg.data)

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=datetime.now(UTC) - self._lookback,
            filter_subject=SESSION_REVOKED,
        )
        self._subscription = await self._js.subscribe(
            SESSION_REVOKED, stream=STREAM, cb=on_message, ordered_consumer=True, config=config
        )
        log.info("following session revocations", extra={"lookback_seconds": self._lookback.total_seconds()})

    async def run(self) -> None:
        """Starts (retrying until NATS answers) and then prunes old ids until cancelled."""
        delay = 0.5
        while self._subscription is None:
            try:
                await self.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cannot follow session revocations yet", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        try:
            while True:
                await asyncio.sleep(30)
                self._forget_expired()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
