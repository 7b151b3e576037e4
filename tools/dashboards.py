"""Generates the Grafana dashboard (deploy/grafana/shequtong.json) from one list of panels.

`python tools/dashboards.py` rewrites it; tests/integration/test_observability.py checks that every
metric a panel queries is one the services really export.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "shequtong.json"

# (row, title, unit, [(legend, PromQL)])
PANELS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    (
        "Golden signals",
        "gRPC requests per second by service",
        "reqps",
        [
            ("{{job}}", "sum by (job) (rate(rpc_server_requests_total[5m]))"),
        ],
    ),
    (
        "Golden signals",
        "gRPC error ratio by service",
        "percentunit",
        [
            (
                "{{job}}",
                'sum by (job) (rate(rpc_server_requests_total{rpc_code!="OK"}[5m]))'
                " / sum by (job) (rate(rpc_server_requests_total[5m]))",
            ),
        ],
    ),
    (
        "Golden signals",
        "gRPC p99 latency by method",
        "s",
        [
            (
                "{{rpc_method}}",
                "histogram_quantile(0.99, sum by (le, rpc_method) (rate(rpc_server_duration_seconds_bucket[5m])))",
            ),
        ],
    ),
    (
        "Golden signals",
        "API requests per second and 5xx",
        "reqps",
        [
            ("all", "sum(rate(http_server_duration_milliseconds_count[5m]))"),
            ("5xx", 'sum(rate(http_server_duration_milliseconds_count{http_status_code=~"5.."}[5m]))'),
        ],
    ),
    (
        "Golden signals",
        "API p99 latency by route",
        "ms",
        [
            (
                "{{http_target}}",
                "histogram_quantile(0.99, sum by (le, http_target) "
                "(rate(http_server_duration_milliseconds_bucket[5m])))",
            ),
        ],
    ),
    (
        "Golden signals",
        "Database connections in use",
        "short",
        [
            ("{{job}}", "sum by (job) (db_pool_connections_in_use)"),
        ],
    ),
    (
        "What is stuck",
        "Outbox backlog (unsent events)",
        "short",
        [
            ("{{job}}", "sum by (job) (outbox_backlog)"),
        ],
    ),
    (
        "What is stuck",
        "Age of the oldest unsent event",
        "s",
        [
            ("{{job}}", "max by (job) (outbox_oldest_unsent_age_seconds)"),
        ],
    ),
    (
        "What is stuck",
        "Consumer lag by durable",
        "short",
        [
            ("{{consumer}}", "max by (consumer) (consumer_lag)"),
        ],
    ),
    (
        "What is stuck",
        "Redeliveries and dead letters",
        "short",
        [
            ("redelivered {{consumer}}", "sum by (consumer) (rate(consumer_redeliveries_total[5m]))"),
            ("dead-lettered {{consumer}}", "sum by (consumer) (increase(consumer_dead_letters_total[1h]))"),
        ],
    ),
    (
        "The 15-hour promise",
        "Issues opened per hour by kind of neighbourhood",
        "short",
        [
            ("{{neighbourhood_kind}}", "sum by (neighbourhood_kind) (increase(issues_opened_total[1h]))"),
        ],
    ),
    (
        "The 15-hour promise",
        "Time to acknowledge (p90) by kind",
        "s",
        [
            (
                "{{neighbourhood_kind}}",
                "histogram_quantile(0.9, sum by (le, neighbourhood_kind) "
                "(rate(issues_time_to_acknowledge_seconds_bucket[1h])))",
            ),
        ],
    ),
    (
        "The 15-hour promise",
        "SLA breaches and automatic escalations per hour",
        "short",
        [
            ("breaches", "sum(increase(issues_sla_breaches_total[1h]))"),
            ("escalations", "sum(increase(issues_auto_escalations_total[1h]))"),
        ],
    ),
    (
        "Grid platform",
        "Ticket deliveries and failures",
        "short",
        [
            ("delivered", "sum(rate(grid_deliveries_total[5m]))"),
            ("failed attempts", "sum(rate(grid_delivery_failures_total[5m]))"),
        ],
    ),
    (
        "Grid platform",
        "Circuit state (0 closed, 1 half-open, 2 open) and pending tickets",
        "short",
        [
            ("circuit", "max(grid_circuit_state)"),
            ("pending", "sum(grid_tickets_pending)"),
        ],
    ),
]


def build() -> dict[str, object]:
    panels: list[dict[str, object]] = []
    y = 0
    current_row = None
    x = 0
    for index, (row, title, unit, targets) in enumerate(PANELS):
        if row != current_row:
            if x:
                y += 8
                x = 0
            panels.append(
                {
                    "type": "row",
                    "title": row,
                    "id": 1000 + index,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                }
            )
            y += 1
            current_row = row
        panels.append(
            {
                "id": index + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "gridPos": {"h": 8, "w": 12, "x": x, "y": y},
                "targets": [
                    {"refId": chr(65 + n), "expr": expr, "legendFormat": legend}
                    for n, (legend, expr) in enumerate(targets)
                ],
            }
        )
        x = 12 if x == 0 else 0
        if x == 0:
            y += 8
    return {
        "title": "Shequtong — golden signals and the 15-hour promise",
        "uid": "shequtong-overview",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["shequtong"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                }
            ]
        },
        "panels": panels,
    }


def metric_names_in(expr: str) -> set[str]:
    """Series names in a PromQL expression: identifiers left after dropping label matchers, `by (...)`
    groupings, range selectors and function calls."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return {name for name in re.findall(r"\b([a-z_][a-z0-9_]*)\b(?!\s*\()", expr) if not name.isdigit()}


def metric_names(dashboard: dict[str, object]) -> set[str]:
    names: set[str] = set()
    for panel in dashboard["panels"]:  # type: ignore[attr-defined]
        for target in panel.get("targets", []):
            names |= metric_names_in(target["expr"])
    return names


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {OUT} ({len(PANELS)} panels)")
