"""The two background loops: the delivery worker (tickets → platform) and the poller
(platform → ticket updates, tokens, the requests.json backstop, the catalogue)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from shequtong_grid_gateway.domain import tickets as rules
from shequtong_grid_gateway.domain.delivery import OPEN, TokenBucket, Verdict
from shequtong_grid_gateway.models import Ticket
from shequtong_grid_gateway.platforms import GridPlatform, PlatformError
from shequtong_grid_gateway.service import GridService
from shequtong_grid_gateway.settings import GridGatewaySettings
from shequtong_kit.telemetry import tracer

log = logging.getLogger(__name__)


class DeliveryWorker:
    """Sends due tickets oldest first, one at a time within the send rate, through the circuit
    breaker. Replicas share the queue through claims (SKIP LOCKED on PostgreSQL)."""

    def __init__(
        self,
        service: GridService,
        platform: GridPlatform,
        settings: GridGatewaySettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.platform = platform
        self.settings = settings
        self.breaker = service.breakers[platform.name]
        self.bucket = TokenBucket(settings.grid_send_rate_per_second, settings.grid_send_burst)
        self._monotonic = monotonic
        self._stopping = asyncio.Event()
        self._tracer = tracer("shequtong.grid")

    def stop(self) -> None:
        self._stopping.set()
        self.service.work_available.set()

    async def run(self) -> None:
        last_sweep = -1e9
        while not self._stopping.is_set():
            try:
                worked = await self.pass_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("delivery pass failed", extra={"error": type(exc).__name__})
                worked = False
            if self._monotonic() - last_sweep >= 30:
                last_sweep = self._monotonic()
                with contextlib.suppress(Exception):  # a sweep must not stop deliveries
                    await self.service.fail_overdue(self.platform.name)
                    await self.service.refresh_backlog_gauge()
            if worked:
                continue
            wait = self.settings.grid_delivery_idle_seconds
            if self.breaker.state == OPEN:
                wait = max(0.05, min(wait, self.breaker.wait_seconds(self.service.clock.now())))
            self.service.work_available.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.service.work_available.wait(), timeout=wait)

    async def pass_once(self) -> bool:
        """One claim and its sends; False when nothing could be sent."""
        if not self.breaker.allow(self.service.clock.now()):
            return False
        probing = self.breaker.state != "closed"
        claimed = await self.service.claim_due(self.platform.name, 1 if probing else self.settings.grid_delivery_batch)
        if not claimed:
            self.breaker.release_probe()
            return False
        remaining = list(claimed)
        limit = 1 if probing else self.settings.grid_send_concurrency
        in_flight: set[asyncio.Task[None]] = set()
        try:
            first = True
            while remaining:
                while len(in_flight) >= limit:
                    _done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                now = self.service.clock.now()
                lease_left = remaining[0].claimed_until
                if lease_left and now + timedelta(seconds=self.settings.grid_http_timeout_seconds) >= lease_left:
                    # Too little of the claim left to finish a send: give the rest back rather
                    # than race another replica that may take them over.
                    if first:
                        self.breaker.release_probe()
                    break
                if not first and not self.breaker.allow(now):
                    break
                first = False
                wait = self.bucket.take(self._monotonic())
                if wait > 0:
                    await asyncio.sleep(wait)  # the send-rate bound, not synchronisation
                in_flight.add(asyncio.create_task(self.deliver(remaining.pop(0))))
        finally:
            for result in await asyncio.gather(*in_flight, return_exceptions=True):
                if isinstance(result, Exception):
                    log.warning("delivery not recorded", extra={"error": type(result).__name__})
            with contextlib.suppress(Exception):
                await self.service.release_claims([t.id for t in remaining])
        return True

    async def deliver(self, ticket: Ticket) -> None:
        """One send, inside the trace of the dispatch request that made the ticket."""
        with self._tracer.start_as_current_span(
            "grid.ticket deliver",
            context=propagate.extract(dict(ticket.trace_context or {})),
            kind=SpanKind.INTERNAL,
            attributes={
                "grid.ticket_id": ticket.id,
                "grid.platform": self.platform.name,
                "grid.attempt": ticket.attempts + 1,
            },
        ):
            await self._deliver(ticket)

    async def _deliver(self, ticket: Ticket) -> None:
        metrics = self.service.metrics
        try:
            submission = rules.build_submission(
                ticket_id=ticket.id,
                issue_id=ticket.issue_id,
                service_code=ticket.service_code,
                description=ticket.description,
                address=ticket.address,
                lat=ticket.lat or 0.0,
                lon=ticket.lon or 0.0,
                media_urls=list(ticket.media_urls or []),
            )
        except ValueError:
            self.breaker.release_probe()
            await self.service.fail_unsendable(ticket.id, rules.LOCATION_MISSING, "no location to send")
            return
        started = self.service.clock.now()
        t0 = self._monotonic()
        try:
            try:
                accepted = await self.platform.submit(submission)
            except PlatformError:
                raise
            except Exception as unexpected:  # an adapter bug must not wedge the breaker or lose the ticket
                log.exception("adapter error", extra={"ticket_id": ticket.id})
                raise PlatformError(Verdict.TRANSIENT, f"adapter error: {type(unexpected).__name__}") from None
        except PlatformError as exc:
            elapsed = self._monotonic() - t0
            metrics.delivery_seconds.record(elapsed, {"platform": self.platform.name})
            if exc.verdict is Verdict.REJECTED:
                recovered = self.breaker.record_success()  # it answered: the platform is up
            else:
                recovered = False
                self.breaker.record_failure(self.service.clock.now(), exc.reason)
            await self.service.record_failure(ticket.id, exc, started, int(elapsed * 1000))
            if recovered:
                await self.service.release_backoff(self.platform.name)
            return
        elapsed = self._monotonic() - t0
        metrics.delivery_seconds.record(elapsed, {"platform": self.platform.name})
        recovered = self.breaker.record_success()
        resolved = None
        if accepted.service_request_id is None and accepted.token:
            try:
                resolved = await self.platform.resolve_token(accepted.token)
            except PlatformError as exc:
                log.info("token not resolved yet", extra={"ticket_id": ticket.id, "error": exc.reason[:100]})
        await self.service.record_sent(ticket.id, accepted, started, int(elapsed * 1000), resolved)
        if recovered:
            released = await self.service.release_backoff(self.platform.name)
            log.info("platform reachable again", extra={"platform": self.platform.name, "released": released})


class Poller:
    """Polls the platform's updates (the backstop of pushed ones), resolves tokens, checks
    open tickets against requests.json, and keeps the catalogue fresh. One replica at a time
    holds the platform's poll lease."""

    def __init__(
        self,
        service: GridService,
        platform: GridPlatform,
        settings: GridGatewaySettings,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.platform = platform
        self.settings = settings
        self._monotonic = monotonic
        self._last_backstop = -1e9
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("poll failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.grid_poll_interval_seconds)

    async def poll_once(self) -> str:
        if self.service.catalogue_due():
            try:
                await self.service.refresh_catalogue()
            except Exception as exc:
                log.warning("catalogue refresh failed", extra={"error": type(exc).__name__})
        name = self.platform.name
        lease = await self.service.lease_poll(name, max(self.settings.grid_poll_interval_seconds * 4, 60.0))
        if lease is None:
            self.service.metrics.polls.add(1, {"result": "skipped"})
            return "skipped"
        newest: datetime | None = lease.cursor_at
        error = ""
        try:
            now = self.service.clock.now()
            since = (
                newest - timedelta(seconds=self.settings.grid_poll_overlap_seconds)
                if newest
                else now - timedelta(seconds=self.settings.grid_poll_lookback_seconds)
            )
            fetched = await self.platform.fetch_updates(since)
            for update in sorted(
                await self.service.unseen(name, fetched), key=lambda u: rules.update_order(u.updated_at, u.update_id)
            ):
                await self.service.apply_update(name, update, "poll")
            for update in fetched:
                # Never ahead of our own clock: one mis-dated update must not make us skip later ones.
                seen = min(update.updated_at, now)
                newest = seen if newest is None else max(newest, seen)
            await self._resolve_tokens()
            if self._monotonic() - self._last_backstop >= self.settings.grid_poll_requests_every_seconds:
                self._last_backstop = self._monotonic()
                await self._backstop()
            await self.service.adopt_orphans(name)
        except PlatformError as exc:
            error = exc.reason
        finally:
            await self.service.finish_poll(name, newest, error)
        self.service.metrics.polls.add(1, {"result": "error" if error else "ok"})
        if error:
            log.warning("poll: platform unavailable", extra={"platform": name, "error": error[:200]})
        return "error" if error else "ok"

    async def _resolve_tokens(self) -> None:
        for ticket in await self.service.awaiting_token(self.platform.name, 50):
            found = await self.platform.resolve_token(ticket.token or "")
            if found:
                await self.service.identify(ticket.id, found)

    async def _backstop(self) -> None:
        """requests.json for the tickets we follow; those the platform moved since our latest
        update get their updates fetched by id and applied (a lost push is found here)."""
        checked = await self.service.to_check(self.platform.name, self.settings.grid_poll_requests_batch)
        if not checked:
            return
        found = await self.platform.fetch_requests([t.external_id for t in checked if t.external_id])
        behind = await self.service.note_requests(self.platform.name, checked, found)
        if not behind:
            return
        sent = [t.sent_at for t in checked if t.external_id in behind and t.sent_at]
        since = min(sent) - timedelta(days=1) if sent else None
        updates = await self.service.unseen(self.platform.name, await self.platform.fetch_updates(since, behind))
        for update in sorted(updates, key=lambda u: rules.update_order(u.updated_at, u.update_id)):
            await self.service.apply_update(self.platform.name, update, "poll")
