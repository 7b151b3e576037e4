"""The transactional outbox: the event row commits with the state change; a relay publishes it.

The relay claims the oldest unsent rows (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so replicas share the
work), publishes them all to JetStream without waiting in between (`publish_async`, in id order on one
connection) with `Nats-Msg-Id` = event id (the server drops a second copy inside its dedupe window) and
CloudEvents binary-mode headers, waits once for the acks, then marks the acked rows sent. A crash between
publish and mark-sent republishes the rows; the stream's dedupe and the consumers' inbox absorb the copy.

Order is NOT guaranteed across the stream: one pass publishes in id order, but two replicas' passes
interleave and a row whose publish failed goes out in a later pass, after newer ones. Consumers must not
depend on order (see docs/DEVELOPING.md, "Streams and subjects").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import groupby
from operator import itemgetter
from typing import Any, TypeVar, cast

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from nats.js import JetStreamContext
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import String, any_, event, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shequtong_kit.clock import Clock, SystemClock
from shequtong_kit.db import InsertMany, flushes_each_event, is_sqlite, outbox
from shequtong_kit.ids import new_id
from shequtong_kit.packs import PACKED_RUNS, PACKS
from shequtong_kit.telemetry import meter, tracer

log = logging.getLogger(__name__)

_wakeups: set[asyncio.Event] = set()
# Built once: a statement made per event (`.values(**row)`) had its cache key generated on every write.
_INSERT = insert(outbox)
# Many rows at once (an import's events, a batch's deferred ones): one unnested statement per 1,000 rows.
_INSERT_MANY = InsertMany(outbox)


def _wake_relays(_session: Any) -> None:
    for ev in _wakeups:
        ev.set()


class Outbox:
    """Writes events into the caller's transaction."""

    def __init__(self, source: str, clock: Clock | None = None) -> None:
        self.source = source
        self.clock = clock or SystemClock()

    def _row(self, subject: str, message: Message, now: datetime) -> dict[str, Any]:
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
        # Capture the caller's trace so the relay's PRODUCER span continues it.
        propagate.inject(headers)
        return {
            "id": event_id,
            "subject": subject,
            "type": message.DESCRIPTOR.full_name,
            "payload": message.SerializeToString(),
            "headers": headers,
            "created_at": now,
            "sent_at": None,
            "attempts": 0,
        }

    @staticmethod
    def _wake_after_commit(session: AsyncSession) -> None:
        if not event.contains(session.sync_session, "after_commit", _wake_relays):
            event.listen(session.sync_session, "after_commit", _wake_relays)

    async def add(self, session: AsyncSession, subject: str, message: Message) -> str:
        row = self._row(subject, message, self.clock.now())
        if flushes_each_event(session):
            await session.execute(_INSERT, row)
        else:  # a consumer batch flushed at its commit: inserted with its other events (`write_deferred`)
            session.info.setdefault(_DEFERRED_ROWS, []).append(row)
        self._wake_after_commit(session)
        return str(row["id"])

    async def add_many(self, session: AsyncSession, events: Sequence[tuple[str, Message]]) -> list[str]:
        """The same rows as `add` for each (subject, message), in one multi-row INSERT per 1,000 (bulk imports:
        one round trip instead of one per event). Order is kept: ids are time-ordered in the given order."""
        now = self.clock.now()
        rows = [self._row(subject, message, now) for subject, message in events]
        await _INSERT_MANY.rows(session, rows)
        if rows:
            self._wake_after_commit(session)
        return [str(row["id"]) for row in rows]

    async def add_all(self, session: AsyncSession, events: Sequence[tuple[str, Message]]) -> None:
        """`add_many`, and in a consumer batch flushed at its commit each run of two or more events of a
        subject in `packs.PACKED_RUNS` packed (`packed_events`), as `write_deferred` packs `add`'s rows — for a
        batch that builds its events itself, without a row per event to be parsed again at the commit."""
        await self.add_many(session, events if flushes_each_event(session) else packed_events(events))


# A bulk import's created events travel packed, many items per event of at most about this size (the NATS
# server refuses a message over its max_payload, 1 MiB by default). See docs/DEVELOPING.md, "Imports".
PACKED_EVENT_BYTES = 256 * 1024

M = TypeVar("M", bound=Message)


def packed(items: Sequence[M], limit: int = PACKED_EVENT_BYTES) -> list[list[M]]:
    """Consecutive runs of `items` whose encoding as a repeated field stays within `limit` (an item larger
    than that travels alone)."""
    chunks: list[list[M]] = []
    size = limit
    for item in items:
        length = item.ByteSize() + 8  # the field's tag and length prefix, generously
        if size + length > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += length
    return chunks


def packed_events(events: Sequence[tuple[str, Message]], limit: int = PACKED_EVENT_BYTES) -> list[tuple[str, Message]]:
    """The (subject, message) events with each run of two or more consecutive events of a subject in
    `PACKED_RUNS` replaced by its packed events (split by `packed`; a chunk of one stays as it was)."""
    sent: list[tuple[str, Message]] = []
    for subject, run in groupby(events, key=itemgetter(0)):
        messages = [message for _, message in run]
        packed_as = PACKED_RUNS.get(subject)
        if packed_as is None or len(messages) < 2:
            sent += [(subject, message) for message in messages]
            continue
        message_type = PACKS[packed_as].message
        [field] = message_type.DESCRIPTOR.fields  # the one repeated field of the items
        for chunk in packed(messages, limit):
            sent.append((subject, chunk[0]) if len(chunk) == 1 else (packed_as, message_type(**{field.name: chunk})))
    return sent


# The events `Outbox.add` keeps in a consumer batch flushed at its commit (`db.flushes_each_event`).
_DEFERRED_ROWS = "shequtong.outbox.deferred_rows"


async def write_deferred(session: AsyncSession) -> None:
    """Inserts the rows `Outbox.add` kept in this session, 1,000 per statement; called before the commit.
    Runs of two or more events of a subject in `packs.PACKED_RUNS` go as its packed events."""
    await _INSERT_MANY.rows(session, packed_runs(session.info.pop(_DEFERRED_ROWS, None) or []))


def packed_runs(rows: list[dict[str, Any]], limit: int = PACKED_EVENT_BYTES) -> list[dict[str, Any]]:
    """The rows, with each run of two or more consecutive events of a subject in `PACKED_RUNS` replaced by
    packed events of at most about `limit` bytes (the first item's id, time and trace headers; the order of
    all events kept)."""
    written: list[dict[str, Any]] = []
    start = 0
    while start < len(rows):
        subject = rows[start]["subject"]
        end = start + 1
        while end < len(rows) and rows[end]["subject"] == subject:
            end += 1
        packed_as = PACKED_RUNS.get(subject)
        if packed_as is None or end - start < 2:
            written.extend(rows[start:end])
        else:
            written.extend(_packed_rows(rows[start:end], packed_as, limit))
        start = end
    return written


def _packed_rows(run: list[dict[str, Any]], packed_as: str, limit: int) -> Iterator[dict[str, Any]]:
    """The run's rows as packed events, split by size as `packed` splits an import's items."""
    message_type = PACKS[packed_as].message
    [field] = message_type.DESCRIPTOR.fields  # the one repeated field of the items
    item_type = message_factory.GetMessageClass(cast(Descriptor, field.message_type))
    kind = message_type.DESCRIPTOR.full_name
    first = 0
    for chunk in packed([item_type.FromString(row["payload"]) for row in run], limit):
        row, first = run[first], first + len(chunk)
        if len(chunk) == 1:
            yield row
            continue
        yield {
            **row,
            "subject": packed_as,
            "type": kind,
            "payload": message_type(**{field.name: chunk}).SerializeToString(),
            "headers": {**row["headers"], "ce-type": kind, "ce-subject": packed_as},
        }


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        js: JetStreamContext,
        batch_size: int = 1000,
        poll_interval: float = 0.2,
        clock: Clock | None = None,
        publish_timeout: float = 5.0,
        linger: float = 0.0,
    ) -> None:
        self._sessions = sessions
        self._linger = linger
        self._js = js
        # At most the JetStream context's in-flight publishes (4,000 by default in nats-py).
        self._batch = max(1, min(batch_size, 4000))
        self._poll = poll_interval
        self._publish_timeout = publish_timeout
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
        """One pass: claims up to `batch_size` unsent rows (oldest first), publishes them all without
        waiting in between (`publish_async`, in id order on one connection), waits once for the
        stream's acks, marks the acked rows sent and counts an attempt on the others.

        Returns the number sent, or minus the number that failed when any did."""
        async with self._sessions() as session, session.begin():
            query = (
                select(outbox.c.id, outbox.c.subject, outbox.c.payload, outbox.c.headers)
                .where(outbox.c.sent_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self._batch)
            )
            if self._skip_locked:
                query = query.with_for_update(skip_locked=True)
            rows = (await session.execute(query)).all()
            if not rows:
                return 0
            results = await self._publish_all(rows)
            sent = [row.id for row, ok in zip(rows, results, strict=True) if ok]
            failed = [row.id for row, ok in zip(rows, results, strict=True) if not ok]
            if self._crash_after_publish and sent:
                log.warning("fault injection: relay exits between publish and mark-sent")
                os._exit(9)
            if sent:
                await session.execute(update(outbox).where(self._among(sent)).values(sent_at=self._clock.now()))
            if failed:
                await session.execute(update(outbox).where(self._among(failed)).values(attempts=outbox.c.attempts + 1))
                self._failures.add(len(failed))
            self._published.add(len(sent))
            return len(sent) if not failed else -len(failed)

    def _among(self, ids: list[str]) -> Any:
        """`id IN (…)`; on PostgreSQL `id = ANY(:ids)`, one statement text whatever the count."""
        if self._skip_locked:
            return outbox.c.id == any_(literal(ids, type_=postgresql.ARRAY(String())))
        return outbox.c.id.in_(ids)

    async def _publish_all(self, rows: Sequence[Any]) -> list[bool]:
        """Publishes every row, then waits once (bounded) for all the acks; True where the stream acked."""
        spans: list[trace.Span] = []
        acks: list[asyncio.Future[Any] | None] = []
        errors: list[BaseException | None] = []
        for row in rows:
            headers: dict[str, str] = dict(row.headers)
            span = self._tracer.start_span(
                f"{row.subject} publish",
                context=propagate.extract(headers),
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "nats",
                    "messaging.operation.type": "publish",
                    "messaging.destination.name": row.subject,
                    "messaging.message.id": row.id,
                },
            )
            spans.append(span)
            # Consumers continue from this PRODUCER span.
            for key in ("traceparent", "tracestate"):
                headers.pop(key, None)
            propagate.inject(headers, context=trace.set_span_in_context(span))
            headers["Nats-Msg-Id"] = row.id
            try:
                # No wait_stall: acquiring the in-flight slot then never yields, so the whole batch
                # reaches the socket in one write. The slots are bounded (4,000 per JetStream
                # context) and every future below is settled or cancelled before the next pass.
                acks.append(await self._js.publish_async(row.subject, row.payload, headers=headers))
                errors.append(None)
            except Exception as exc:
                acks.append(None)
                errors.append(exc)
        waiting = [ack for ack in acks if ack is not None]
        if waiting:
            _done, late = await asyncio.wait(waiting, timeout=self._publish_timeout)
            for unanswered in late:
                unanswered.cancel()
        results: list[bool] = []
        first_failure: tuple[Any, BaseException] | None = None
        for row, span, pending, error in zip(rows, spans, acks, errors, strict=True):
            if pending is not None:
                if pending.cancelled():
                    error = TimeoutError(f"no ack within {self._publish_timeout}s")
                elif pending.exception() is not None:
                    error = pending.exception()
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                first_failure = first_failure or (row, error)
            span.end()
            results.append(error is None)
        if first_failure is not None:
            row, error = first_failure
            log.warning(
                "publish failed",
                extra={
                    "subject": row.subject,
                    "event_id": row.id,
                    "error": type(error).__name__,
                    "failed": results.count(False),
                    "batch": len(results),
                },
            )
        return results

    async def run(self) -> None:
        _wakeups.add(self._wake)
        backoff = self._poll
        last_measure = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                # Cleared before the pass: a commit during the pass leaves it set and starts the next one.
                self._wake.clear()
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff if result < 0 else self._poll)
                    if self._linger > 0 and result >= 0:
                        # Woken by a commit: the commits of the next few milliseconds go out in the same pass.
                        await asyncio.sleep(self._linger)
        finally:
            _wakeups.discard(self._wake)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()


__all__: Sequence[str] = ["Outbox", "OutboxRelay"]
