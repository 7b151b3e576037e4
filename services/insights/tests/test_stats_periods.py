"""Exact quantiles, the Poisson tail and local-day periods."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from fractions import Fraction

import pytest
from shequtong_insights.domain.periods import Period, day_start, local_day, period_days, period_ending
from shequtong_insights.domain.stats import median, poisson_upper_tail, quantile, summarise

from shequtong_kit.errors import InvalidArgument


def test_median_of_odd_and_even_counts() -> None:
    assert median([5.0, 1.0, 3.0]) == 3.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5


def test_quantile_interpolates_between_ranks() -> None:
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert quantile(values, 0.9) == pytest.approx(9.1)
    assert quantile(values, 0.0) == 1.0
    assert quantile(values, 1.0) == 10.0
    with pytest.raises(ValueError):
        quantile([], 0.5)


def test_summary_in_hours() -> None:
    summary = summarise([3600.0, 7200.0, 36000.0])
    assert summary.count == 3
    assert summary.median_hours == 2.0
    assert summary.max_hours == 10.0
    assert summary.mean_hours == pytest.approx(13 / 3, abs=1e-4)
    assert summarise([]).count == 0


def _exact_tail(k: int, lam: Fraction, terms: int = 200) -> float:
    # 1 - sum_{i<k} e^-lam lam^i / i!, with the series in exact rationals and one float exp at the end.
    lower = sum(lam**i / math.factorial(i) for i in range(k))
    return 1.0 - math.exp(-float(lam)) * float(lower)


@pytest.mark.parametrize(("k", "lam"), [(1, 0.5), (3, 2.0), (5, 1.25), (10, 4.0), (2, 7.5)])
def test_poisson_tail_matches_the_definition(k: int, lam: float) -> None:
    assert poisson_upper_tail(k, lam) == pytest.approx(_exact_tail(k, Fraction(lam)), rel=1e-9)


def test_poisson_tail_edges_and_tiny_tails() -> None:
    assert poisson_upper_tail(0, 3.0) == 1.0
    assert poisson_upper_tail(3, 0.0) == 0.0
    # P(X >= 8 | 0.25): about 0.25^8/8! e^-0.25, far below what 1 - CDF could resolve.
    tiny = poisson_upper_tail(8, 0.25)
    assert 0 < tiny < 1e-8
    assert tiny == pytest.approx(math.exp(-0.25) * 0.25**8 / math.factorial(8), rel=0.05)
    assert poisson_upper_tail(5, 1.0) > poisson_upper_tail(6, 1.0)


def test_local_days_at_utc_plus_8() -> None:
    late_utc = datetime(2026, 3, 4, 17, 30, tzinfo=UTC)  # 01:30 on 5 March in Shanghai
    assert local_day(late_utc, 480) == date(2026, 3, 5)
    assert local_day(late_utc, 0) == date(2026, 3, 4)
    assert day_start(date(2026, 3, 5), 480) == datetime(2026, 3, 4, 16, 0, tzinfo=UTC)


def test_period_ends_with_today_and_previous_is_adjacent() -> None:
    now = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)  # 10:00 on 10 March in Shanghai
    period = period_ending(now, 7, 480)
    assert (period.first_day, period.last_day) == (date(2026, 3, 4), date(2026, 3, 10))
    assert period.contains(now)
    assert period.end == datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
    before = period.previous()
    assert before.end == period.start and before.days == 7
    assert list(Period(date(2026, 1, 1), 3, 0).each_day()) == [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]


def test_period_days_bounds() -> None:
    assert period_days(0) == 30
    assert period_days(366) == 366
    for bad in (-1, 367):
        with pytest.raises(InvalidArgument) as err:
            period_days(bad)
        assert err.value.code == "period_days_invalid"
