"""SMS senders (the domain's `SmsSender` port): the production HTTP gateway, and the development sink.

None of them logs the phone number or the text (it holds the code).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shequtong_identity.domain.ports import SmsSender
from shequtong_identity.settings import IdentitySettings
from shequtong_kit.errors import Unavailable

log = logging.getLogger(__name__)


class OutboxFileSender:
    """DEVELOPMENT ONLY: appends each message as a JSON line to a local file instead of sending it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = asyncio.Lock()

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as sink:
            sink.write(line + "\n")

    async def send(self, phone: str, text: str, *, purpose: str, code: str) -> None:
        line = json.dumps(
            {
                "sink": "development — not sent",
                "to": phone,
                "purpose": purpose,
                "code": code,
                "text": text,
                "at": datetime.now(UTC).isoformat(),
            },
            ensure_ascii=False,
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        log.info("sms written to the development outbox", extra={"purpose": purpose})


class HttpSender:
    """POSTs {"to", "text", "purpose", "params": {"code"}} as JSON with a bearer token; 2xx means accepted."""

    def __init__(self, url: str, token: str, timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None = None):
        self.url = url
        self._client = httpx.AsyncClient(
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"} if token else {},
            transport=transport,
        )

    async def send(self, phone: str, text: str, *, purpose: str, code: str) -> None:
        body = {"to": phone, "text": text, "purpose": purpose, "params": {"code": code}}
        try:
            reply = await self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            log.warning("sms gateway unreachable", extra={"error": type(exc).__name__})
            raise Unavailable("the SMS gateway is unavailable; try again later", code="sms_unavailable") from None
        if reply.status_code >= 300:
            log.warning("sms gateway refused a message", extra={"status": reply.status_code})
            raise Unavailable("the SMS gateway is unavailable; try again later", code="sms_unavailable")

    async def close(self) -> None:
        await self._client.aclose()


def sender_from_settings(settings: IdentitySettings) -> SmsSender | None:
    """The configured sender; None when neither is set (code sign-in answers `sms_not_configured`)."""
    if settings.sms_http_url:
        return HttpSender(settings.sms_http_url, settings.sms_http_token)
    if settings.sms_outbox_file:
        log.warning("SMS codes go to a local development file, not to phones", extra={"sink": "file"})
        return OutboxFileSender(settings.sms_outbox_file)
    return None
