"""NATS JetStream: connecting with retries, idempotent stream creation, CloudEvents headers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from tenacity import retry, stop_after_delay, wait_exponential

log = logging.getLogger(__name__)

DEDUPE_WINDOW_SECONDS = 10 * 60  # longer than the relay's worst retry gap
DLQ_STREAM = "DLQ"

# One stream per producing service, named after it; consumers bind to these.
STREAMS: dict[str, list[str]] = {
    "IDENTITY": ["identity.>"],
    "BOARDS": ["boards.>"],
    "ISSUES": ["issues.>"],
    "GRID": ["grid.>"],
    "VOLUNTEERS": ["volunteers.>"],
    DLQ_STREAM: ["dlq.>"],
}


def stream_for_subject(subject: str) -> str:
    head = subject.split(".", 1)[0]
    for name, subjects in STREAMS.items():
        if any(s.split(".", 1)[0] == head for s in subjects):
            return name
    raise KeyError(f"no stream carries {subject}")


async def connect(
    url: str,
    name: str,
    connect_timeout: float = 60.0,
    disconnected_cb: Any = None,
    reconnected_cb: Any = None,
) -> NATS:
    @retry(wait=wait_exponential(multiplier=0.2, max=2), stop=stop_after_delay(connect_timeout), reraise=True)
    async def _connect() -> NATS:
        return await nats.connect(
            url,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            allow_reconnect=True,
            disconnected_cb=disconnected_cb,
            reconnected_cb=reconnected_cb,
        )

    return await _connect()


async def ensure_stream(js: JetStreamContext, name: str, subjects: Sequence[str] | None = None) -> None:
    """Create or update a stream; safe to call from every replica at every start."""
    config = StreamConfig(
        name=name,
        subjects=list(subjects or STREAMS[name]),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        duplicate_window=DEDUPE_WINDOW_SECONDS,
        max_age=30 * 24 * 3600 if name == DLQ_STREAM else 0,
    )
    try:
        await js.stream_info(name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            log.info("stream created", extra={"stream": name})
            return
        except Exception:
            # Another replica won the race; fall through to update with our config.
            await js.stream_info(name)
    await js.update_stream(config)


async def ensure_streams(js: JetStreamContext, names: Sequence[str]) -> None:
    for name in names:
        await ensure_stream(js, name)
