"""Periods of whole local days. Every instant is UTC inside; only the day boundaries are local.

A district counts "issues on 5 March" in its own calendar, so days start at midnight at a fixed
offset from UTC (480 minutes, China Standard Time, by default; China has no daylight saving time).
A period is `days` whole local days ending with the day of "now", today included: [start, end).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from shequtong_kit.errors import InvalidArgument

DEFAULT_PERIOD_DAYS = 30
MAX_PERIOD_DAYS = 366


@functools.cache
def zone(offset_minutes: int) -> timezone:
    return timezone(timedelta(minutes=offset_minutes))


def local_day(moment: datetime, offset_minutes: int) -> date:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; use UTC-aware datetimes")
    return moment.astimezone(zone(offset_minutes)).date()


def day_start(day: date, offset_minutes: int) -> datetime:
    """The UTC instant at which local `day` begins."""
    return datetime(day.year, day.month, day.day, tzinfo=zone(offset_minutes)).astimezone(UTC)


def period_days(requested: int) -> int:
    if requested == 0:
        return DEFAULT_PERIOD_DAYS
    if not 1 <= requested <= MAX_PERIOD_DAYS:
        raise InvalidArgument(f"period_days must be between 1 and {MAX_PERIOD_DAYS}", code="period_days_invalid")
    return requested


@dataclass(frozen=True)
class Period:
    first_day: date
    days: int
    offset_minutes: int

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=self.days - 1)

    @property
    def start(self) -> datetime:
        return day_start(self.first_day, self.offset_minutes)

    @property
    def end(self) -> datetime:
        """Exclusive: the start of the day after the last one."""
        return day_start(self.last_day + timedelta(days=1), self.offset_minutes)

    def previous(self) -> Period:
        return Period(self.first_day - timedelta(days=self.days), self.days, self.offset_minutes)

    def contains(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def each_day(self) -> Iterator[date]:
        for offset in range(self.days):
            yield self.first_day + timedelta(days=offset)


def period_ending(now: datetime, days: int, offset_minutes: int) -> Period:
    """`days` whole local days ending with today (the day of `now`)."""
    today = local_day(now, offset_minutes)
    return Period(today - timedelta(days=days - 1), days, offset_minutes)
