"""Background loops every replica runs: the SLA scheduler (breaches, unanswered feedback) and the
assignment retry. Each piece of work is claimed (issue row lock with SKIP LOCKED on PostgreSQL, unique
breach rows everywhere), so replicas share the work and nothing happens twice."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shequtong_issues.service import IssuesService
from shequtong_kit.telemetry import meter

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, service: IssuesService, interval: float, assignment_interval: float) -> None:
        self.service = service
        self.interval = interval
        self.assignment_interval = assignment_interval
        self._metrics: dict[str, Any] | None = None

    def _m(self) -> dict[str, Any]:
        if self._metrics is None:
            m = meter("shequtong.issues")
            self._metrics = {
                "scans": m.create_counter("issues_sla_scans_total", description="SLA scheduler passes"),
                "breaches": m.create_counter("issues_sla_breaches_total", description="breaches recorded"),
                "escalations": m.create_counter(
                    "issues_auto_escalations_total", description="issues escalated by the SLA policy"
                ),
                "conflicts": m.create_counter(
                    "issues_sla_claim_conflicts_total", description="breaches another replica claimed first"
                ),
                "closed": m.create_counter(
                    "issues_auto_closed_total", description="resolved issues closed without a verdict"
                ),
                "assigned": m.create_counter(
                    "issues_late_assignments_total", description="issues assigned by the retrying task"
                ),
            }
            for counter in self._metrics.values():
                counter.add(0)
        return self._metrics

    async def start(self) -> None:
        """Makes the instruments once telemetry is set up (a ServiceApp on_start hook)."""
        self._m()

    async def sla_loop(self) -> None:
        while True:
            try:
                stats = await self.service.scan_breaches_once()
                closed = await self.service.close_unanswered_once()
                m = self._m()
                m["breaches"].add(stats.breaches)
                m["escalations"].add(stats.escalations)
                m["conflicts"].add(stats.conflicts)
                m["closed"].add(closed)
                m["scans"].add(1)
                if stats.breaches or closed:
                    log.info(
                        "sla pass",
                        extra={"breaches": stats.breaches, "escalations": stats.escalations, "closed": closed},
                    )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sla pass failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self.interval)

    async def assignment_loop(self) -> None:
        while True:
            try:
                assigned = await self.service.assign_pending_once()
                if assigned:
                    self._m()["assigned"].add(assigned)
                    log.info("pending issues assigned", extra={"count": assigned})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("assignment pass failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self.assignment_interval)
