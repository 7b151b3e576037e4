"""Injectable clocks: UTC and timezone-aware always, movable in tests.

Services take a `Clock` instead of calling `datetime.now()`, so SLA rules can be tested by moving time.
Across processes (integration tests) `OffsetFileClock` reads an offset in seconds from a file the test
writes; it is only used when `SHEQUTONG_CLOCK_OFFSET_FILE` is set, never in production settings.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to (unit tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when


class OffsetFileClock:
    """System time plus an offset (seconds) read from a file, re-read when the file changes."""

    def __init__(self, path: str | Path) -> None:
        self._path = Path(path)
        self._mtime = -1.0
        self._offset = 0.0

    def _refresh(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._offset = 0.0
            return
        if mtime != self._mtime:
            text = self._path.read_text().strip()
            self._offset = float(text or 0)
            self._mtime = mtime

    def now(self) -> datetime:
        self._refresh()
        return datetime.now(UTC) + timedelta(seconds=self._offset)


def clock_from_env() -> Clock:
    path = os.environ.get("SHEQUTONG_CLOCK_OFFSET_FILE")
    return OffsetFileClock(path) if path else SystemClock()


def ensure_aware(value: datetime) -> datetime:
    """SQLite drops tzinfo; everything we store is UTC, so reattach it."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
