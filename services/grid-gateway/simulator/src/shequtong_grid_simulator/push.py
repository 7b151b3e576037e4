"""Pushing status updates to the receiver (our grid gateway), signed, in the background.

Wire format of one delivery (one update per request):

    POST <SIMULATOR_WEBHOOK_URL>
    Content-Type: application/json; charset=utf-8
    X-Grid-Timestamp: <unix time in whole seconds, decimal>
    X-Grid-Signature: sha256=<lower-case hex HMAC-SHA256(key=secret, msg=timestamp + "." + raw body)>
    X-Grid-Delivery: <id of this delivery, the same on every retry>   (informational, unsigned)
    X-Grid-Attempt: <1, 2, ...>                                        (informational, unsigned)

    {"update_id": ..., "service_request_id": ..., "status": "open"|"closed",
     "updated_datetime": ..., "description": ..., "media_url": ..., "external_status_code": ...,
     "api_key": <SIMULATOR_WEBHOOK_API_KEY>}

The secret and the body are used as UTF-8 bytes; the body bytes signed are exactly the bytes
sent. Every attempt is signed afresh with the current time, so a receiver may reject stale
timestamps. Neither Open311 nor FixMyStreet signs callbacks: this scheme is ours.

One worker sends deliveries oldest first, retrying a failed one (network error or any non-2xx
answer) with exponential back-off before moving on, so the API never waits on the receiver and
updates arrive in order unless the out_of_order mode reorders them on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-Grid-Timestamp"
SIGNATURE_HEADER = "X-Grid-Signature"
T = TypeVar("T")


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Grid-Signature value for `body` sent at `timestamp`."""
    message = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance_seconds: int = 300,
) -> bool:
    """What a receiver should do: recompute, compare in constant time, bound the clock skew."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def encode_body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def arrange(batch: Sequence[T], *, duplicate: bool, reverse: bool) -> list[T]:
    """Apply the misbehaviour modes to one batch of updates before it is queued."""
    items = list(reversed(batch)) if reverse else list(batch)
    if duplicate:
        items = [item for item in items for _ in range(2)]
    return items


@dataclass(frozen=True)
class _Delivery:
    url: str
    payload: dict[str, Any]
    delivery_id: str
    generation: int


class WebhookPusher:
    def __init__(
        self,
        *,
        secret: str,
        api_key: str,
        max_attempts: int,
        backoff_seconds: float,
        timeout_seconds: float,
        record: Callable[[str], None],
    ) -> None:
        self._secret = secret
        self._api_key = api_key
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._record = record
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        # Bumped by clear(): a delivery queued before a reset is dropped, even mid-retry.
        self._generation = 0

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def submit(self, url: str, payloads: Sequence[dict[str, Any]]) -> None:
        """Queue deliveries; returns at once. Must be called from the running event loop."""
        for payload in payloads:
            self._queue.put_nowait(_Delivery(url, dict(payload), "D" + secrets.token_hex(8), self._generation))
        # Started lazily so an app driven without lifespan events (ASGI test transport) pushes too.
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="webhook-pusher")

    async def wait_idle(self) -> None:
        """Until every queued delivery was delivered or abandoned; callers bound the wait."""
        await self._queue.join()

    def clear(self) -> int:
        self._generation += 1
        dropped = 0
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
            dropped += 1
        return dropped

    async def aclose(self) -> None:
        if self.pending:
            log.warning("pending pushes dropped at shutdown", extra={"pending": self.pending})
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._deliver(delivery)
            except Exception:
                log.exception("push worker error", extra={"delivery": delivery.delivery_id})
            finally:
                self._queue.task_done()

    async def _deliver(self, delivery: _Delivery) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        body = encode_body({**delivery.payload, "api_key": self._api_key})
        update_id = delivery.payload.get("update_id")
        for attempt in range(1, self._max_attempts + 1):
            if delivery.generation != self._generation:
                return
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(self._secret, timestamp, body),
                "X-Grid-Delivery": delivery.delivery_id,
                "X-Grid-Attempt": str(attempt),
            }
            self._record("push_attempts")
            try:
                response = await self._client.post(delivery.url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    self._record("updates_pushed")
                    log.info(
                        "update pushed",
                        extra={
                            "update_id": update_id,
                            "attempt": attempt,
                            "http_status": response.status_code,
                        },
                    )
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            self._record("push_attempts_failed")
            log.warning("push failed", extra={"update_id": update_id, "attempt": attempt, "reason": reason})
            if attempt < self._max_attempts:
                await asyncio.sleep(min(self._backoff * 2 ** (attempt - 1), 30.0))
        self._record("pushes_abandoned")
        log.error("push abandoned", extra={"update_id": update_id, "attempts": self._max_attempts})
