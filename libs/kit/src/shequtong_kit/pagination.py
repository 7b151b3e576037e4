"""Cursor (keyset) pagination helpers: opaque cursors that encode the last row's sort key."""

from __future__ import annotations

import base64
import json
from typing import Any

from shequtong_kit.errors import InvalidArgument

DEFAULT_PAGE = 20
MAX_PAGE = 100


def page_size(requested: int, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must not be negative", code="page_size_invalid")
    return min(requested or default, maximum)


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid") from None
    if not isinstance(value, list):
        raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
    return value
