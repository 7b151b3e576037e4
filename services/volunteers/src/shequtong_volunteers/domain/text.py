"""Small validation helpers shared by the rules: trimmed text with limits, id lists, lists of tags."""

from __future__ import annotations

from collections.abc import Iterable

from shequtong_kit.errors import InvalidArgument


def required(value: str, field: str, maximum: int, code: str | None = None) -> str:
    cleaned = value.strip()
    if not cleaned or len(cleaned) > maximum:
        raise InvalidArgument(f"{field} is required (at most {maximum} characters)", code=code or f"{field}_invalid")
    return cleaned


def optional(value: str, field: str, maximum: int, code: str | None = None) -> str:
    cleaned = value.strip()
    if len(cleaned) > maximum:
        raise InvalidArgument(f"{field} must be at most {maximum} characters", code=code or f"{field}_invalid")
    return cleaned


def tags(values: Iterable[str], field: str, max_items: int = 20, max_length: int = 40) -> list[str]:
    """Trimmed, de-duplicated (first spelling kept, compared case-insensitively), order preserved."""
    seen: set[str] = set()
    result: list[str] = []
    for value in values:
        cleaned = " ".join(value.split())
        if not cleaned:
            continue
        if len(cleaned) > max_length:
            raise InvalidArgument(f"each of {field} must be at most {max_length} characters", code=f"{field}_invalid")
        key = cleaned.casefold()
        if key not in seen:
            seen.add(key)
            result.append(cleaned)
    if len(result) > max_items:
        raise InvalidArgument(f"at most {max_items} {field}", code=f"{field}_invalid")
    return result


def ids(values: Iterable[str], field: str, max_items: int = 200) -> list[str]:
    """Distinct non-empty ids, order preserved."""
    result: list[str] = []
    for value in values:
        cleaned = value.strip()
        if not cleaned or len(cleaned) > 64:
            raise InvalidArgument(f"{field} contains an invalid id", code=f"{field}_invalid")
        if cleaned not in result:
            result.append(cleaned)
    if len(result) > max_items:
        raise InvalidArgument(f"at most {max_items} {field}", code=f"{field}_invalid")
    return result
