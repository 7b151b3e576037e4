"""Pushed updates from the grid: the signature scheme and what a pushed body must hold. Pure.

    X-Grid-Timestamp: <unix seconds>
    X-Grid-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{raw body}")>

and the body carries `api_key`. A timestamp outside the replay window is refused even with a
good signature, so a captured request cannot be played back later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl


class Refused(Exception):
    """The request is not from the platform, too old, or malformed; nothing is recorded."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def sign(secret: str, timestamp: str | int, body: bytes) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return "sha256=" + hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float, window_seconds: float
) -> None:
    """Raises Refused unless the signature is ours and fresh. Compared in constant time."""
    if not timestamp or not signature:
        raise Refused(401, "signature_missing", "X-Grid-Timestamp and X-Grid-Signature are required")
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise Refused(401, "signature_invalid", "X-Grid-Timestamp must be Unix seconds")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace")):
        raise Refused(401, "signature_invalid", "the signature does not match the body")
    if abs(now - int(timestamp)) > window_seconds:
        raise Refused(401, "signature_stale", "the timestamp is outside the replay window")


def check_api_key(expected: str, given: object) -> None:
    if not isinstance(given, str) or not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise Refused(403, "api_key_invalid", "api_key is missing or not valid")


@dataclass(frozen=True)
class IncomingUpdate:
    """One servicerequestupdates item (pushed or polled), parsed."""

    update_id: str
    service_request_id: str
    status: str
    updated_at: datetime
    description: str
    media_url: str
    external_status_code: str
    agency: str = ""


def parse_datetime(raw: object) -> datetime:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("updated_datetime is required")
    value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("updated_datetime must carry a zone")
    return value


def _text(data: dict[str, object], key: str, limit: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float):
        raise ValueError(f"{key} must be text")
    return str(value).strip()[:limit]


def parse_update(data: dict[str, object]) -> IncomingUpdate:
    """Raises ValueError on anything we cannot use (without echoing the content)."""
    update_id = _text(data, "update_id", 200)
    service_request_id = _text(data, "service_request_id", 200)
    if not update_id or not service_request_id:
        raise ValueError("update_id and service_request_id are required")
    return IncomingUpdate(
        update_id=update_id,
        service_request_id=service_request_id,
        status=_text(data, "status", 40).lower(),
        updated_at=parse_datetime(data.get("updated_datetime")).astimezone(UTC),
        description=_text(data, "description", 4000),
        media_url=_text(data, "media_url", 1000),
        external_status_code=_text(data, "external_status_code", 80).upper(),
        agency=_text(data, "agency_responsible", 200),
    )


def parse_body(body: bytes, content_type: str) -> dict[str, object]:
    """The pushed body: JSON (what the platform sends) or a form (FixMyStreet's shape)."""
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "body_invalid", "the body must be UTF-8 JSON or a form") from None
    if not isinstance(data, dict):
        raise Refused(400, "body_invalid", "the body must be one update object")
    return data
