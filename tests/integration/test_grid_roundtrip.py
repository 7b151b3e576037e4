"""Issue → grid → issue, end to end through the API gateway: a resident reports, the cadre
dispatches in one click, the grid gateway files the ticket with the grid platform (the simulator),
the grid's stages come back onto the issue and its closure resolves it; a ticket the platform
refuses comes back as a failure the issue shows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from shequtong_stack import Stack

from integration.helpers import eventually
from integration.people import Community, Person, new_neighbourhood_with_people


@pytest.fixture(scope="module")
def community(api: httpx.Client, ops_headers: dict[str, str]) -> Community:
    paths = api.get("/openapi.json").json()["paths"]
    assert "/v1/issues/{issue_id}/dispatch" in paths, "the gateway serves the one-click dispatch"
    return new_neighbourhood_with_people(api, ops_headers)


def ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url.path}: {reply.text}"
    return reply.json()


def report(api: httpx.Client, resident: Person, neighbourhood_id: str) -> dict[str, Any]:
    body = {
        "neighbourhood_id": neighbourhood_id,
        "category_code": "rubbish",
        "title": "楼下垃圾三天没人清",
        "description": "3号楼下的垃圾堆了三天，异味很大",
        "location": {"address": "淞南十村3号楼东侧", "lat": 31.3921, "lon": 121.4836},
        "photo_urls": ["https://media.example/rubbish.jpg"],
    }
    return dict(ok(api.post("/v1/issues", json=body, headers=resident.headers), 201))


def dispatch(api: httpx.Client, cadre: Person, issue_id: str, **body: Any) -> str:
    ok(api.post(f"/v1/issues/{issue_id}/acknowledge", json={"note": "收到"}, headers=cadre.headers))
    reply = api.post(f"/v1/issues/{issue_id}/dispatch", json={"note": "派至网格", **body}, headers=cadre.headers)
    dispatched = ok(reply)
    assert dispatched["issue"]["state"] == "dispatched"
    return str(dispatched["dispatch_id"])


def ticket_of(api: httpx.Client, headers: dict[str, str], dispatch_id: str) -> dict[str, Any] | None:
    items = ok(api.get("/v1/grid/tickets", params={"dispatch_id": dispatch_id}, headers=headers))["items"]
    return items[0] if items else None


def grid_record(api: httpx.Client, person: Person, issue_id: str) -> list[dict[str, Any]]:
    timeline = ok(api.get(f"/v1/issues/{issue_id}/timeline", headers=person.headers))["items"]
    return [e for e in timeline if e["kind"] == "grid_status"]


def test_an_issue_goes_to_the_grid_and_its_closure_resolves_it(
    api: httpx.Client, system: Stack, community: Community
) -> None:
    c = community
    issue = report(api, c.resident, c.neighbourhood_id)
    dispatch_id = dispatch(api, c.cadre, issue["id"])

    staff = c.district_staff.headers
    ticket = eventually(
        lambda: (t := ticket_of(api, staff, dispatch_id)) and t["external_id"] and t, what="the ticket on the grid"
    )
    assert ticket["issue_id"] == issue["id"] and ticket["service_code"] == "01-02"
    with httpx.Client(base_url=system.simulator_url, timeout=10) as sim:
        case = sim.get(f"/requests/{ticket['external_id']}.json").json()[0]
        assert "3号楼下的垃圾堆了三天" in case["description"] and case["lat"] == pytest.approx(31.3921)
        eventually(
            lambda: any(e["data"].get("grid_state") == "sent" for e in grid_record(api, c.resident, issue["id"])),
            what="the issue showing the ticket taken by the grid",
        )
        reply = sim.post(f"/_sim/advance/{ticket['external_id']}", params={"to": "closed"})
        assert reply.status_code == 200, reply.text

    resolved = eventually(
        lambda: (
            (i := ok(api.get(f"/v1/issues/{issue['id']}", headers=c.resident.headers)))["state"] == "resolved" and i
        ),
        what="the grid's closure resolving the issue",
    )
    assert resolved["resolved_level"] == "grid" and resolved["awaiting_feedback"] is True
    states = [e["data"].get("grid_state") for e in grid_record(api, c.resident, issue["id"])]
    assert states == ["sent", "accepted", "dispatched", "handled", "closed"]
    assert ok(api.get(f"/v1/grid/tickets/{ticket['id']}", headers=staff))["state"] == "closed"


def test_a_ticket_the_grid_refuses_comes_back_to_the_issue(api: httpx.Client, community: Community) -> None:
    c = community
    issue = report(api, c.resident, c.neighbourhood_id)
    # C-01 is a component code: the platform requires a component id a report cannot give
    dispatch_id = dispatch(api, c.cadre, issue["id"], grid_service_code="C-01")
    failed = eventually(
        lambda: (t := ticket_of(api, c.district_staff.headers, dispatch_id)) and t["state"] == "failed" and t,
        what="the ticket refused by the grid",
    )
    assert failed["failure_code"] == "platform_rejected"

    def shown() -> dict[str, Any] | None:
        entries = [e for e in grid_record(api, c.cadre, issue["id"]) if e["data"].get("grid_state") == "failed"]
        return entries[0] if entries else None

    entry = eventually(shown, what="the refusal on the issue's record")
    assert "component_id" in (entry.get("text") or "")
    back = eventually(
        lambda: (i := ok(api.get(f"/v1/issues/{issue['id']}", headers=c.cadre.headers)))["state"] != "dispatched" and i,
        what="the issue back with the level that dispatched it",
    )
    assert back["level"] == "neighbourhood"
