"""Operators' view of one journey: a single trace from the resident's tap to the grid platform, the
metrics that matter on every service's metrics port, and logs without personal data."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from dashboards import metric_names
from shequtong_stack import GRPC_SERVICES, Stack

from integration.helpers import eventually, metric_value
from integration.people import Community, new_neighbourhood_with_people
from shequtong_kit.testing import OtlpCollector

SPAN_SERVER, SPAN_CLIENT, SPAN_PRODUCER, SPAN_CONSUMER = 2, 3, 4, 5
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "shequtong.json"


@pytest.fixture(scope="module")
def journey(api: httpx.Client, ops_headers: dict[str, str]) -> dict[str, Any]:
    """A resident reports a problem, the on-duty cadre acknowledges and dispatches it to the grid."""
    community = new_neighbourhood_with_people(api, ops_headers)
    resident, cadre = community.residents[0], community.cadre
    reply = api.post(
        "/v1/issues",
        json={
            "neighbourhood_id": community.neighbourhood_id,
            "category_code": "rubbish",
            "title": "垃圾没人清",
            "description": "5号楼门口垃圾堆积",
            "location": {"address": "淞南十村5号楼", "lat": 31.39, "lon": 121.48},
        },
        headers=resident.headers,
    )
    assert reply.status_code == 201, reply.text
    issue = reply.json()
    assert api.post(f"/v1/issues/{issue['id']}/acknowledge", json={"note": "收到"}, headers=cadre.headers).is_success
    dispatched = api.post(f"/v1/issues/{issue['id']}/dispatch", json={"note": "派单"}, headers=cadre.headers)
    assert dispatched.status_code == 200, dispatched.text
    dispatch_id = dispatched.json()["dispatch_id"]

    def ticket() -> dict[str, Any] | None:
        items = api.get(
            "/v1/grid/tickets", params={"dispatch_id": dispatch_id}, headers=community.district_staff.headers
        ).json()["items"]
        return items[0] if items and items[0].get("external_id") else None

    return {"community": community, "issue": issue, "ticket": eventually(ticket, what="the ticket on the grid")}


def _by_id(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["span_id"]: s for s in spans}


def _ancestors(span: dict[str, Any], index: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    chain = [span]
    while chain[-1]["parent_span_id"] and chain[-1]["parent_span_id"] in index:
        chain.append(index[chain[-1]["parent_span_id"]])
    return chain


def test_one_trace_from_the_tap_to_the_grid_platform(journey: dict[str, Any], collector: OtlpCollector) -> None:
    def chain() -> list[dict[str, Any]] | None:
        spans = collector.snapshot()
        index = _by_id(spans)
        posts = [
            s
            for s in spans
            if s["service"] == "grid-gateway" and s["kind"] == SPAN_CLIENT and s["name"].startswith("POST")
        ]
        for post in posts:
            path = _ancestors(post, index)
            services_kinds = [(s["service"], s["kind"]) for s in path]
            if ("grid-gateway", SPAN_CONSUMER) in services_kinds and ("api-gateway", SPAN_SERVER) in services_kinds:
                return path
        return None

    path = eventually(chain, timeout=30, what="a trace from the gateway to the simulator POST")
    assert len({s["trace_id"] for s in path}) == 1
    walk = [(s["service"], s["kind"]) for s in reversed(path)]  # root first
    order = [
        ("api-gateway", SPAN_SERVER),  # the resident's HTTP request
        ("issues", SPAN_SERVER),  # gRPC into the issues service
        ("issues", SPAN_PRODUCER),  # the outbox relay publishing dispatch_requested
        ("grid-gateway", SPAN_CONSUMER),  # the grid gateway handling it
        ("grid-gateway", SPAN_CLIENT),  # the HTTP POST to the grid platform
    ]
    positions = [walk.index(step) for step in order]
    assert positions == sorted(positions), walk
    producer = next(s for s in path if s["kind"] == SPAN_PRODUCER)
    assert producer["attributes"]["messaging.destination.name"] == "issues.issue.dispatch_requested"
    consumer = next(s for s in path if s["kind"] == SPAN_CONSUMER)
    assert consumer["parent_span_id"] == producer["span_id"]
    # the issues service's statements are spans of the same trace (SQLAlchemy instrumentation)
    statements = [
        s
        for s in collector.snapshot()
        if s["trace_id"] == path[0]["trace_id"] and s["service"] == "issues" and "db.system" in s["attributes"]
    ]
    assert statements, "database spans in the trace"


def _exported(system: Stack, name: str) -> set[str]:
    text = httpx.get(f"http://127.0.0.1:{system.metrics_ports[name]}/metrics", timeout=5).text
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_service_exports_the_named_series(journey: dict[str, Any], system: Stack) -> None:
    ports = system.metrics_ports
    for svc in ("identity", "issues", "grid-gateway"):
        assert metric_value(ports[svc], "rpc_server_requests_total") > 0, svc
    assert metric_value(ports["api-gateway"], "http_server_request_duration_seconds_count") > 0
    assert metric_value(ports["grid-gateway"], "consumer_deliveries_total") > 0
    assert metric_value(ports["grid-gateway"], "grid_deliveries_total") > 0
    assert metric_value(ports["issues"], "issues_opened_total") > 0
    assert metric_value(ports["issues"], "issues_time_to_acknowledge_seconds_count") > 0
    for svc in (s.name for s in GRPC_SERVICES):
        assert "outbox_backlog" in _exported(system, svc) or svc == "insights", svc
        assert "db_pool_connections_in_use" in _exported(system, svc), svc


def test_the_dashboard_queries_only_series_that_exist(journey: dict[str, Any], system: Stack) -> None:
    exported: set[str] = set()
    for name in [*(s.name for s in GRPC_SERVICES), "api-gateway"]:
        exported |= _exported(system, name)
    wanted = metric_names(json.loads(DASHBOARD.read_text()))
    assert wanted, "the dashboard queries something"
    assert wanted <= exported, sorted(wanted - exported)


def test_logs_carry_no_personal_data(journey: dict[str, Any], system: Stack) -> None:
    community: Community = journey["community"]
    people = [community.secretary, community.cadre, *community.residents, community.other_resident]
    logs = "\n".join(system.logs().values())
    assert logs, "the services wrote logs"
    for person in people:
        assert person.id_number not in logs
        assert person.phone not in logs
    ours = "\n".join(text for name, text in system.logs().items() if name != "grid-simulator")
    records = [json.loads(line) for line in ours.splitlines() if line.startswith("{")]
    shapeless = [r for r in records if not {"time", "level", "service", "message"} <= set(r)]
    assert records and not shapeless, shapeless[:3]
    assert any("trace_id" in r and "span_id" in r for r in records), "log lines inside requests carry trace ids"
