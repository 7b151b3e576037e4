"""The transactional outbox: the event row commits with the state change; a relay publishes it.

The relay claims unsent rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas share the work),
publishes each to JetStream with `Nats-Msg-Id` = event id (the server drops a second copy inside its
dedupe window) and CloudEvents binary-mode headers, then marks them sent. A crash between publish and
mark-sent republishes the row; the stream's dedupe and the consumers' inbox absorb the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message
from nats.js import JetStreamContext
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shequtong_kit.clock import Clock, SystemClock
from shequtong_kit.db import is_sqlite, outbox
from shequtong_kit.ids import new_id
from shequtong_kit.telemetry import meter, tracer

log = logging.getLogger(__name__)

_wakeups: set[asyncio.Event] = set()


def _wake_relays(_session: Any) -> None:
    for ev in _wakeups:
        ev.set()


class Outbox:
    """Writes events into the caller's transaction."""

    def __init__(self, source: str, clock: Clock | None = None) -> None:
        self.source = source
        self.clock = clock or SystemClock()

    async def add(self, session: AsyncSession, subject: str, message: Message) -> str:
        event_id = new_id()
        now = self.clock.now()
        headers: dict[str, str] = {
            "ce-id": event_id,
            "ce-type": message.DESCRIPTOR.full_name,
            "ce-source": f"/shequtong/{self.source}",
            "ce-specversion": "1.0",
            "ce-time": now.isoformat(),
            "ce-subject": subject,
            "content-type": "application/protobuf",
        }
        # Capture the caller's trace so the relay's PRODUCER span continues it.
        propagate.inject(headers)
        await session.execute(
            insert(outbox).values(
                id=event_id,
                subject=subject,
                type=message.DESCRIPTOR.full_name,
                payload=message.SerializeToString(),
                headers=headers,
                created_at=now,
                sent_at=None,
                attempts=0,
            )
        )
        if not event.contains(session.sync_session, "after_commit", _wake_relays):
            event.listen(session.sync_session, "after_commit", _wake_relays)
        return event_id

    async def add_many(self, session: AsyncSession, events: Sequence[tuple[str, Message]]) -> list[str]:
        """The same rows as `add` for each (subject, message), in one multi-row INSERT per 1,000 (bulk imports:
        one round trip instead of one per event). Order is kept: ids are time-ordered in the given order."""
        ids: list[str] = []
        rows: list[dict[str, Any]] = []
        now = self.clock.now()
        for subject, message in events:
            event_id = new_id()
            headers: dict[str, str] = {
                "ce-id": event_id,
                "ce-type": message.DESCRIPTOR.full_name,
                "ce-source": f"/shequtong/{self.source}",
                "ce-specversion": "1.0",
                "ce-time": now.isoformat(),
                "ce-subject": subject,
                "content-type": "application/protobuf",
            }
            propagate.inject(headers)
            ids.append(event_id)
            rows.append(
                {
                    "id": event_id,
                    "subject": subject,
                    "type": message.DESCRIPTOR.full_name,
                    "payload": message.SerializeToString(),
                    "headers": headers,
                    "created_at": now,
                    "sent_at": None,
                    "attempts": 0,
                }
            )
        for start in range(0, len(rows), 1000):
            await session.execute(insert(outbox), rows[start : start + 1000])
        if rows and not event.contains(session.sync_session, "after_commit", _wake_relays):
            event.listen(session.sync_session, "after_commit", _wake_relays)
        return ids


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        js: JetStreamContext,
        batch_size: int = 200,
        poll_interval: float = 0.2,
        clock: Clock | None = None,
    ) -> None:
        self._sessions = sessions
        self._js = js
        self._batch = batch_size
        self._poll = poll_interval
        self._clock = clock or SystemClock()
        self._skip_locked = not is_sqlite(engine)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tracer = tracer("shequtong.outbox")
        m = meter("shequtong.outbox")
        self._published = m.create_counter("outbox_published_total", description="events published by the relay")
        self._failures = m.create_counter("outbox_publish_failures_total", description="failed publish attempts")
        # Crash injection for the kit's own fault tests; never set in real deployments.
        self._crash_after_publish = os.environ.get("SHEQUTONG_FAULT_RELAY_CRASH_AFTER_PUBLISH") == "1"
        self._sessions_for_gauges = sessions
        m.create_observable_gauge("outbox_backlog", callbacks=[self._observe_backlog], description="unsent outbox rows")
        m.create_observable_gauge(
            "outbox_oldest_unsent_age_seconds",
            callbacks=[self._observe_age],
            description="age of the oldest unsent outbox row",
        )
        self._backlog = 0
        self._oldest_age = 0.0

    def _observe_backlog(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(self._backlog)]

    def _observe_age(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(self._oldest_age)]

    async def _measure(self) -> None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(func.count(), func.min(outbox.c.created_at)).where(outbox.c.sent_at.is_(None))
                )
            ).one()
        self._backlog = int(row[0])
        oldest = row[1]
        if oldest is not None and oldest.tzinfo is None:
            from datetime import UTC

            oldest = oldest.replace(tzinfo=UTC)
        self._oldest_age = (self._clock.now() - oldest).total_seconds() if oldest else 0.0

    async def drain_once(self) -> int:
        async with self._sessions() as session, session.begin():
            query = select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(self._batch)
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).mappings().all()
            if not rows:
                return 0
            results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
            sent = [row["id"] for row, result in zip(rows, results, strict=True) if result is True]
            failed = [row["id"] for row, result in zip(rows, results, strict=True) if result is not True]
            if self._crash_after_publish and sent:
                log.warning("fault injection: relay exits between publish and mark-sent")
                os._exit(9)
            if sent:
                await session.execute(update(outbox).where(outbox.c.id.in_(sent)).values(sent_at=self._clock.now()))
            if failed:
                await session.execute(
                    update(outbox).where(outbox.c.id.in_(failed)).values(attempts=outbox.c.attempts + 1)
                )
                self._failures.add(len(failed))
            self._published.add(len(sent))
            return len(sent) if not failed else -len(failed)

    async def _publish(self, row: Any) -> bool:
        headers: dict[str, str] = dict(row["headers"])
        parent = propagate.extract(headers)
        with self._tracer.start_as_current_span(
            f"{row['subject']} publish",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "publish",
                "messaging.destination.name": row["subject"],
                "messaging.message.id": row["id"],
            },
        ):
            # Consumers continue from this PRODUCER span.
            for key in ("traceparent", "tracestate"):
                headers.pop(key, None)
            propagate.inject(headers)
            headers["Nats-Msg-Id"] = row["id"]
            try:
                await self._js.publish(row["subject"], row["payload"], headers=headers, timeout=5)
            except Exception as exc:
                trace.get_current_span().record_exception(exc)
                log.warning(
                    "publish failed",
                    extra={"subject": row["subject"], "event_id": row["id"], "error": type(exc).__name__},
                )
                raise
        return True

    async def run(self) -> None:
        _wakeups.add(self._wake)
        backoff = self._poll
        last_measure = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                try:
                    result = await self.drain_once()
                    backoff = self._poll
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("relay pass failed", extra={"error": type(exc).__name__})
                    result = -1
                if loop.time() - last_measure > 5:
                    last_measure = loop.time()
                    with contextlib.suppress(Exception):  # a gauge must not stop the relay
                        await self._measure()
                if result > 0 and result >= self._batch:
                    continue
                if result < 0:
                    backoff = min(backoff * 2, 5.0)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff if result < 0 else self._poll)
        finally:
            _wakeups.discard(self._wake)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()


__all__: Sequence[str] = ["Outbox", "OutboxRelay"]
