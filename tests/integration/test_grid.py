"""The grid bridge across real processes: dispatch requests (published to NATS as the issues
service publishes them) become tickets that reach the grid-platform simulator exactly once,
through outages and refusals; the grid's updates come back pushed (signed) or polled, once
each and in order, as grid.ticket.* events; operators watch it all through the API gateway."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from shequtong_stack import Stack

from integration.helpers import create_region_tree, eventually, metric_value, publish_events, stream_messages
from shequtong.events.v1 import grid_events_pb2 as grid_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_kit.testing import OtlpCollector

DISPATCH_REQUESTED = "issues.issue.dispatch_requested"
SPAN_CLIENT, SPAN_CONSUMER = 3, 5
WEBHOOK = "/v1/grid/servicerequestupdates"
EVENT_TYPES = {
    "grid.ticket.sent": grid_ev.TicketSent,
    "grid.ticket.status_changed": grid_ev.TicketStatusChanged,
    "grid.ticket.failed": grid_ev.TicketFailed,
    "grid.ticket.identified": grid_ev.TicketIdentified,
}


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim(system: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=system.simulator_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def area(api: httpx.Client, ops_headers: dict[str, str]) -> dict[str, str]:
    return create_region_tree(api, ops_headers, "G" + uuid.uuid4().hex[:6])


@pytest.fixture
def sim_modes(sim: httpx.Client, system: Stack) -> Iterator[Any]:
    """Changes the simulator's behaviour for one test and always puts it back."""

    def change(**mode: Any) -> None:
        reply = sim.post("/_sim/mode", json=mode)
        assert reply.status_code == 200, reply.text

    yield change
    change(
        down=False,
        slow_seconds=0,
        fail_next=0,
        error_rate=0,
        fail_after_create=False,
        response_mode="id",
        duplicate_updates=False,
        out_of_order=False,
        webhook_url=f"{system.grid_gateway_url}{WEBHOOK}",
    )


def dispatch(system: Stack, neighbourhood_id: str, count: int = 1, **fields: Any) -> list[str]:
    """Publishes dispatch requests as the issues service does; returns their dispatch ids."""
    requests = []
    for n in range(count):
        values: dict[str, Any] = {
            "issue_id": str(uuid.uuid4()),
            "dispatch_id": str(uuid.uuid4()),
            "neighbourhood_id": neighbourhood_id,
            "category_code": "exposed_rubbish",
            "grid_service_code": "01-02",
            "description": f"小区门口暴露垃圾 #{n}",
            "address": "宝山区淞南路1号",
            "lat": 31.4,
            "lon": 121.48,
            "requested_by": "cadre-1",
        }
        values.update(fields)
        requests.append(issues_ev.IssueDispatchRequested(**values))
    publish_events(system.nats_url, [(DISPATCH_REQUESTED, r) for r in requests])
    return [r.dispatch_id for r in requests]


def tickets(api: httpx.Client, headers: dict[str, str], **filters: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**filters, "page_size": "100", **({"cursor": cursor} if cursor else {})}
        reply = api.get("/v1/grid/tickets", params=params, headers=headers)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        found.extend(body["items"])
        cursor = body["next_cursor"]
        if not cursor:
            return found


def ticket_of(api: httpx.Client, headers: dict[str, str], dispatch_id: str) -> dict[str, Any] | None:
    found = tickets(api, headers, dispatch_id=dispatch_id)
    assert len(found) <= 1
    return found[0] if found else None


def detail(api: httpx.Client, headers: dict[str, str], ticket_id: str) -> dict[str, Any]:
    reply = api.get(f"/v1/grid/tickets/{ticket_id}", headers=headers)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def sent_tickets(api: httpx.Client, headers: dict[str, str], dispatch_ids: list[str]) -> list[dict[str, Any]]:
    def probe() -> list[dict[str, Any]] | None:
        found = [ticket_of(api, headers, d) for d in dispatch_ids]
        if all(t and t["state"] == "sent" and t["external_id"] for t in found):
            return found  # type: ignore[return-value]
        return None

    return eventually(probe, timeout=30, what="tickets sent to the grid")


def grid_events(system: Stack, ticket_ids: set[str]) -> dict[str, list[tuple[str, Any]]]:
    """grid.ticket.* events per ticket, in the order they were written (ce-id is a UUIDv7)."""
    per_ticket: dict[str, list[tuple[str, str, Any]]] = {t: [] for t in ticket_ids}
    for subject, headers, payload in stream_messages(system.nats_url, "GRID", "grid.ticket.>"):
        message = EVENT_TYPES[subject].FromString(payload)
        if message.ticket_id in per_ticket:
            per_ticket[message.ticket_id].append((headers["ce-id"], subject, message))
    return {t: [(s, m) for _, s, m in sorted(found, key=lambda e: e[0])] for t, found in per_ticket.items()}


def advance(sim: httpx.Client, external_id: str, to: str) -> list[dict[str, Any]]:
    reply = sim.post(f"/_sim/advance/{external_id}", params={"to": to})
    assert reply.status_code == 200, reply.text
    return list(reply.json()["updates"])


# --- journeys ---------------------------------------------------------------------------------


def test_a_dispatch_reaches_the_grid_once_and_its_status_comes_back(
    api: httpx.Client,
    system: Stack,
    ops_headers: dict[str, str],
    sim: httpx.Client,
    area: dict[str, str],
    collector: OtlpCollector,
) -> None:
    request = issues_ev.IssueDispatchRequested(
        issue_id=str(uuid.uuid4()),
        dispatch_id=str(uuid.uuid4()),
        neighbourhood_id=area["residential"],
        category_code="exposed_rubbish",
        grid_service_code="01-02",
        description="<p>淞南十村门口暴露垃圾</p>",
        address="宝山区淞南路1号",
        media_urls=["https://img.example/rubbish.jpg"],
    )
    # the same request delivered three times (the relay retrying after the dedupe window)
    trace_id = secrets.token_hex(16)
    traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    publish_events(system.nats_url, [(DISPATCH_REQUESTED, request)] * 3, traceparent=traceparent)
    [ticket] = sent_tickets(api, ops_headers, [request.dispatch_id])
    assert ticket["issue_id"] == request.issue_id and ticket["service_code"] == "01-02"
    # the area was created just now: a ticket may arrive before the gateway has heard of its
    # neighbourhood, and gets its district when it does (GridGatewayService.neighbourhood_known)
    eventually(
        lambda: detail(api, ops_headers, ticket["id"])["district_id"] == area["district"],
        what="the ticket's district",
    )
    case = sim.get(f"/requests/{ticket['external_id']}.json").json()[0]
    assert case["description"] == "淞南十村门口暴露垃圾" and case["media_url"] == "https://img.example/rubbish.jpg"
    assert len(tickets(api, ops_headers, issue_id=request.issue_id)) == 1

    pushed = advance(sim, ticket["external_id"], "closed")
    eventually(
        lambda: detail(api, ops_headers, ticket["id"])["state"] == "closed", what="the grid's closure on the ticket"
    )
    shown = detail(api, ops_headers, ticket["id"])
    assert [u["update_id"] for u in shown["updates"]] == [u["update_id"] for u in pushed]
    assert [u["state"] for u in shown["updates"]] == ["accepted", "dispatched", "handled", "closed"]
    assert all(u["outcome"] == "applied" for u in shown["updates"])
    assert [(a["number"], a["outcome"]) for a in shown["delivery_attempts"]] == [(1, "sent")]

    def all_events() -> list[tuple[str, Any]] | None:
        found = grid_events(system, {ticket["id"]})[ticket["id"]]
        return found if len(found) >= 5 else None

    found = eventually(all_events, what="grid.ticket.* events")
    assert [s for s, _ in found] == ["grid.ticket.sent"] + ["grid.ticket.status_changed"] * 4
    assert found[0][1].external_id == ticket["external_id"] and found[0][1].issue_id == request.issue_id
    assert [m.state for _, m in found[1:]] == ["accepted", "dispatched", "handled", "closed"]
    assert [m.grid_update_id for _, m in found[1:]] == [u["update_id"] for u in pushed]

    # one trace from the producer's message to the POST to the grid platform
    def post_under_consumer() -> list[dict[str, Any]] | None:
        spans = [s for s in collector.snapshot() if s["trace_id"] == trace_id]
        index = {s["span_id"]: s for s in spans}
        # the HTTP client span (the service's SQL statements are CLIENT spans too)
        posts = [s for s in spans if s["service"] == "grid-gateway" and s["kind"] == SPAN_CLIENT]
        for post in (s for s in posts if s["name"].startswith("POST")):
            chain = [post]
            while chain[-1]["parent_span_id"] in index:
                chain.append(index[chain[-1]["parent_span_id"]])
            if any(s["kind"] == SPAN_CONSUMER and s["service"] == "grid-gateway" for s in chain):
                return chain
        return None

    chain = eventually(post_under_consumer, timeout=30, what="the POST to the grid inside the dispatch's trace")
    assert chain[0]["name"].startswith("POST") and chain[1]["name"] == "grid.ticket deliver"


def test_two_hundred_dispatches_during_an_outage_arrive_exactly_once(
    api: httpx.Client,
    system: Stack,
    ops_headers: dict[str, str],
    sim: httpx.Client,
    sim_modes: Any,
) -> None:
    area = create_region_tree(api, ops_headers, "O" + uuid.uuid4().hex[:6])
    marker = f"outage-{uuid.uuid4().hex[:8]}"
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    port = system.metrics_ports["grid-gateway"]
    delivered_before = metric_value(port, "grid_deliveries_total")
    sim_modes(down=True)
    dispatch_ids = dispatch(system, area["residential"], 200, description=f"{marker} 暴露垃圾")

    def circuit() -> dict[str, Any]:
        reply = api.get("/v1/grid/circuits", headers=ops_headers)
        assert reply.status_code == 200, reply.text
        return dict(reply.json()[0])

    eventually(lambda: circuit()["state"] == "open", timeout=20, what="the circuit opening while the grid is down")
    waiting = eventually(
        lambda: (found := tickets(api, ops_headers, district_id=area["district"])) and len(found) == 200 and found,
        timeout=60,
        interval=1.0,
        what="200 tickets queued",
    )
    assert {t["state"] for t in waiting} == {"pending"}
    assert circuit()["pending_tickets"] >= 200
    assert metric_value(port, "grid_circuit_state") >= 1  # open, or half-open while probing
    assert metric_value(port, "grid_delivery_failures_total", kind="transient") >= 1
    assert sim.get("/_sim/stats").json()["answered_down"] > 0

    sim_modes(down=False)

    def all_sent() -> list[dict[str, Any]] | None:
        found = tickets(api, ops_headers, district_id=area["district"], state="sent")
        return found if len(found) == 200 else None

    sent = eventually(all_sent, timeout=60, interval=1.0, what="every ticket sent after the grid returned")
    external_ids = {t["external_id"] for t in sent}
    assert len(external_ids) == 200 and None not in external_ids
    assert {t["dispatch_id"] for t in sent} == set(dispatch_ids)
    created = [
        r for r in sim.get("/requests.json", params={"start_date": since}).json() if r["description"].startswith(marker)
    ]
    assert len(created) == 200, "the grid holds exactly one case per dispatch"
    assert {r["service_request_id"] for r in created} == external_ids
    assert circuit()["state"] == "closed"
    assert metric_value(port, "grid_deliveries_total") >= delivered_before + 200
    assert metric_value(port, "grid_circuit_state") == 0


def test_duplicate_and_out_of_order_updates_change_each_ticket_once_and_in_order(
    api: httpx.Client,
    system: Stack,
    ops_headers: dict[str, str],
    sim: httpx.Client,
    area: dict[str, str],
    sim_modes: Any,
) -> None:
    made = sent_tickets(api, ops_headers, dispatch(system, area["village"], 3))
    port = system.metrics_ports["grid-gateway"]
    duplicates_before = metric_value(port, "grid_updates_total", outcome="duplicate")
    sim_modes(duplicate_updates=True, out_of_order=True)
    pushed: dict[str, list[str]] = {t["id"]: [] for t in made}
    for stage in ("dispatched", "closed"):
        for t in made:
            pushed[t["id"]] += [u["update_id"] for u in advance(sim, t["external_id"], stage)]

        def settled(stage: str = stage) -> bool:
            shown = [detail(api, ops_headers, t["id"]) for t in made]
            return all(s["state"] == stage and len(s["updates"]) == len(pushed[s["id"]]) for s in shown)

        eventually(settled, timeout=20, what=f"every ticket {stage}, every update recorded once")

    for t in made:
        shown = detail(api, ops_headers, t["id"])
        ids = [u["update_id"] for u in shown["updates"]]
        assert ids == pushed[t["id"]], "each update recorded exactly once, listed in the grid's order"
        applied = [u for u in shown["updates"] if u["outcome"] == "applied"]
        assert {u["outcome"] for u in shown["updates"]} <= {"applied", "stale"}
        assert applied[-1]["state"] == "closed"

        def changes(ticket: dict[str, Any] = t, count: int = len(applied)) -> list[Any] | None:
            found = [
                m for s, m in grid_events(system, {ticket["id"]})[ticket["id"]] if s == "grid.ticket.status_changed"
            ]
            return found if len(found) >= count else None

        events = eventually(changes, what="status events")
        # one event per applied update, none for a duplicate or an older one, never backwards
        assert [m.grid_update_id for m in events] == [u["update_id"] for u in applied]
        assert [int(m.grid_update_id) for m in events] == sorted({int(m.grid_update_id) for m in events})
        order = ["accepted", "dispatched", "handled", "closed"]
        assert [order.index(m.state) for m in events] == sorted(order.index(m.state) for m in events)
    # the duplicates did arrive, and were recognised as such
    eventually(
        lambda: metric_value(port, "grid_updates_total", outcome="duplicate") >= duplicates_before + 12,
        what="pushed duplicates counted",
    )


def _signed(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    import hashlib
    import hmac

    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Grid-Timestamp": str(timestamp),
        "X-Grid-Signature": f"sha256={signature}",
    }


def test_a_forged_or_stale_signature_is_refused_and_changes_nothing(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], area: dict[str, str]
) -> None:
    [ticket] = sent_tickets(api, ops_headers, dispatch(system, area["residential"]))
    update_id = "9" + "".join(secrets.choice("0123456789") for _ in range(15))
    body = json.dumps(
        {
            "update_id": update_id,
            "service_request_id": ticket["external_id"],
            "status": "closed",
            "updated_datetime": datetime.now(UTC).isoformat(timespec="seconds"),
            "description": "核查通过，已结案",
            "external_status_code": "FIXED",
            "api_key": system.secrets.grid_webhook_api_key,
        },
        ensure_ascii=False,
    ).encode()
    secret = system.secrets.grid_webhook_secret
    now = int(time.time())
    refused = [
        (_signed("not-the-secret", body, now), 401, "signature_invalid"),
        (_signed(secret, body, now - 3600), 401, "signature_stale"),
        ({"Content-Type": "application/json"}, 401, "signature_missing"),
        (_signed(secret, body.replace(b"FIXED", b"REOPEN"), now), 401, "signature_invalid"),
    ]
    with httpx.Client(base_url=system.grid_gateway_url, timeout=10) as grid:
        for headers, status, code in refused:
            reply = grid.post(WEBHOOK, content=body, headers=headers)
            assert (reply.status_code, reply.json()["code"]) == (status, code)
        wrong_key = body.replace(system.secrets.grid_webhook_api_key.encode(), b"guess")
        reply = grid.post(WEBHOOK, content=wrong_key, headers=_signed(secret, wrong_key, now))
        assert (reply.status_code, reply.json()["code"]) == (403, "api_key_invalid")

        unchanged = detail(api, ops_headers, ticket["id"])
        assert unchanged["state"] == "sent" and unchanged["updates"] == []
        assert metric_value(system.metrics_ports["grid-gateway"], "grid_webhook_refused_total") >= 5

        # the very same update, signed with the secret and fresh, is taken — and only once
        reply = grid.post(WEBHOOK, content=body, headers=_signed(secret, body, int(time.time())))
        assert reply.status_code == 200 and reply.json()["outcome"] == "applied"
        again = grid.post(WEBHOOK, content=body, headers=_signed(secret, body, int(time.time())))
        assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    closed = detail(api, ops_headers, ticket["id"])
    assert closed["state"] == "closed" and [u["update_id"] for u in closed["updates"]] == [update_id]


def test_a_refusal_by_the_platform_ends_as_a_failed_ticket_the_issue_hears_of(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], sim: httpx.Client, area: dict[str, str]
) -> None:
    refused_before = sim.get("/_sim/stats").json()["posts_refused"]
    # C-01 (a component) requires attribute[component_id], which a resident's report cannot give
    [dispatch_id] = dispatch(system, area["residential"], grid_service_code="C-01")
    failed = eventually(
        lambda: (t := ticket_of(api, ops_headers, dispatch_id)) and t["state"] == "failed" and t,
        what="the ticket failing on the platform's 400",
    )
    assert failed["failure_code"] == "platform_rejected" and "component_id" in failed["last_error"]
    assert failed["attempts"] == 1 and failed["external_id"] is None

    def failure_event() -> Any:
        found = [m for s, m in grid_events(system, {failed["id"]})[failed["id"]] if s == "grid.ticket.failed"]
        return found[0] if found else None

    event = eventually(failure_event, what="grid.ticket.failed")
    assert (event.code, event.http_status, event.issue_id) == ("platform_rejected", 400, failed["issue_id"])
    assert "component_id" in event.reason
    assert sim.get("/_sim/stats").json()["posts_refused"] == refused_before + 1

    # an operator may try again (it fails the same way: nothing is retried behind their back)
    retried = api.post(f"/v1/grid/tickets/{failed['id']}/retry", headers=ops_headers)
    assert retried.status_code == 200 and retried.json()["state"] == "pending"
    eventually(
        lambda: (t := detail(api, ops_headers, failed["id"]))["state"] == "failed" and t["attempt_count"] == 2,
        what="the retried ticket refused again",
    )
    not_failed = api.post(f"/v1/grid/tickets/{failed['id']}/retry", headers=ops_headers)
    assert not_failed.status_code == 200  # failed again, so retryable again
    sent = sent_tickets(api, ops_headers, dispatch(system, area["residential"]))[0]
    conflict = api.post(f"/v1/grid/tickets/{sent['id']}/retry", headers=ops_headers)
    assert conflict.status_code == 409 and conflict.json()["code"] == "ticket_not_failed"


def test_polling_alone_brings_every_status_back(
    api: httpx.Client,
    system: Stack,
    ops_headers: dict[str, str],
    sim: httpx.Client,
    area: dict[str, str],
    sim_modes: Any,
) -> None:
    sim_modes(webhook_url="")  # the platform pushes nothing
    made = sent_tickets(api, ops_headers, dispatch(system, area["village"], 4))
    advance(sim, made[0]["external_id"], "closed")
    advance(sim, made[1]["external_id"], "dispatched")
    assert sim.post(f"/_sim/reject/{made[2]['external_id']}").status_code == 200
    advance(sim, made[3]["external_id"], "dispatched")
    assert sim.post(f"/_sim/return/{made[3]['external_id']}").status_code == 200
    expected = ["closed", "dispatched", "rejected", "returned"]

    def states() -> list[str]:
        return [detail(api, ops_headers, t["id"])["state"] for t in made]

    eventually(lambda: states() == expected, timeout=20, what="every status polled back")
    for t in made:
        assert {u["source"] for u in detail(api, ops_headers, t["id"])["updates"]} == {"poll"}
    assert sim.get("/_sim/stats").json()["push_pending"] == 0


def test_a_token_answer_is_resolved_to_the_platform_id(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], area: dict[str, str], sim_modes: Any
) -> None:
    sim_modes(response_mode="token")
    [ticket] = sent_tickets(api, ops_headers, dispatch(system, area["residential"]))
    assert ticket["token"].startswith("T") and ticket["external_id"].startswith("G")


def test_the_operators_view_is_for_operators_and_district_staff(
    api: httpx.Client, ops_headers: dict[str, str], grid_platform_headers: dict[str, str]
) -> None:
    assert api.get("/v1/grid/tickets").status_code == 401
    for path in ("/v1/grid/tickets", "/v1/grid/circuits", "/v1/grid/catalogue"):
        reply = api.get(path, headers=grid_platform_headers)
        assert (reply.status_code, reply.json()["code"]) == (403, "grid_staff_only"), path
    missing = api.get(f"/v1/grid/tickets/{uuid.uuid4()}", headers=ops_headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "ticket_not_found")
    assert api.get("/v1/grid/tickets", params={"state": "lost"}, headers=ops_headers).status_code == 422
    bad_cursor = api.get("/v1/grid/tickets", params={"cursor": "!!"}, headers=ops_headers)
    assert (bad_cursor.status_code, bad_cursor.json()["code"]) == (400, "cursor_invalid")
    catalogue = api.get("/v1/grid/catalogue", headers=ops_headers).json()
    assert catalogue["source"] == "platform"
    assert {"01-02", "04-02", "C-01"} <= {s["service_code"] for s in catalogue["services"]}
    assert api.post("/v1/grid/catalogue/reload", headers=grid_platform_headers).status_code == 403
    reloaded = api.post("/v1/grid/catalogue/reload", headers=ops_headers)
    assert reloaded.status_code == 200 and reloaded.json()[0]["source"] == "platform"


def test_district_staff_see_their_district_and_no_other(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], area: dict[str, str]
) -> None:
    from integration.people import create_person, grant, new_neighbourhood_with_people, sign_in

    community = new_neighbourhood_with_people(api, ops_headers)
    outsider = create_person(api, ops_headers)
    grant(api, ops_headers, outsider, "district_staff", f"d:{area['district']}")
    sign_in(api, outsider)
    [ticket] = sent_tickets(api, ops_headers, dispatch(system, community.neighbourhood_id))

    staff = community.district_staff.headers
    eventually(
        lambda: ticket["id"] in {t["id"] for t in tickets(api, staff)}, what="the district's ticket in its staff's list"
    )
    assert detail(api, staff, ticket["id"])["external_id"] == ticket["external_id"]
    not_failed = api.post(f"/v1/grid/tickets/{ticket['id']}/retry", headers=staff)
    assert (not_failed.status_code, not_failed.json()["code"]) == (409, "ticket_not_failed")

    hidden = api.get(f"/v1/grid/tickets/{ticket['id']}", headers=outsider.headers)
    assert (hidden.status_code, hidden.json()["code"]) == (404, "ticket_not_found")
    assert ticket["id"] not in {t["id"] for t in tickets(api, outsider.headers)}
    foreign = api.get("/v1/grid/tickets", params={"district_id": community.district_id}, headers=outsider.headers)
    assert (foreign.status_code, foreign.json()["code"]) == (403, "not_your_district")
    refused = api.post(f"/v1/grid/tickets/{ticket['id']}/retry", headers=outsider.headers)
    assert refused.status_code == 404

    for person in (community.secretary, community.cadre, community.resident, community.subdistrict_staff):
        reply = api.get(f"/v1/grid/tickets/{ticket['id']}", headers=person.headers)
        assert (reply.status_code, reply.json()["code"]) == (403, "grid_staff_only")
