"""A per-principal token bucket for writes that reach every neighbour (posts, comments): pure, the
caller passes the time. Buckets live in one process; with N replicas a person gets at most N times the
rate, which still stops a script flooding a board."""

from __future__ import annotations

from dataclasses import dataclass, field

from shequtong_kit.errors import ResourceExhausted


@dataclass
class TokenBuckets:
    per_minute: float
    burst: int
    max_keys: int = 100_000
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def take(self, key: str, now: float) -> None:
        """Spends one token of `key`'s bucket, or raises ResourceExhausted `rate_limited`."""
        if self.per_minute <= 0:
            return
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.per_minute / 60.0)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) * 60.0 / self.per_minute
            raise ResourceExhausted(
                f"too many posts and comments; try again in {wait:.0f} s",
                code="rate_limited",
                retry_after_seconds=f"{wait:.0f}",
            )
        if len(self._buckets) >= self.max_keys and key not in self._buckets:
            self._buckets.clear()  # bounded memory; forgetting buckets only ever lets people post
        self._buckets[key] = (tokens - 1.0, now)
