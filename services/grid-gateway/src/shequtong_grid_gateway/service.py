"""grid-gateway use cases: each state change and its event commit in one transaction.

Tickets come from the issues service's dispatch requests, are handed to the grid platform by
the delivery worker (workers.py), and move with the grid's updates, pushed (webhook.py) or
polled (workers.py) — both paths end in `apply_update`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry import propagate
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_grid_gateway import events
from shequtong_grid_gateway.domain import access
from shequtong_grid_gateway.domain import tickets as rules
from shequtong_grid_gateway.domain.catalogue import (
    DEFAULT_KEY,
    CatalogueService,
    CatalogueSpec,
    resolve_service_code,
)
from shequtong_grid_gateway.domain.delivery import (
    CircuitBreaker,
    Verdict,
    backoff_seconds,
)
from shequtong_grid_gateway.domain.webhook import IncomingUpdate
from shequtong_grid_gateway.metrics import GridMetrics
from shequtong_grid_gateway.models import (
    CatalogueEntry,
    CatalogueSource,
    CategoryMapping,
    DeliveryAttempt,
    GridUpdate,
    PollCursor,
    Ticket,
)
from shequtong_grid_gateway.platforms import Accepted, GridPlatform, PlatformError, RequestStatus
from shequtong_grid_gateway.repository import TicketRepository
from shequtong_grid_gateway.settings import GridGatewaySettings
from shequtong_kit import regions
from shequtong_kit.auth import Principal
from shequtong_kit.clock import Clock
from shequtong_kit.consumer import PoisonMessage
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from shequtong_kit.ids import new_id
from shequtong_kit.outbox import Outbox
from shequtong_kit.proto import from_ts

log = logging.getLogger(__name__)

# Outcomes of one incoming update.
APPLIED = "applied"
STALE = "stale"
NOTED = "noted"
ORPHAN = "orphan"
DUPLICATE = "duplicate"

ATTEMPTS_SHOWN = 100
CATALOGUE_CACHE_SECONDS = 60.0


def _current_trace() -> dict[str, str]:
    """The caller's trace context (the consumer's span), kept so the later send continues it."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate")}


@dataclass(frozen=True)
class TicketDetail:
    ticket: Ticket
    attempts: list[DeliveryAttempt]
    attempt_count: int
    updates: list[GridUpdate]


@dataclass(frozen=True)
class CircuitView:
    breaker: CircuitBreaker
    pending: int
    oldest_pending_at: datetime | None
    failed: int


@dataclass(frozen=True)
class CatalogueView:
    district_id: str
    source: CatalogueSource | None
    services: list[CatalogueEntry]
    categories: list[CategoryMapping]


class GridService:
    def __init__(
        self,
        settings: GridGatewaySettings,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        clock: Clock,
        platforms: Mapping[str, GridPlatform],
        *,
        skip_locked: bool,
        instance: str,
        catalogue_specs: Mapping[str, CatalogueSpec] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.outbox = outbox
        self.clock = clock
        self.platforms = dict(platforms)
        self.default_platform = settings.grid_platform_name
        if self.default_platform not in self.platforms:
            raise ValueError(f"no adapter for the default platform {self.default_platform!r}")
        self.skip_locked = skip_locked
        self.instance = instance
        self.catalogue_specs = dict(catalogue_specs or {})
        self.rng = rng or random.Random()
        self.breakers = {
            name: CircuitBreaker(
                name,
                settings.grid_circuit_failure_threshold,
                timedelta(seconds=settings.grid_circuit_cooldown_seconds),
            )
            for name in self.platforms
        }
        self.metrics = GridMetrics(lambda: self.breakers)
        # Set after a commit that queued work, so the delivery worker starts at once.
        self.work_available = asyncio.Event()
        # One update at a time per process: two paths (webhook, poll) may carry the same one.
        self._apply_lock = asyncio.Lock()
        self._catalogue_next_at: datetime | None = None
        # District key -> (known codes or None, category mapping), read from the database once
        # and dropped whenever this replica reloads; other replicas' reloads are seen within
        # CATALOGUE_CACHE_SECONDS.
        self._catalogue_cache: dict[str, tuple[datetime, str, set[str] | None, dict[str, str]]] = {}

    async def started(self) -> None:
        """Once telemetry is set up (instruments made before it are proxies that drop early values)."""
        self.metrics.initialise(sorted(self.platforms))

    def _repo(self, session: AsyncSession) -> TicketRepository:
        return TicketRepository(session, self.skip_locked)

    def _wake_after_commit(self, session: AsyncSession) -> None:
        event.listen(session.sync_session, "after_commit", lambda _s: self.work_available.set(), once=True)

    @staticmethod
    def _fail(ticket: Ticket, code: str, reason: str, now: datetime) -> None:
        ticket.state = rules.FAILED
        ticket.failure_code = code
        ticket.last_error = rules.short_reason(reason)
        ticket.failed_at = now
        ticket.next_attempt_at = None
        ticket.claimed_by = None
        ticket.claimed_until = None
        ticket.updated_at = now

    # --- dispatch requests (consumer) ---------------------------------------------------------
    async def accept_dispatch(self, session: AsyncSession, message: issues_ev.IssueDispatchRequested) -> Ticket:
        """One ticket per dispatch_id, however often the request is delivered."""
        dispatch_id, issue_id = message.dispatch_id.strip(), message.issue_id.strip()
        neighbourhood_id = message.neighbourhood_id.strip()
        if not dispatch_id or not issue_id or not neighbourhood_id:
            raise PoisonMessage("dispatch request without dispatch_id, issue_id or neighbourhood_id")
        if len(dispatch_id) > 64 or len(issue_id) > 64 or len(neighbourhood_id) > 36:
            raise PoisonMessage("dispatch request with over-long ids")
        repo = self._repo(session)
        existing = await repo.by_dispatch(dispatch_id)
        if existing is not None:
            return existing
        lineage = await regions.find_lineage(session, neighbourhood_id)
        if lineage is None:
            # Not known yet: its neighbourhood event may be handled at this moment by the other consumer,
            # whose fill of lineages cannot see this ticket before it commits. Held, the two take turns.
            await repo.hold_neighbourhood(neighbourhood_id)
            lineage = await regions.find_lineage(session, neighbourhood_id)
        now = self.clock.now()
        address = message.address.strip()
        if rules.location_of(address, message.lat, message.lon) is None:
            # No address or point given: the neighbourhood itself is where the grid should go.
            address = await repo.neighbourhood_name(neighbourhood_id) or ""
        location = rules.location_of(address, message.lat, message.lon)
        ticket = Ticket(
            id=new_id(),
            dispatch_id=dispatch_id,
            issue_id=issue_id,
            neighbourhood_id=neighbourhood_id,
            subdistrict_id=lineage.subdistrict_id if lineage else None,
            district_id=lineage.district_id if lineage else None,
            category_code=message.category_code.strip()[:64],
            service_code="",
            description=message.description,
            address=address[:500],
            lat=location.lat if location else None,
            lon=location.long if location else None,
            media_urls=rules.media_links(list(message.media_urls))[:20],
            requested_by=message.requested_by[:64],
            requested_at=from_ts(message.requested_at) if message.HasField("requested_at") else None,
            platform=self.default_platform,
            state=rules.PENDING,
            attempts=0,
            next_attempt_at=now,
            last_error="",
            failure_code="",
            agency="",
            trace_context=_current_trace(),
            queued_at=now,
            created_at=now,
            updated_at=now,
        )
        known, categories = await self._catalogue_for(repo, ticket.district_id)
        try:
            ticket.service_code = resolve_service_code(
                message.grid_service_code, ticket.category_code, known, categories
            )
        except ValueError:
            self._fail(
                ticket,
                rules.SERVICE_CODE_UNKNOWN,
                f"no grid service code for category {ticket.category_code!r}"
                f" (requested {message.grid_service_code.strip()[:64]!r})",
                now,
            )
        if ticket.state != rules.FAILED and location is None:
            self._fail(ticket, rules.LOCATION_MISSING, "neither coordinates nor an address to send", now)
        await repo.add(ticket)
        if ticket.state == rules.FAILED:
            self.metrics.tickets_failed.add(1, {"code": ticket.failure_code})
            await events.ticket_failed(self.outbox, session, ticket)
        else:
            self._wake_after_commit(session)
        log.info(
            "ticket created",
            extra={"ticket_id": ticket.id, "dispatch_id": dispatch_id, "state": ticket.state},
        )
        return ticket

    async def neighbourhood_known(self, session: AsyncSession, message: identity_ev.NeighbourhoodCreated) -> None:
        """Records the neighbourhood in the region directory, and the tickets that arrived before it get its
        sub-district and district (held: a ticket being made of it now waits for this commit, or is seen)."""
        repo = self._repo(session)
        await repo.hold_neighbourhood(message.neighbourhood_id)
        await regions.record_neighbourhood(session, message)
        await repo.fill_lineage(message.neighbourhood_id, message.subdistrict_id, message.district_id)

    # --- delivery -----------------------------------------------------------------------------
    async def claim_due(self, platform: str, limit: int) -> list[Ticket]:
        async with self.sessions() as session, session.begin():
            claimed = await self._repo(session).claim_due(
                platform,
                self.clock.now(),
                limit,
                self.instance,
                timedelta(seconds=self.settings.grid_claim_lease_seconds),
            )
            await self._complete_lineages(session, claimed)
            return claimed

    async def _complete_lineages(self, session: AsyncSession, tickets: Sequence[Ticket]) -> None:
        """Tickets made before the region directory knew their neighbourhood get its lineage here, after
        their own commit. `neighbourhood_known` fills those already committed when the neighbourhood
        arrives; one committed while it ran was not there to be filled, and is found by this look."""
        missing = [t for t in tickets if t.district_id is None]
        if not missing:
            return
        known = {
            lin.neighbourhood_id: lin for lin in await regions.lineages(session, [t.neighbourhood_id for t in missing])
        }
        for ticket in missing:
            lineage = known.get(ticket.neighbourhood_id)
            if lineage is not None:
                ticket.subdistrict_id, ticket.district_id = lineage.subdistrict_id, lineage.district_id

    async def release_claims(self, ids: list[str]) -> None:
        if ids:
            async with self.sessions() as session, session.begin():
                await self._repo(session).release_claims(ids, self.instance)

    async def _attempt(
        self,
        session: AsyncSession,
        ticket: Ticket,
        started_at: datetime,
        duration_ms: int,
        outcome: str,
        http_status: int = 0,
        error: str = "",
        external_id: str = "",
        token: str = "",
    ) -> None:
        ticket.attempts += 1
        session.add(
            DeliveryAttempt(
                id=new_id(),
                ticket_id=ticket.id,
                number=ticket.attempts,
                started_at=started_at,
                duration_ms=duration_ms,
                outcome=outcome,
                http_status=http_status,
                error=rules.short_reason(error),
                external_id=external_id,
                token=token,
            )
        )

    async def record_sent(
        self,
        ticket_id: str,
        accepted: Accepted,
        started_at: datetime,
        duration_ms: int,
        resolved_id: str | None = None,
    ) -> None:
        """The platform took it: remember its id (or token); the ticket is never sent again."""
        async with self._apply_lock, self.sessions() as session, session.begin():
            repo = self._repo(session)
            ticket = await repo.get(ticket_id, lock=True)
            if ticket is None:
                return
            now = self.clock.now()
            await self._attempt(
                session,
                ticket,
                started_at,
                duration_ms,
                "sent",
                accepted.http_status,
                external_id=accepted.service_request_id or resolved_id or "",
                token=accepted.token or "",
            )
            ticket.claimed_by = None
            ticket.claimed_until = None
            if ticket.external_id or ticket.token:
                # Another replica recorded the same answer first (the platform de-duplicated).
                return
            ticket.external_id = accepted.service_request_id or resolved_id
            ticket.token = accepted.token
            ticket.state = rules.SENT
            ticket.sent_at = now
            ticket.next_attempt_at = None
            ticket.last_error = ""
            ticket.updated_at = now
            await session.flush()
            await events.ticket_sent(self.outbox, session, ticket)
            if ticket.external_id:
                await self._adopt_orphans(session, ticket)
        self.metrics.deliveries.add(1, {"platform": ticket.platform})
        log.info("ticket sent", extra={"ticket_id": ticket_id, "external_id": ticket.external_id or ""})

    async def record_failure(self, ticket_id: str, error: PlatformError, started_at: datetime, duration_ms: int) -> str:
        """A 4xx ends the ticket (the issue is told); anything else is tried again later."""
        async with self.sessions() as session, session.begin():
            ticket = await self._repo(session).get(ticket_id, lock=True)
            if ticket is None:
                return "gone"
            now = self.clock.now()
            rejected = error.verdict is Verdict.REJECTED
            outcome = "failed" if rejected else "retry"
            await self._attempt(session, ticket, started_at, duration_ms, outcome, error.http_status, error.reason)
            ticket.claimed_by = None
            ticket.claimed_until = None
            ticket.updated_at = now
            if ticket.external_id or ticket.token or ticket.state != rules.PENDING:
                return "already_sent"
            if rejected:
                self._fail(ticket, rules.PLATFORM_REJECTED, error.reason, now)
                await events.ticket_failed(self.outbox, session, ticket, error.http_status)
            else:
                delay = backoff_seconds(
                    ticket.attempts,
                    base=self.settings.grid_retry_base_seconds,
                    cap=self.settings.grid_retry_max_delay_seconds,
                    rng=self.rng,
                    retry_after=error.retry_after,
                )
                ticket.next_attempt_at = now + timedelta(seconds=delay)
                ticket.last_error = rules.short_reason(error.reason)
        self.metrics.failures.add(1, {"platform": ticket.platform, "kind": error.verdict.value})
        if rejected:
            self.metrics.tickets_failed.add(1, {"code": rules.PLATFORM_REJECTED})
        log.warning(
            "delivery failed",
            extra={
                "ticket_id": ticket_id,
                "outcome": outcome,
                "http_status": error.http_status,
                "error": rules.short_reason(error.reason)[:200],
            },
        )
        return outcome

    async def fail_unsendable(self, ticket_id: str, code: str, reason: str) -> None:
        async with self.sessions() as session, session.begin():
            ticket = await self._repo(session).get(ticket_id, lock=True)
            if ticket is None or ticket.state != rules.PENDING or ticket.external_id or ticket.token:
                return
            self._fail(ticket, code, reason, self.clock.now())
            await events.ticket_failed(self.outbox, session, ticket)
        self.metrics.tickets_failed.add(1, {"code": code})

    async def fail_overdue(self, platform: str) -> int:
        """Tickets undelivered past the give-up window fail, so the issue is told and an
        operator can retry them; they are not silently kept forever."""
        window = self.settings.grid_give_up_after_seconds
        if window <= 0:
            return 0
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            overdue = await self._repo(session).overdue(platform, now - timedelta(seconds=window), now, 100)
            for ticket in overdue:
                self._fail(
                    ticket,
                    rules.DELIVERY_ABANDONED,
                    f"not delivered within {int(window)} s: {ticket.last_error or 'platform unavailable'}",
                    now,
                )
                await events.ticket_failed(self.outbox, session, ticket)
        if overdue:
            self.metrics.tickets_failed.add(len(overdue), {"code": rules.DELIVERY_ABANDONED})
            log.warning("tickets abandoned", extra={"platform": platform, "count": len(overdue)})
        return len(overdue)

    async def release_backoff(self, platform: str) -> int:
        async with self.sessions() as session, session.begin():
            released = await self._repo(session).release_backoff(platform, self.clock.now())
        if released:
            self.work_available.set()
        return released

    async def refresh_backlog_gauge(self) -> None:
        async with self.sessions() as session:
            pending, _oldest, _failed = await self._repo(session).backlog(self.default_platform)
        self.metrics.pending = pending

    # --- status back ---------------------------------------------------------------------------
    async def apply_update(self, platform: str, update: IncomingUpdate, source: str) -> str:
        """The one way a grid update reaches a ticket, pushed or polled: recorded once per
        update_id; moves the ticket only when newer than its latest; one event per move."""
        try:
            async with self._apply_lock, self.sessions() as session, session.begin():
                outcome = await self._apply(session, platform, update, source)
        except IntegrityError:
            outcome = DUPLICATE  # another replica recorded the same update_id first
        self.metrics.updates.add(1, {"source": source, "outcome": outcome})
        return outcome

    async def unseen(self, platform: str, updates: list[IncomingUpdate]) -> list[IncomingUpdate]:
        """The updates not recorded yet (polling re-reads overlapping windows)."""
        if not updates:
            return []
        async with self.sessions() as session:
            known = await self._repo(session).known_update_ids(platform, [u.update_id for u in updates])
        skipped = sum(1 for u in updates if u.update_id in known)
        if skipped:
            self.metrics.updates.add(skipped, {"source": "poll", "outcome": DUPLICATE})
        return [u for u in updates if u.update_id not in known]

    async def _apply(self, session: AsyncSession, platform: str, update: IncomingUpdate, source: str) -> str:
        repo = self._repo(session)
        if await repo.update_exists(platform, update.update_id):
            return DUPLICATE
        ticket = await repo.by_external(platform, update.service_request_id, lock=True)
        row = GridUpdate(
            id=new_id(),
            platform=platform,
            update_id=update.update_id,
            service_request_id=update.service_request_id,
            ticket_id=ticket.id if ticket else None,
            status=update.status,
            external_status_code=update.external_status_code,
            state=rules.map_update(update.status, update.external_status_code),
            description=update.description,
            media_url=update.media_url,
            agency=update.agency,
            updated_at=update.updated_at,
            received_at=self.clock.now(),
            source=source,
            outcome=ORPHAN,
        )
        if ticket is not None:
            await self._move(session, ticket, row)
        session.add(row)
        await session.flush()
        log.info(
            "grid update",
            extra={
                "update_id": update.update_id,
                "ticket_id": ticket.id if ticket else None,
                "source": source,
                "outcome": row.outcome,
                "state": row.state,
            },
        )
        return row.outcome

    async def _move(self, session: AsyncSession, ticket: Ticket, row: GridUpdate) -> None:
        if not rules.is_newer(row.updated_at, row.update_id, ticket.last_update_at, ticket.last_update_id):
            row.outcome = STALE
            return
        ticket.last_update_at = row.updated_at
        ticket.last_update_id = row.update_id
        ticket.updated_at = self.clock.now()
        if row.agency:
            ticket.agency = row.agency
        if row.state is None:
            row.outcome = NOTED
            return
        previous = ticket.state
        ticket.state = row.state
        row.outcome = APPLIED
        await events.ticket_status_changed(self.outbox, session, ticket, row, previous)

    async def _adopt_orphans(self, session: AsyncSession, ticket: Ticket) -> int:
        """Updates that arrived before we knew the ticket's id, applied now in the grid's order."""
        if not ticket.external_id:
            return 0
        orphans = await self._repo(session).orphans(ticket.platform, ticket.external_id)
        for row in orphans:
            row.ticket_id = ticket.id
            await self._move(session, ticket, row)
        return len(orphans)

    async def adopt_orphans(self, platform: str, limit: int = 100) -> int:
        """Sweep: orphans whose ticket has meanwhile learnt its id (a race between replicas)."""
        adopted = 0
        async with self._apply_lock, self.sessions() as session, session.begin():
            repo = self._repo(session)
            for external_id in await repo.orphan_ids(platform, limit):
                ticket = await repo.by_external(platform, external_id, lock=True)
                if ticket is not None:
                    adopted += await self._adopt_orphans(session, ticket)
        return adopted

    async def identify(self, ticket_id: str, service_request_id: str) -> bool:
        """A token resolved to the platform's id."""
        async with self._apply_lock, self.sessions() as session, session.begin():
            ticket = await self._repo(session).get(ticket_id, lock=True)
            if ticket is None or ticket.external_id:
                return False
            ticket.external_id = service_request_id
            ticket.updated_at = self.clock.now()
            await session.flush()
            await events.ticket_identified(self.outbox, session, ticket)
            await self._adopt_orphans(session, ticket)
        log.info("token resolved", extra={"ticket_id": ticket_id, "external_id": service_request_id})
        return True

    # --- polling ------------------------------------------------------------------------------
    async def lease_poll(self, platform: str, lease_seconds: float) -> PollCursor | None:
        async with self.sessions() as session, session.begin():
            return await self._repo(session).lease_poll(
                platform, self.instance, self.clock.now(), timedelta(seconds=lease_seconds)
            )

    async def finish_poll(self, platform: str, cursor_at: datetime | None, error: str) -> None:
        async with self.sessions() as session, session.begin():
            await self._repo(session).finish_poll(
                platform, self.instance, self.clock.now(), cursor_at, rules.short_reason(error)
            )

    async def awaiting_token(self, platform: str, limit: int) -> list[Ticket]:
        async with self.sessions() as session:
            return await self._repo(session).awaiting_token(platform, limit)

    async def to_check(self, platform: str, limit: int) -> list[Ticket]:
        async with self.sessions() as session:
            return await self._repo(session).to_check(platform, limit)

    async def note_requests(self, platform: str, checked: list[Ticket], found: list[RequestStatus]) -> list[str]:
        """What requests.json says of tickets we follow: department and deadline are kept; the
        ids whose request changed after our latest update are returned to fetch their updates."""
        by_id = {r.service_request_id: r for r in found}
        behind: list[str] = []
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            repo = self._repo(session)
            for stale in checked:
                ticket = await repo.get(stale.id, lock=True)
                if ticket is None:
                    continue
                ticket.last_checked_at = now
                status = by_id.get(ticket.external_id or "")
                if status is None:
                    continue
                if status.agency:
                    ticket.agency = status.agency
                if status.expected_at:
                    ticket.expected_at = status.expected_at
                # Inclusive: the grid dates to the second, and a lost update may share the second
                # of the latest one we have. Fetching a few updates too many costs one request.
                seen = ticket.last_update_at or status.requested_at or ticket.sent_at
                moved = status.updated_at is None or seen is None or status.updated_at >= seen
                closed_there = status.status == "closed" and ticket.state not in rules.SETTLED
                if moved or closed_there:
                    behind.append(ticket.external_id or "")
        return [b for b in behind if b]

    # --- catalogue ----------------------------------------------------------------------------
    async def _catalogue_for(
        self, repo: TicketRepository, district_id: str | None
    ) -> tuple[set[str] | None, dict[str, str]]:
        """The district's own catalogue, else the default; (None, {}) when none is loaded."""
        now = self.clock.now()
        cached = self._catalogue_cache.get(district_id or DEFAULT_KEY)
        if cached and (now - cached[0]).total_seconds() < CATALOGUE_CACHE_SECONDS:
            return cached[2], cached[3]
        key = DEFAULT_KEY
        if district_id and await repo.catalogue_source(district_id) is not None:
            key = district_id
        if await repo.catalogue_source(key) is None:
            known: set[str] | None = None
            categories: dict[str, str] = {}
        else:
            known = {e.service_code for e in await repo.catalogue_entries(key)}
            categories = {m.category_code: m.service_code for m in await repo.category_mappings(key)}
        self._catalogue_cache[district_id or DEFAULT_KEY] = (now, key, known, categories)
        return known, categories

    def catalogue_due(self) -> bool:
        return self._catalogue_next_at is None or self.clock.now() >= self._catalogue_next_at

    async def refresh_catalogue(self) -> list[str]:
        """Loads every district's catalogue: from the file, or from the platform's services.json
        for entries that name no services (and when there is no file at all)."""
        platform = self.platforms[self.default_platform]
        specs = self.catalogue_specs or {DEFAULT_KEY: CatalogueSpec(None)}
        fetched: tuple[CatalogueService, ...] | None = None
        loaded: list[str] = []
        failed = False
        now = self.clock.now()
        for key, spec in specs.items():
            services, source = spec.services, "file"
            if services is None:
                if fetched is None:
                    try:
                        fetched = await platform.fetch_services()
                    except PlatformError as exc:
                        failed = True
                        log.warning("services.json not loaded", extra={"error": exc.reason[:200]})
                        continue
                services, source = fetched, "platform"
            async with self.sessions() as session, session.begin():
                await self._repo(session).replace_catalogue(
                    key,
                    source,
                    now,
                    [
                        CatalogueEntry(
                            district_key=key,
                            service_code=s.service_code,
                            service_name=s.service_name,
                            group_name=s.group,
                            description=s.description,
                            keywords=s.keywords,
                            type=s.type,
                        )
                        for s in services
                    ],
                    [
                        CategoryMapping(district_key=key, category_code=category, service_code=code)
                        for category, code in spec.categories.items()
                    ],
                )
            loaded.append(key)
        self._catalogue_cache.clear()
        retry = self.settings.grid_poll_interval_seconds if failed else self.settings.grid_catalogue_refresh_seconds
        self._catalogue_next_at = now + timedelta(seconds=retry)
        if loaded:
            log.info("catalogue loaded", extra={"districts": [k or "default" for k in loaded]})
        return loaded

    async def get_catalogue(self, principal: Principal, district_id: str) -> CatalogueView:
        access.ensure_may_filter_district(principal, district_id)
        async with self.sessions() as session:
            repo = self._repo(session)
            key = district_id if district_id and await repo.catalogue_source(district_id) else DEFAULT_KEY
            return CatalogueView(
                district_id=district_id,
                source=await repo.catalogue_source(key),
                services=await repo.catalogue_entries(key),
                categories=await repo.category_mappings(key),
            )

    async def reload_catalogue(self, principal: Principal) -> list[CatalogueView]:
        access.ensure_operator(principal)
        await self.refresh_catalogue()
        views = []
        async with self.sessions() as session:
            repo = self._repo(session)
            for source in sorted(await repo.catalogue_sources(), key=lambda s: s.district_key):
                views.append(
                    CatalogueView(
                        district_id=source.district_key,
                        source=source,
                        services=await repo.catalogue_entries(source.district_key),
                        categories=await repo.category_mappings(source.district_key),
                    )
                )
        return views

    # --- operators' view ----------------------------------------------------------------------
    async def get_ticket(self, principal: Principal, ticket_id: str) -> TicketDetail:
        access.visible_districts(principal)  # people who are not staff learn nothing
        async with self.sessions() as session:
            repo = self._repo(session)
            ticket = await repo.get(ticket_id.strip()) if ticket_id.strip() else None
            if ticket is None:
                raise NotFound("no such ticket", code="ticket_not_found")
            access.ensure_may_view(principal, ticket.district_id)
            attempts, count = await repo.attempts_of(ticket.id, ATTEMPTS_SHOWN)
            return TicketDetail(ticket, attempts, count, await repo.updates_of(ticket.id))

    async def list_tickets(
        self,
        principal: Principal,
        *,
        state: str,
        district_id: str,
        issue_id: str,
        dispatch_id: str,
        after: str | None,
        limit: int,
    ) -> list[Ticket]:
        state = state.strip()
        if state and state not in rules.STATES:
            raise InvalidArgument(f"state must be one of {', '.join(rules.STATES)}", code="ticket_state_invalid")
        districts = access.ensure_may_filter_district(principal, district_id.strip())
        async with self.sessions() as session:
            return await self._repo(session).page(
                state=state,
                districts=districts,
                issue_id=issue_id.strip(),
                dispatch_id=dispatch_id.strip(),
                before=after,
                limit=limit,
            )

    async def retry_ticket(self, session: AsyncSession, principal: Principal, ticket_id: str) -> Ticket:
        """A failed ticket that never reached the platform goes back into the queue, checked
        again against today's catalogue; nothing changes when it still cannot be sent."""
        repo = self._repo(session)
        ticket = await repo.get(ticket_id.strip(), lock=True) if ticket_id.strip() else None
        if ticket is None:
            if principal.is_operator or access.staff_districts(principal):
                raise NotFound("no such ticket", code="ticket_not_found")
            raise PermissionDenied("only operators and district staff may retry tickets", code="grid_staff_only")
        access.ensure_may_act(principal, ticket.district_id)
        if ticket.state != rules.FAILED:
            raise FailedPrecondition("only a failed ticket can be retried", code="ticket_not_failed")
        if ticket.external_id or ticket.token:
            raise FailedPrecondition("the platform already holds this ticket", code="ticket_already_sent")
        known, categories = await self._catalogue_for(repo, ticket.district_id)
        try:
            service_code = resolve_service_code(ticket.service_code, ticket.category_code, known, categories)
        except ValueError:
            raise FailedPrecondition(
                "the grid catalogue has no service code for this ticket", code=rules.SERVICE_CODE_UNKNOWN
            ) from None
        if rules.location_of(ticket.address, ticket.lat or 0.0, ticket.lon or 0.0) is None:
            raise FailedPrecondition("the ticket has no location to send", code=rules.LOCATION_MISSING)
        now = self.clock.now()
        ticket.service_code = service_code
        ticket.state = rules.PENDING
        ticket.failure_code = ""
        ticket.failed_at = None
        ticket.next_attempt_at = now
        ticket.queued_at = now
        ticket.updated_at = now
        await session.flush()
        self._wake_after_commit(session)
        log.info("ticket retried", extra={"ticket_id": ticket.id, "by": principal.subject})
        return ticket

    async def circuits(self, principal: Principal) -> list[CircuitView]:
        access.visible_districts(principal)
        views = []
        async with self.sessions() as session:
            repo = self._repo(session)
            for name, breaker in sorted(self.breakers.items()):
                pending, oldest, failed = await repo.backlog(name)
                views.append(CircuitView(breaker, pending, oldest, failed))
        return views
