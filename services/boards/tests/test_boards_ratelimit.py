"""The per-person posting bucket: pure, time passed in."""

from __future__ import annotations

import pytest
from shequtong_boards.domain.ratelimit import TokenBuckets

from shequtong_kit.errors import ResourceExhausted


def test_a_burst_then_refused_then_refilled_per_person() -> None:
    buckets = TokenBuckets(per_minute=6, burst=3)
    for _ in range(3):
        buckets.take("p:1", now=100.0)
    with pytest.raises(ResourceExhausted) as refused:
        buckets.take("p:1", now=100.0)
    assert refused.value.code == "rate_limited"
    buckets.take("p:2", now=100.0)  # another person has their own bucket
    with pytest.raises(ResourceExhausted):
        buckets.take("p:1", now=109.0)  # 6 per minute: one token every 10 s
    buckets.take("p:1", now=110.5)
    with pytest.raises(ResourceExhausted):
        buckets.take("p:1", now=110.5)


def test_the_bucket_never_holds_more_than_the_burst() -> None:
    buckets = TokenBuckets(per_minute=60, burst=2)
    buckets.take("p:1", now=0.0)
    buckets.take("p:1", now=10_000.0)
    buckets.take("p:1", now=10_000.0)
    with pytest.raises(ResourceExhausted):
        buckets.take("p:1", now=10_000.0)


def test_zero_rate_turns_it_off() -> None:
    buckets = TokenBuckets(per_minute=0, burst=0)
    for _ in range(1000):
        buckets.take("p:1", now=0.0)
