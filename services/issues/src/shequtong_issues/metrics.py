"""The issues service's own metrics (the dashboard's "15-hour promise"), recorded once the change commits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong_kit.telemetry import meter

KINDS = {1: "residential", 2: "village"}
# Up to two days, with the 15-hour promise as a boundary.
ACK_BUCKETS = [60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 12 * 3600, 15 * 3600, 24 * 3600, 48 * 3600]


class IssueMetrics:
    def __init__(self) -> None:
        self._made: dict[str, Any] | None = None

    def _m(self) -> dict[str, Any]:
        # Instruments are made on first use, after the service set up its meter provider.
        if self._made is None:
            m = meter("shequtong.issues")
            self._made = {
                "opened": m.create_counter("issues_opened_total", description="issues opened, by kind and source"),
                "ack": m.create_histogram(
                    "issues_time_to_acknowledge",
                    unit="s",
                    description="from arrival at the neighbourhood to its first response",
                    explicit_bucket_boundaries_advisory=ACK_BUCKETS,
                ),
            }
            # Series exist from the start (at zero): "none opened yet" is a reading, not missing data.
            for kind in ("residential", "village"):
                for source in ("post", "resident", "cadre"):
                    self._made["opened"].add(0, {"neighbourhood_kind": kind, "source": source})
        return self._made

    async def start(self) -> None:
        """Makes the instruments once telemetry is set up (a ServiceApp on_start hook)."""
        self._m()

    def opened(self, session: AsyncSession, kind: int, source: str) -> None:
        attrs = {"neighbourhood_kind": KINDS.get(kind, "unknown"), "source": source}
        after_commit(session, lambda: self._m()["opened"].add(1, attrs))

    def acknowledged(self, session: AsyncSession, kind: int, seconds: float) -> None:
        attrs = {"neighbourhood_kind": KINDS.get(kind, "unknown")}
        after_commit(session, lambda: self._m()["ack"].record(max(seconds, 0.0), attrs))


def after_commit(session: AsyncSession, fn: Callable[[], None]) -> None:
    """Runs `fn` if (and when) the session's transaction commits; nothing if it rolls back."""

    def run(_session: Any) -> None:
        fn()

    event.listen(session.sync_session, "after_commit", run, once=True)
