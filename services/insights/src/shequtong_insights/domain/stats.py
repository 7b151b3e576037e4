"""Exact summaries of durations and the Poisson tail used by the pain-point rule. Pure maths."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

HOUR = 3600.0


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between closest ranks (numpy's default, R type 7).

    The median of an even count is the mean of the two middle values.
    """
    if not values:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be in [0, 1]")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = math.ceil(position)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return quantile(values, 0.5)


@dataclass(frozen=True)
class Summary:
    """A distribution of durations, in hours (zeros when count is 0)."""

    count: int
    median_hours: float = 0.0
    p90_hours: float = 0.0
    mean_hours: float = 0.0
    max_hours: float = 0.0


def summarise(seconds: Sequence[float]) -> Summary:
    if not seconds:
        return Summary(0)
    hours = [s / HOUR for s in seconds]
    return Summary(
        count=len(hours),
        median_hours=round(median(hours), 4),
        p90_hours=round(quantile(hours, 0.9), 4),
        mean_hours=round(sum(hours) / len(hours), 4),
        max_hours=round(max(hours), 4),
    )


def _log_pmf(k: int, lam: float) -> float:
    return -lam + k * math.log(lam) - math.lgamma(k + 1)


def poisson_upper_tail(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam), accurate for tiny tails (summed upward, not 1 - CDF)."""
    if lam < 0:
        raise ValueError("lam must not be negative")
    if k <= 0:
        return 1.0
    if lam == 0:
        return 0.0
    if k > lam:
        # Terms fall from k on: sum them until they no longer change the total.
        total = 0.0
        i = k
        term = math.exp(_log_pmf(i, lam))
        while term > 0 and (term > total * 1e-16 or i < k + 5):
            total += term
            i += 1
            term *= lam / i
        return min(1.0, total)
    lower = sum(math.exp(_log_pmf(i, lam)) for i in range(k))
    return max(0.0, 1.0 - lower)
