"""The JetStream side of a rebuild: stream positions, resetting insights' durable consumers to the
start of their streams, and how far each has come.

A reset deletes each durable and creates it again with the same name and configuration as the kit
creates it (deliver all, explicit ack), so the running consumer loops — which fetch by stream and
durable name — carry on from sequence 1 without a restart.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from shequtong_kit.consumer import ConsumerSpec
from shequtong_kit.errors import Unavailable
from shequtong_kit.nats_io import ensure_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    stream: str
    consumer: str
    target: int
    acked: int
    pending: int
    caught_up: bool


def consumer_config(spec: ConsumerSpec) -> ConsumerConfig:
    """Exactly what the kit's ConsumerRunner creates for `spec`."""
    return ConsumerConfig(
        durable_name=spec.name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=spec.ack_wait,
        max_deliver=spec.max_deliver,
        max_ack_pending=spec.max_ack_pending,
        filter_subjects=list(spec.subjects),
    )


class Replayer:
    def __init__(self, specs: Sequence[ConsumerSpec], jetstream: Callable[[], Any]) -> None:
        self.specs = list(specs)
        self._jetstream = jetstream

    def _js(self) -> Any:
        js = self._jetstream()
        if js is None:
            raise Unavailable("not connected to NATS yet", code="unavailable")
        return js

    async def positions(self) -> dict[str, int]:
        js = self._js()
        result: dict[str, int] = {}
        for spec in self.specs:
            try:
                info = await js.stream_info(spec.stream)
                result[spec.stream] = int(info.state.last_seq or 0)
            except NotFoundError:
                result[spec.stream] = 0
        return result

    async def reset(self) -> None:
        js = self._js()
        for spec in self.specs:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(spec.stream, spec.name)
            await ensure_stream(js, spec.stream)
            await js.add_consumer(spec.stream, consumer_config(spec))
            log.info("consumer reset to the start of its stream", extra={"consumer": spec.name, "stream": spec.stream})

    async def ensure(self) -> None:
        """Creates any durable that is missing (e.g. a reset interrupted between delete and create)."""
        js = self._js()
        for spec in self.specs:
            try:
                await js.consumer_info(spec.stream, spec.name)
            except NotFoundError:
                await ensure_stream(js, spec.stream)
                await js.add_consumer(spec.stream, consumer_config(spec))
                log.warning("missing consumer recreated", extra={"consumer": spec.name})

    async def progress(self, targets: dict[str, Any]) -> list[Progress]:
        js = self._js()
        result = []
        for spec in self.specs:
            target = int(targets.get(spec.stream, 0))
            try:
                info = await js.consumer_info(spec.stream, spec.name)
            except NotFoundError:
                result.append(Progress(spec.stream, spec.name, target, 0, 0, target == 0))
                continue
            acked = int(info.ack_floor.stream_seq or 0) if info.ack_floor else 0
            pending = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            # Filtered consumers skip the stream's other subjects: nothing pending also means caught up.
            caught_up = target == 0 or acked >= target or pending == 0
            result.append(Progress(spec.stream, spec.name, target, acked, pending, caught_up))
        return result
