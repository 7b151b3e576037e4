"""Durable pull consumers with an inbox: a redelivered event changes nothing the second time.

The runner fetches a batch (up to `ConsumerSpec.batch` messages) and handles it in ONE database
transaction: it claims the batch's ids in the inbox (one `INSERT … ON CONFLICT DO NOTHING RETURNING`;
ids already there were handled before and are skipped), runs the handlers of the claimed ones one after
the other in delivery order, commits, and only then acks each message. So an event's effect commits
exactly once, with its inbox row; a crash before the commit loses nothing (redelivered after
`ack_wait`), a crash between commit and ack costs one redelivery that the inbox skips. Order within a
stream is kept as delivered: one batch at a time, its events in sequence (no concurrency per batch).

A handler that raises does not fail its neighbours: the attempt is rolled back, the event keeps its
error (`PoisonMessage` → a copy on `dlq.<subject>` and `term()`; anything else → `nak` with a growing
delay, dead-lettered after `max_deliver`), the events before it are committed again without it and the
events after it follow. `ConsumerSpec.prefetch` runs once per transaction before its handlers (the rows
the batch will read, in one statement: `shequtong_kit.prefetch`); `ConsumerSpec.before_commit` once
after them. A
handler may therefore run more than once for one delivery: only its database
writes (and its session's after_commit hooks) take effect, once. Failures no handler owns (the inbox
insert meeting a concurrent copy, a failed commit) fall back to one transaction per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from sqlalchemy import String, bindparam, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_kit.clock import Clock, SystemClock
from shequtong_kit.db import CompiledOnce, UtcDateTime, defer_flush, inbox, write_later
from shequtong_kit.db import flushes_each_event as flushes_each_event
from shequtong_kit.nats_io import DLQ_STREAM, ensure_stream
from shequtong_kit.outbox import write_deferred
from shequtong_kit.packs import PACKS
from shequtong_kit.telemetry import meter, tracer

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


class PoisonMessage(Exception):
    """The event can never be handled (undecodable, impossible); send it to the dead-letter subject."""


@dataclass(frozen=True)
class ReceivedEvent:
    id: str
    subject: str
    ce_type: str
    source: str
    time: str
    payload: bytes
    headers: dict[str, str]
    delivery: int
    # When the stream stored it (JetStream's timestamp): the time from `time` to here is the relay's part of
    # an event's lag, the rest the consumer's.
    stored_at: datetime | None = None

    def parse(self, cls: type[M]) -> M:
        try:
            message = cls.FromString(self.payload)
        except DecodeError as exc:
            raise PoisonMessage(f"cannot decode {self.ce_type} as {cls.DESCRIPTOR.full_name}") from exc
        return message

    def peek(self, cls: type[M]) -> M | None:
        """The payload as `cls` for a prefetch, or None when it does not decode (its handler refuses it)."""
        try:
            return cls.FromString(self.payload)
        except DecodeError:
            return None

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromisoformat(self.time)


Handler = Callable[[AsyncSession, ReceivedEvent], Awaitable[None]]
Prefetch = Callable[[AsyncSession, Sequence[ReceivedEvent]], Awaitable[None]]


def _held(
    event: ReceivedEvent,
    kinds: Mapping[str, type[Message]],
    decode: Callable[[ReceivedEvent, type[Message]], Message | None],
) -> list[tuple[str, Message]]:
    """The events a delivery stands for whose subject is in `kinds`: itself, or the items of a packed event
    (`shequtong_kit.packs`) in order; none when `decode` gives None."""
    pack = PACKS.get(event.subject)
    if pack is not None:
        held = decode(event, pack.message)
        return [] if held is None else [(subject, item) for subject, item in pack.items(held) if subject in kinds]
    if event.subject in kinds:
        message = decode(event, kinds[event.subject])
        return [] if message is None else [(event.subject, message)]
    return []  # a subject we filter for but do not (yet) care about


def peeked(events: Sequence[ReceivedEvent], kinds: Mapping[str, type[Message]]) -> list[Any]:
    """For a prefetch: the payloads of the events whose subject is in `kinds`, decoded as its message type,
    packed items included (those that do not decode are left to their handler, which refuses them)."""
    return [message for event in events for _, message in _held(event, kinds, ReceivedEvent.peek)]


# What became of one delivery: True handled now, False handled before (inbox), or the handler's error.
Outcome = bool | Exception


class _RollBack(Exception):
    """Raised inside a batch transaction to roll it back after a handler failed."""


# INSERT INTO inbox SELECT :consumer, unnest(:ids), :now ON CONFLICT DO NOTHING RETURNING event_id
_CLAIM_POSTGRES = CompiledOnce(
    postgresql.insert(inbox)
    .from_select(
        ["consumer", "event_id", "handled_at"],
        select(
            bindparam("consumer", type_=String()),
            func.unnest(bindparam("ids", type_=postgresql.ARRAY(String()))),
            bindparam("now", type_=UtcDateTime()),
        ),
    )
    .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
    .returning(inbox.c.event_id)
)


# The lag gauge is read from the server at most this often while events flow (a JetStream API round
# trip; it was every tenth batch, which at one event per batch was a tenth of the events).
LAG_INTERVAL = 5.0


@dataclass
class ConsumerSpec:
    """A durable consumer named `<consumer-service>-<purpose>` on one producer's stream."""

    name: str
    stream: str
    subjects: Sequence[str]
    handler: Handler
    max_deliver: int = 8
    backoff: Sequence[float] = field(default_factory=lambda: (0.5, 1, 2, 5, 10, 30, 60))
    max_ack_pending: int = 1000
    ack_wait: float = 30.0
    # Messages fetched, handled in one transaction and acked together (at most max_ack_pending).
    batch: int = 256
    # Runs once per transaction after its handlers, before the commit: a handler may leave work that
    # folds across events (counters summed, rows inserted in one statement) for it. Its failure is the
    # transaction's, not one event's: the runner retries one event per transaction, where it fails alone.
    before_commit: Callable[[AsyncSession], Awaitable[None]] | None = None
    # Runs once per transaction before its handlers, with the events they will handle: loads the rows the
    # batch reads in one statement (`shequtong_kit.prefetch`) instead of one per event. Handlers must not
    # depend on it: an event retried alone runs it for itself only.
    prefetch: Prefetch | None = None
    # True: each handler's writes are flushed as it returns (a constraint an event breaks is its own at
    # once). False: a transaction's writes are flushed together (one multi-row INSERT per table) at the
    # commit, the events handlers send (`Outbox.add`) with them; if that fails the batch is handled again
    # one event per transaction, where each event's writes are flushed on their own — handlers can ask
    # `flushes_each_event(session)`.
    flush_each: bool = True


def opened(event: ReceivedEvent, kinds: Mapping[str, type[Message]]) -> list[tuple[str, Message]]:
    """The events a delivery stands for whose subject is in `kinds`, decoded: itself, or the items of a packed
    event (`shequtong_kit.packs`) in order. A payload that does not decode raises PoisonMessage."""
    return _held(event, kinds, ReceivedEvent.parse)


def pack_items(event: ReceivedEvent, *, peek: bool = False) -> list[tuple[str, Message]] | None:
    """Every event a packed delivery stands for, as (subject, message) in order, whatever their subjects —
    for a consumer that reads subjects by pattern (`issues.issue.<transition>`), not from a table; None when
    the delivery is not a pack. A pack that does not decode raises PoisonMessage (`peek`: gives [])."""
    pack = PACKS.get(event.subject)
    if pack is None:
        return None
    held = event.peek(pack.message) if peek else event.parse(pack.message)
    return [] if held is None else list(pack.items(held))


def route(
    table: dict[str, tuple[type[Message], Callable[[AsyncSession, Any, ReceivedEvent], Awaitable[None]]]],
) -> Handler:
    """A handler that parses each subject's payload into its message type and calls its function (for a
    packed event, the functions of the events it holds, one after the other)."""
    kinds = {subject: cls for subject, (cls, _) in table.items()}

    async def handle(session: AsyncSession, event: ReceivedEvent) -> None:
        for subject, message in opened(event, kinds):
            await table[subject][1](session, message, event)

    return handle


class ConsumerRunner:
    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        spec: ConsumerSpec,
        clock: Clock | None = None,
        linger: float = 0.0,
    ) -> None:
        self._js = js
        self._sessions = sessions
        self.spec = spec
        # After a batch shorter than `spec.batch`: wait this long so the next batch gathers the events of
        # those milliseconds (one transaction for them instead of one each). See ServiceSettings.
        self._linger = linger
        self._clock = clock or SystemClock()
        self._stopping = asyncio.Event()
        # Crash injection for the kit's own fault tests; never set in real deployments.
        self._crash_after_commit = os.environ.get("SHEQUTONG_FAULT_CONSUMER_CRASH_AFTER_COMMIT") == "1"
        self._tracer = tracer("shequtong.consumer")
        m = meter("shequtong.consumer")
        self._deliveries = m.create_counter("consumer_deliveries_total", description="messages delivered")
        self._redeliveries = m.create_counter("consumer_redeliveries_total", description="messages redelivered")
        self._dead = m.create_counter("consumer_dead_letters_total", description="messages sent to the DLQ")
        self._duplicates = m.create_counter("consumer_duplicates_total", description="already-handled ids skipped")
        self._lag = 0
        m.create_observable_gauge(
            "consumer_lag", callbacks=[self._observe_lag], description="messages pending for the durable"
        )
        self._attrs = {"consumer": spec.name, "stream": spec.stream}
        # Series exist from the start (at zero): "no redeliveries" is a reading, not missing data.
        for counter in (self._deliveries, self._redeliveries, self._dead, self._duplicates):
            counter.add(0, self._attrs)

    def _observe_lag(self, _options: Any) -> list[Any]:
        from opentelemetry.metrics import Observation

        return [Observation(self._lag, self._attrs)]

    async def _ensure_consumer(self) -> None:
        await ensure_stream(self._js, self.spec.stream)
        await ensure_stream(self._js, DLQ_STREAM)
        config = ConsumerConfig(
            durable_name=self.spec.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.spec.ack_wait,
            max_deliver=self.spec.max_deliver,
            max_ack_pending=self.spec.max_ack_pending,
            filter_subjects=list(self.spec.subjects),
        )
        try:
            # Creates the durable, or updates an existing one to this spec (a new version's extra filter
            # subjects take effect from here on); a setting the server cannot change is logged below.
            await self._js.add_consumer(self.spec.stream, config)
        except Exception as exc:
            log.info(
                "consumer exists with other settings; binding to it",
                extra={"consumer": self.spec.name, "error": str(exc)},
            )

    async def run(self) -> None:
        await self._ensure_consumer()
        sub = await self._js.pull_subscribe_bind(durable=self.spec.name, stream=self.spec.stream)
        # Two batches may be out at once (one handled, the next fetched): both within max_ack_pending.
        batch = max(1, min(self.spec.batch, self.spec.max_ack_pending // 2))
        loop = asyncio.get_running_loop()
        lag_read_at = -LAG_INTERVAL
        upcoming: asyncio.Task[list[Msg]] | None = None
        try:
            while not self._stopping.is_set():
                messages = await (upcoming or self._fetch(sub, batch))
                upcoming = None
                if len(messages) == batch and not self._stopping.is_set():
                    # Under load the next batch travels while this one is handled; it waits behind it, so
                    # order is kept. A short batch is not followed at once: the linger below gathers more.
                    upcoming = asyncio.ensure_future(self._fetch(sub, batch))
                if messages:
                    await self.handle_batch(messages)
                if not messages or loop.time() - lag_read_at >= LAG_INTERVAL:
                    lag_read_at = loop.time()
                    try:
                        info = await sub.consumer_info()
                        self._lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
                    except Exception:  # noqa: S110 - lag is best effort
                        pass
                if messages and len(messages) < batch and self._linger > 0:
                    await asyncio.sleep(self._linger)
        finally:
            if upcoming is not None:
                await self._release(upcoming)

    async def _fetch(self, sub: Any, batch: int) -> list[Msg]:
        try:
            return list(await sub.fetch(batch=batch, timeout=1.0))
        except TimeoutError:
            return []
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("fetch failed", extra={"consumer": self.spec.name, "error": type(exc).__name__})
            await asyncio.sleep(1.0)
            return []

    async def _release(self, upcoming: asyncio.Task[list[Msg]]) -> None:
        """On the way out, a batch fetched and not handled goes back at once (nak), not after ack_wait."""
        if not upcoming.done():
            upcoming.cancel()
        # Best effort: a nak that fails leaves the batch to ack_wait, as a crash would.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            for msg in await upcoming:
                await msg.nak()

    def stop(self) -> None:
        self._stopping.set()

    def _event(self, msg: Msg) -> ReceivedEvent:
        headers = dict(msg.headers or {})
        metadata = msg.metadata
        return ReceivedEvent(
            id=headers.get("ce-id") or headers.get("Nats-Msg-Id") or f"{metadata.stream}:{metadata.sequence.stream}",
            subject=msg.subject,
            ce_type=headers.get("ce-type", ""),
            source=headers.get("ce-source", ""),
            time=headers.get("ce-time") or self._clock.now().isoformat(),
            payload=msg.data,
            headers=headers,
            delivery=int(metadata.num_delivered),
            stored_at=metadata.timestamp,
        )

    async def handle_batch(self, messages: Sequence[Msg]) -> None:
        """Handles one fetched batch: its effects commit together, then each message is settled."""
        events = [self._event(msg) for msg in messages]
        self._deliveries.add(len(events), self._attrs)
        redelivered = sum(1 for event in events if event.delivery > 1)
        if redelivered:
            self._redeliveries.add(redelivered, self._attrs)
        outcomes = await self.apply_batch(events)
        if self._crash_after_commit and any(outcome is True for outcome in outcomes):
            log.warning("fault injection: consumer exits between commit and ack")
            os._exit(9)
        for msg, event, outcome in zip(messages, events, outcomes, strict=True):
            try:
                await self._settle(msg, event, outcome)
            except Exception as exc:
                # Left unacked: redelivered after ack_wait, and the inbox knows whether it was handled.
                log.warning(
                    "could not settle a message",
                    extra={"consumer": self.spec.name, "event_id": event.id, "error": type(exc).__name__},
                )

    async def _settle(self, msg: Msg, event: ReceivedEvent, outcome: Outcome) -> None:
        """Ack what committed (or had committed before); nak or dead-letter what failed."""
        if outcome is True or outcome is False:
            if outcome is False:
                self._duplicates.add(1, self._attrs)
            await self._ack(msg)
            return
        if isinstance(outcome, PoisonMessage):
            await self._dead_letter(msg, event, str(outcome))
            return
        if event.delivery >= self.spec.max_deliver:
            await self._dead_letter(msg, event, f"gave up after {event.delivery} deliveries: {outcome!r}")
            return
        delay = self.spec.backoff[min(event.delivery - 1, len(self.spec.backoff) - 1)]
        log.warning(
            "handler failed; will retry",
            extra={
                "consumer": self.spec.name,
                "event_id": event.id,
                "subject": event.subject,
                "delivery": event.delivery,
                "retry_in": delay,
                "error": type(outcome).__name__,
            },
        )
        await msg.nak(delay=delay)

    async def _ack(self, msg: Msg) -> None:
        await msg.ack()

    @contextlib.contextmanager
    def _span(self, event: ReceivedEvent) -> Iterator[trace.Span]:
        """The CONSUMER span of one event's handling, continuing the producer's trace."""
        # No trace context in the headers (an event written outside any span): a root span.
        producer = propagate.extract(event.headers) if "traceparent" in event.headers else None
        producer_span = trace.get_current_span(producer).get_span_context()
        with self._tracer.start_as_current_span(
            f"{event.subject} process",
            context=producer,
            kind=SpanKind.CONSUMER,
            links=[Link(producer_span)] if producer_span.is_valid else None,
            attributes={
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": event.subject,
                "messaging.message.id": event.id,
                "messaging.consumer.group.name": self.spec.name,
                "messaging.message.delivery_count": event.delivery,
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except PoisonMessage as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                raise
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise

    async def apply_batch(self, events: Sequence[ReceivedEvent]) -> list[Outcome]:
        """Handles each event once, in order, committing the batch's effects and inbox rows together.

        Returns one outcome per event: True (handled now), False (this consumer had handled that id
        before) or the exception its handler raised (nothing of that event was committed).
        """
        outcomes: list[Outcome | None] = [None] * len(events)
        first: dict[str, int] = {}
        todo: list[int] = []
        repeats: list[int] = []
        for index, event in enumerate(events):
            if event.id in first:
                repeats.append(index)  # a second copy of an id inside this batch (a late republish)
            else:
                first[event.id] = index
                todo.append(index)
        await self._run(events, todo, outcomes)
        retry = []
        for index in repeats:
            if outcomes[first[events[index].id]] is True or outcomes[first[events[index].id]] is False:
                outcomes[index] = False
            else:
                retry.append(index)
        if retry:
            for index, outcome in zip(retry, await self.apply_batch([events[i] for i in retry]), strict=True):
                outcomes[index] = outcome
        return [outcome if outcome is not None else RuntimeError("unsettled") for outcome in outcomes]

    async def _run(self, events: Sequence[ReceivedEvent], todo: list[int], outcomes: list[Outcome | None]) -> None:
        """Commits `todo` (indexes into `events`, distinct ids) in as few transactions as failures allow.

        A handler that raises rolls back the whole attempt; its event keeps the exception, the events
        before it are committed again without it (a fresh session, so no after_commit hook of the
        failed attempt survives) and the events after it follow in the next attempt.
        """
        while todo:
            try:
                handled_before, failed = await self._transaction([events[i] for i in todo])
            except Exception:
                # Not a handler's failure (the commit failed, the connection broke, the database
                # refused the inbox rows): one transaction per event sorts it out.
                for index in todo:
                    outcomes[index] = await self._apply_outcome(events[index])
                return
            for position in handled_before:
                outcomes[todo[position]] = False
            if failed is None:
                for position, index in enumerate(todo):
                    if position not in handled_before:
                        outcomes[index] = True
                return
            at, exc = failed
            outcomes[todo[at]] = exc
            before = [index for position, index in enumerate(todo[:at]) if position not in handled_before]
            if before:
                await self._run(events, before, outcomes)
            todo = [index for position, index in enumerate(todo) if position > at and position not in handled_before]

    async def _transaction(self, batch: Sequence[ReceivedEvent]) -> tuple[set[int], tuple[int, Exception] | None]:
        """One transaction: claims the batch's ids in the inbox (one INSERT … ON CONFLICT DO NOTHING
        RETURNING), runs the handlers of the claimed ones in order, commits only if all succeeded.

        Returns the positions this consumer had handled before (their inbox rows exist, committed by an
        earlier transaction) and, if a handler raised, its position and exception (rolled back)."""
        failed: tuple[int, Exception] | None = None
        handled_before: set[int] = set()
        async with self._sessions() as session:
            try:
                async with session.begin():
                    claimed = await self._claim(session, batch)
                    handled_before = {position for position, event in enumerate(batch) if event.id not in claimed}
                    flush_each = self.spec.flush_each or len(batch) == 1
                    defer_flush(session, not flush_each)
                    if self.spec.prefetch is not None:
                        todo = [event for position, event in enumerate(batch) if position not in handled_before]
                        await self.spec.prefetch(session, todo)
                    for position, event in enumerate(batch):
                        if position in handled_before:
                            continue
                        try:
                            with self._span(event):
                                await self.spec.handler(session, event)
                                # Flushed inside the event's span: a constraint its writes break is its own.
                                if flush_each and (session.new or session.dirty or session.deleted):
                                    await session.flush()
                        except Exception as exc:
                            if not flush_each:
                                # The error may come from an earlier event's writes flushed by this
                                # handler's query: one transaction per event finds whose it is.
                                raise
                            failed = (position, exc)
                            raise _RollBack from exc
                    await write_later(session)
                    if self.spec.before_commit is not None:
                        await self.spec.before_commit(session)
                    await write_deferred(session)
            except _RollBack:
                pass
        return handled_before, failed

    async def _claim(self, session: AsyncSession, batch: Sequence[ReceivedEvent]) -> set[str]:
        """Inserts the inbox rows of `batch`; returns the ids inserted now (the others existed).

        A concurrent transaction holding one of these ids makes this one wait for its outcome, so
        exactly one of two concurrent deliveries of an id runs the handler."""
        connection = await session.connection()
        now = self._clock.now()
        if connection.dialect.name == "postgresql":
            # One statement of fixed text whatever the batch size (compiled once, prepared once per connection).
            result = await _CLAIM_POSTGRES.rows(
                session, {"consumer": self.spec.name, "ids": [event.id for event in batch], "now": now}
            )
        else:
            rows = [{"consumer": self.spec.name, "event_id": event.id, "handled_at": now} for event in batch]
            inserted = await session.execute(
                sqlite.insert(inbox)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
                .returning(inbox.c.event_id)
            )
            result = list(inserted)
        return {row[0] for row in result}

    async def _apply_outcome(self, event: ReceivedEvent) -> Outcome:
        try:
            with self._span(event):
                return await self._apply(event)
        except Exception as exc:
            return exc

    async def _apply(self, event: ReceivedEvent) -> bool:
        """Handle once, alone in its transaction: False when this consumer had already handled the id."""
        async with self._sessions() as session:
            try:
                async with session.begin():
                    seen = await session.execute(
                        select(inbox.c.event_id).where(inbox.c.consumer == self.spec.name, inbox.c.event_id == event.id)
                    )
                    if seen.first() is not None:
                        return False
                    await session.execute(
                        insert(inbox).values(consumer=self.spec.name, event_id=event.id, handled_at=self._clock.now())
                    )
                    if self.spec.prefetch is not None:
                        await self.spec.prefetch(session, [event])
                    await self.spec.handler(session, event)
                    if self.spec.before_commit is not None:
                        await self.spec.before_commit(session)
            except IntegrityError:
                # A concurrent delivery of the same id committed first; only the inbox race lands here
                # if the handler's own constraints are idempotent too.
                async with self._sessions() as check:
                    again = await check.execute(
                        select(inbox.c.event_id).where(inbox.c.consumer == self.spec.name, inbox.c.event_id == event.id)
                    )
                    if again.first() is not None:
                        return False
                raise
        return True

    async def _dead_letter(self, msg: Msg, event: ReceivedEvent, reason: str) -> None:
        headers = {k: v for k, v in event.headers.items() if k != "Nats-Msg-Id"}
        headers.update(
            {
                "dlq-reason": reason[:500],
                "dlq-consumer": self.spec.name,
                "dlq-delivery": str(event.delivery),
                "Nats-Msg-Id": f"dlq:{self.spec.name}:{event.id}",
            }
        )
        await self._js.publish(f"dlq.{event.subject}", event.payload, headers=headers, timeout=5)
        await msg.term()
        self._dead.add(1, self._attrs)
        log.error(
            "event dead-lettered",
            extra={
                "consumer": self.spec.name,
                "event_id": event.id,
                "subject": event.subject,
                "reason": reason[:200],
            },
        )
