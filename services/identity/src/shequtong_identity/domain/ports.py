"""What the domain needs from the outside world, as interfaces (adapters live in shequtong_identity.sms)."""

from __future__ import annotations

from typing import Protocol


class SmsSender(Protocol):
    """Sends one text message. Raises `shequtong_kit.errors.Unavailable` when it cannot; never logs the number."""

    async def send(self, phone: str, text: str, *, purpose: str, code: str) -> None: ...
