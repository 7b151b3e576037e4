"""Durable pull consumers with an inbox: a redelivered event changes nothing the second time.

Each message is handled in one database transaction together with the inbox row that records its id,
then acked. Transient failures are `nak`ed with a growing delay; a poison message (or one that has used
up its deliveries) is copied to `dlq.<subject>` and terminated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shequtong_kit.clock import Clock, SystemClock
from shequtong_kit.db import inbox
from shequtong_kit.nats_io import DLQ_STREAM, ensure_stream
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

    def parse(self, cls: type[M]) -> M:
        try:
            message = cls.FromString(self.payload)
        except DecodeError as exc:
            raise PoisonMessage(f"cannot decode {self.ce_type} as {cls.DESCRIPTOR.full_name}") from exc
        return message

    @property
    def occurred_at(self) -> datetime:
        return datetime.fromisoformat(self.time)


Handler = Callable[[AsyncSession, ReceivedEvent], Awaitable[None]]


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
    batch: int = 64


def route(
    table: dict[str, tuple[type[Message], Callable[[AsyncSession, Any, ReceivedEvent], Awaitable[None]]]],
) -> Handler:
    """A handler that parses each subject's payload into its message type and calls its function."""

    async def handle(session: AsyncSession, event: ReceivedEvent) -> None:
        entry = table.get(event.subject)
        if entry is None:
            return  # a subject we filter for but do not (yet) care about
        cls, fn = entry
        await fn(session, event.parse(cls), event)

    return handle


class ConsumerRunner:
    def __init__(
        self,
        js: JetStreamContext,
        sessions: async_sessionmaker[AsyncSession],
        spec: ConsumerSpec,
        clock: Clock | None = None,
    ) -> None:
        self._js = js
        self._sessions = sessions
        self.spec = spec
        self._clock = clock or SystemClock()
        self._stopping = asyncio.Event()
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
            await self._js.add_consumer(self.spec.stream, config)
        except Exception as exc:
            log.info(
                "consumer exists with other settings; binding to it",
                extra={"consumer": self.spec.name, "error": str(exc)},
            )

    async def run(self) -> None:
        await self._ensure_consumer()
        sub = await self._js.pull_subscribe_bind(durable=self.spec.name, stream=self.spec.stream)
        polls = 0
        while not self._stopping.is_set():
            try:
                messages = await sub.fetch(batch=self.spec.batch, timeout=1.0)
            except TimeoutError:
                messages = []
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("fetch failed", extra={"consumer": self.spec.name, "error": type(exc).__name__})
                await asyncio.sleep(1.0)
                continue
            for msg in messages:
                await self._handle(msg)
            polls += 1
            if polls % 10 == 0 or not messages:
                try:
                    info = await sub.consumer_info()
                    self._lag = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
                except Exception:  # noqa: S110 - lag is best effort
                    pass

    def stop(self) -> None:
        self._stopping.set()

    def _event(self, msg: Msg) -> ReceivedEvent:
        headers = dict(msg.headers or {})
        return ReceivedEvent(
            id=headers.get("ce-id")
            or headers.get("Nats-Msg-Id")
            or f"{msg.metadata.stream}:{msg.metadata.sequence.stream}",
            subject=msg.subject,
            ce_type=headers.get("ce-type", ""),
            source=headers.get("ce-source", ""),
            time=headers.get("ce-time", self._clock.now().isoformat()),
            payload=msg.data,
            headers=headers,
            delivery=int(msg.metadata.num_delivered),
        )

    async def _handle(self, msg: Msg) -> None:
        event = self._event(msg)
        self._deliveries.add(1, self._attrs)
        if event.delivery > 1:
            self._redeliveries.add(1, self._attrs)
        producer = propagate.extract(event.headers)
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
        ) as span:
            try:
                handled = await self._apply(event)
                if not handled:
                    self._duplicates.add(1, self._attrs)
                await msg.ack()
            except PoisonMessage as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                await self._dead_letter(msg, event, str(exc))
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                if event.delivery >= self.spec.max_deliver:
                    await self._dead_letter(msg, event, f"gave up after {event.delivery} deliveries: {exc!r}")
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
                        "error": type(exc).__name__,
                    },
                )
                await msg.nak(delay=delay)

    async def _apply(self, event: ReceivedEvent) -> bool:
        """Handle once: False when this consumer had already handled the event id."""
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
                    await self.spec.handler(session, event)
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
