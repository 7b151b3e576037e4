"""grid-gateway's instruments (OpenTelemetry meter, exported in Prometheus format)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry.metrics import Observation

from shequtong_grid_gateway.domain.delivery import CircuitBreaker
from shequtong_kit.telemetry import meter


class GridMetrics:
    def __init__(self, breakers: Callable[[], dict[str, CircuitBreaker]]) -> None:
        m = meter("shequtong.grid")
        self._breakers = breakers
        self.deliveries = m.create_counter(
            "grid_deliveries_total", description="tickets the grid platform took (sent once each)"
        )
        self.failures = m.create_counter(
            "grid_delivery_failures_total",
            description="failed delivery attempts, by kind (transient, unauthorized, rejected)",
        )
        self.tickets_failed = m.create_counter("grid_tickets_failed_total", description="tickets that ended failed")
        self.updates = m.create_counter(
            "grid_updates_total", description="grid status updates received, by source and outcome"
        )
        self.webhook_refused = m.create_counter(
            "grid_webhook_refused_total", description="pushed updates refused (signature, api key, body)"
        )
        self.polls = m.create_counter("grid_polls_total", description="polling rounds, by result")
        # Series exist from the start (at zero), so dashboards and alerts see "none yet", not "no data".
        for counter in (self.deliveries, self.failures, self.tickets_failed, self.webhook_refused):
            counter.add(0)
        self.delivery_seconds = m.create_histogram(
            "grid_delivery_duration_seconds", unit="s", description="time of one POST requests.json"
        )
        self.pending = 0
        m.create_observable_gauge(
            "grid_circuit_state", callbacks=[self._observe_circuits], description="0 closed, 1 half-open, 2 open"
        )
        m.create_observable_gauge(
            "grid_tickets_pending", callbacks=[self._observe_pending], description="tickets waiting for delivery"
        )

    def initialise(self, platforms: list[str]) -> None:
        """Zero series from the start, so a dashboard's queries find them before the first event."""
        for platform in platforms:
            self.deliveries.add(0, {"platform": platform})
            for kind in ("transient", "unauthorized", "rejected"):
                self.failures.add(0, {"platform": platform, "kind": kind})
        for code in ("platform_rejected", "service_code_unknown", "location_missing", "delivery_abandoned"):
            self.tickets_failed.add(0, {"code": code})

    def _observe_circuits(self, _options: Any) -> list[Observation]:
        return [Observation(b.gauge, {"platform": name}) for name, b in self._breakers().items()]

    def _observe_pending(self, _options: Any) -> list[Observation]:
        return [Observation(self.pending)]
