"""Counting events against limits: rates (code requests) and lock-outs (failed logins). Pure.

A `Counter` is one stored key (per phone, per client address, …). A *rate* limit refuses further events
until its window ends; a *lock-out* limit, once reached, refuses everything for `lock`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Limit:
    max_events: int
    window: timedelta
    # None: a rate (blocked until the window ends); set: a lock-out of this length once the limit is reached.
    lock: timedelta | None = None

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.window <= timedelta(0):
            raise ValueError("a limit allows at least one event in a positive window")


@dataclass(frozen=True)
class Counter:
    count: int = 0
    window_started_at: datetime | None = None
    locked_until: datetime | None = None


def _window_open(counter: Counter, limit: Limit, now: datetime) -> bool:
    return counter.window_started_at is not None and now - counter.window_started_at < limit.window


def blocked_until(counter: Counter | None, limit: Limit, now: datetime) -> datetime | None:
    """When the next event may happen, or None when it may happen now."""
    if counter is None:
        return None
    if counter.locked_until is not None and now < counter.locked_until:
        return counter.locked_until
    if limit.lock is None and _window_open(counter, limit, now) and counter.count >= limit.max_events:
        assert counter.window_started_at is not None
        return counter.window_started_at + limit.window
    return None


def record(counter: Counter | None, limit: Limit, now: datetime) -> Counter:
    """The counter after one more event (a fresh window when the last one is over)."""
    counter = counter or Counter()
    locked = counter.locked_until if counter.locked_until is not None and now < counter.locked_until else None
    if not _window_open(counter, limit, now):
        counter = Counter(0, now, locked)
    count = counter.count + 1
    if limit.lock is not None and count >= limit.max_events:
        locked = now + limit.lock
    return Counter(count, counter.window_started_at, locked)
