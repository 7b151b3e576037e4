"""The district grid platform misbehaving while dispatches arrive: down for a burst (503), slower than the
grid gateway's deadline, and answering 500 after it has stored the case. Each time the gateway's circuit
opens (seen on GET /v1/grid/circuits), and once the platform behaves again it closes and every ticket
is delivered exactly once — counted at the platform (the simulator), which holds one case per dispatch.

tests/integration/test_grid.py covers a plain outage of 200 dispatches on the shared system; this covers
the three failure shapes back to back, on the suite's system with a 3 s platform deadline."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from integration.helpers import create_region_tree, eventually, publish_events

from resilience.faults import Private, record
from shequtong.events.v1 import issues_events_pb2 as issues_ev

# Bounded by the whole suite's time, not pytest's 300 s default: the system starts once (inside the first
# test's setup) and a loaded 2-core machine can take minutes over it.
pytestmark = pytest.mark.timeout(900)

PER_FAULT = 40
DEADLINE_S = 3  # GRID_HTTP_TIMEOUT_SECONDS of the suite's stack (conftest.STACK_ENV)
NORMAL = {"down": False, "slow_seconds": 0, "fail_next": 0, "error_rate": 0, "fail_after_create": False}
SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("down (503)", {"down": True}),
    (f"slower than the {DEADLINE_S}s deadline", {"slow_seconds": DEADLINE_S * 2}),
    ("500 after storing the case", {"error_rate": 1.0, "fail_after_create": True}),
]


@pytest.fixture(scope="module")
def sim(private_stack: Private) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=private_stack.stack.simulator_url, timeout=30) as client:
        yield client
        client.post("/_sim/mode", json=NORMAL)


def dispatch(p: Private, neighbourhood_id: str, marker: str, count: int) -> list[str]:
    """Dispatch requests as the issues service publishes them; returns their dispatch ids."""
    requests = [
        issues_ev.IssueDispatchRequested(
            issue_id=str(uuid.uuid4()),
            dispatch_id=str(uuid.uuid4()),
            neighbourhood_id=neighbourhood_id,
            category_code="exposed_rubbish",
            grid_service_code="01-02",
            description=f"{marker}-{n} 小区门口暴露垃圾",
            address="宝山区淞南路1号",
            lat=31.4,
            lon=121.48,
            requested_by="cadre-1",
        )
        for n in range(count)
    ]
    publish_events(p.stack.nats_url, [("issues.issue.dispatch_requested", r) for r in requests])
    return [r.dispatch_id for r in requests]


def tickets(p: Private, district_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"district_id": district_id, "page_size": "100", **({"cursor": cursor} if cursor else {})}
        reply = p.api.get("/v1/grid/tickets", params=params, headers=p.ops_headers)
        assert reply.status_code == 200, reply.text
        found += reply.json()["items"]
        cursor = reply.json()["next_cursor"]
        if not cursor:
            return found


def circuit(p: Private) -> dict[str, Any]:
    reply = p.api.get("/v1/grid/circuits", headers=p.ops_headers)
    assert reply.status_code == 200, reply.text
    return dict(reply.json()[0])


def test_a_platform_down_slow_or_failing_gets_every_ticket_once(private_stack: Private, sim: httpx.Client) -> None:
    p = private_stack
    area = create_region_tree(p.api, p.ops_headers, "F" + uuid.uuid4().hex[:6])
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    # the grid gateway knows the neighbourhood and the platform answers: one ticket goes through
    [first] = dispatch(p, area["residential"], f"warm-{uuid.uuid4().hex[:6]}", 1)
    eventually(
        lambda: any(t["dispatch_id"] == first and t["state"] == "sent" for t in tickets(p, area["district"])),
        timeout=60,
        what="a first ticket sent",
    )
    failures: list[str] = []
    for shape, mode in SHAPES:
        marker = f"gf{uuid.uuid4().hex[:8]}"
        stats_before = sim.get("/_sim/stats").json()
        assert sim.post("/_sim/mode", json={**NORMAL, **mode}).status_code == 200
        dispatch_ids = set(dispatch(p, area["residential"], marker, PER_FAULT))
        opened = eventually(
            lambda: (c := circuit(p))["state"] in ("open", "half_open") and c,
            timeout=60,
            interval=0.2,
            what=f"the circuit opening ({shape})",
        )
        assert sim.post("/_sim/mode", json=NORMAL).status_code == 200
        cleared = time.monotonic()

        def all_sent(ids: set[str] = dispatch_ids) -> list[dict[str, Any]] | None:
            mine = [t for t in tickets(p, area["district"]) if t["dispatch_id"] in ids]
            return mine if len(mine) == len(ids) and all(t["state"] == "sent" for t in mine) else None

        sent = eventually(all_sent, timeout=180, interval=0.5, what=f"every ticket sent after {shape}")
        eventually(lambda: circuit(p)["state"] == "closed", timeout=30, interval=0.2, what=f"closed ({shape})")
        recovered = time.monotonic() - cleared

        cases = [
            r
            for r in sim.get("/requests.json", params={"start_date": since}).json()
            if (r.get("description") or "").startswith(f"{marker}-")
        ]
        per_dispatch = Counter(r["description"].split(" ", 1)[0] for r in cases)
        wanted = {f"{marker}-{n}" for n in range(PER_FAULT)}
        lost = len(wanted - set(per_dispatch))
        dup = sum(k - 1 for k in per_dispatch.values())
        external = {t["external_id"] for t in sent}
        stats = sim.get("/_sim/stats").json()
        deltas = {k: stats[k] - stats_before.get(k, 0) for k in stats if isinstance(stats[k], int)}
        print(
            f"\n{shape}: circuit {opened['state']} after {opened['consecutive_failures']} failures"
            f" ({(opened.get('last_error') or '')[:80]}); simulator: "
            + ", ".join(f"{k}={v}" for k, v in deltas.items() if v and k.startswith(("posts", "answered", "dup")))
        )
        record(f"grid platform {shape}: cases", PER_FAULT, lost, dup, recovered)
        if (lost, dup) != (0, 0):
            failures.append(f"{shape}: {lost} lost, {dup} duplicated")
        if external != {r["service_request_id"] for r in cases} or None in external:
            failures.append(f"{shape}: the tickets' platform ids are not the platform's cases")
    assert not failures, failures
