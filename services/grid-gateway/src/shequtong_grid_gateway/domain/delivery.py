"""Delivery rules: what an answer from the platform means, when to try again, the circuit
breaker that stops hammering a platform that is down, and the send-rate bucket. Pure: every
decision takes the time (and the randomness) it needs as an argument."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

# --- what an answer means ---------------------------------------------------------------------


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    # Try again later: timeouts, network errors, 5xx, 408, 425, 429.
    TRANSIENT = "transient"
    # Our credentials are refused (401/403): not the ticket's fault, so it is kept and retried
    # while the breaker counts it as the platform failing us.
    UNAUTHORIZED = "unauthorized"
    # The platform refuses this ticket (other 4xx): retrying the same request cannot help.
    REJECTED = "rejected"


def classify_status(http_status: int) -> Verdict:
    if 200 <= http_status < 300:
        return Verdict.ACCEPTED
    if http_status in (401, 403):
        return Verdict.UNAUTHORIZED
    if http_status in (408, 425, 429) or http_status >= 500:
        return Verdict.TRANSIENT
    if 400 <= http_status < 500:
        return Verdict.REJECTED
    return Verdict.TRANSIENT  # 1xx/3xx from an Open311 POST: a misbehaving proxy, try again


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    rng: random.Random | None = None,
    retry_after: float | None = None,
) -> float:
    """Exponential back-off with 'equal jitter': half the step fixed, half random, so replicas
    retrying together spread out. `attempt` is the number of failed attempts so far (1 = the
    first failure). A Retry-After from the platform is honoured, up to the cap."""
    if attempt < 1:
        return 0.0
    step = min(cap, base * (2 ** min(attempt - 1, 30)))
    pick = (rng or random).uniform(step / 2, step)
    if retry_after is not None and retry_after > 0:
        pick = max(pick, min(retry_after, cap))
    return pick


def should_give_up(created_at: datetime, now: datetime, give_up_after: timedelta) -> bool:
    """A ticket still undelivered after the window fails (and the issue is told) instead of
    waiting forever; a zero window means never give up."""
    return give_up_after > timedelta(0) and now - created_at >= give_up_after


# --- circuit breaker --------------------------------------------------------------------------

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Per platform: opens after `threshold` consecutive failures, lets one probe through after
    `cooldown`, closes again when the probe succeeds (and reopens when it fails)."""

    platform: str
    threshold: int
    cooldown: timedelta
    state: str = CLOSED
    consecutive_failures: int = 0
    opened_at: datetime | None = None
    last_error: str = ""
    probe_in_flight: bool = False

    @property
    def retry_at(self) -> datetime | None:
        return self.opened_at + self.cooldown if self.state == OPEN and self.opened_at else None

    def allow(self, now: datetime) -> bool:
        """Whether one send may start now (in half-open, only one at a time: the probe)."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if self.opened_at is not None and now < self.opened_at + self.cooldown:
                return False
            self.state = HALF_OPEN
            self.probe_in_flight = False
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def wait_seconds(self, now: datetime) -> float:
        """How long until `allow` may say yes (0 when it may now)."""
        retry = self.retry_at
        if retry is None:
            return 0.0
        return max(0.0, (retry - now).total_seconds())

    def record_success(self) -> bool:
        """The platform answered (accepted or refused the ticket itself). True when this closed
        a circuit that was not closed (the backlog may go now)."""
        recovered = self.state != CLOSED
        self.state = CLOSED
        self.consecutive_failures = 0
        self.opened_at = None
        self.probe_in_flight = False
        return recovered

    def record_failure(self, now: datetime, error: str = "") -> None:
        self.consecutive_failures += 1
        self.last_error = error
        self.probe_in_flight = False
        if self.state == HALF_OPEN or self.consecutive_failures >= self.threshold:
            self.state = OPEN
            self.opened_at = now

    def release_probe(self) -> None:
        """A probe slot taken but not used (nothing was due)."""
        self.probe_in_flight = False

    @property
    def gauge(self) -> int:
        return {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}[self.state]


# --- send rate --------------------------------------------------------------------------------


@dataclass
class TokenBucket:
    """At most `rate` sends per second on average, bursts up to `burst`. Times are seconds on
    any monotonic scale."""

    rate: float
    burst: float
    tokens: float = -1.0
    last: float | None = None

    def take(self, now: float) -> float:
        """Takes one token; returns how long the caller must wait before sending (0 = now)."""
        if self.rate <= 0:
            return 0.0
        if self.last is None:
            self.last = now
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= 1
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate
