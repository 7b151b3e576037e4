"""Latency summaries: exact percentiles over bounded sample lists (runs are bounded in count)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(latencies_ms: Sequence[float], errors: int, elapsed_s: float) -> dict[str, Any]:
    ordered = sorted(latencies_ms)
    ok = len(ordered)
    total = ok + errors
    return {
        "requests": total,
        "ok": ok,
        "errors": errors,
        "error_rate": round(errors / total, 6) if total else 0.0,
        "throughput": round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": _r(percentile(ordered, 50)),
        "p95_ms": _r(percentile(ordered, 95)),
        "p99_ms": _r(percentile(ordered, 99)),
        "max_ms": _r(ordered[-1] if ordered else None),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
