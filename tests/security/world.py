"""Two unrelated communities (A and B, each its own district → sub-district → two neighbourhoods) and
real objects of A made through the gateway, so every path parameter of every route can be filled
with something of A that a stranger must not reach."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from integration.helpers import eventually
from integration.people import Community, Person, new_neighbourhood_with_people, register


def ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url.path}: {reply.text}"
    return reply.json() if reply.content else None


@dataclass
class World:
    a: Community
    b: Community
    marker: str  # appears in every text of A's objects: a stranger's reply must never contain it
    ids: dict[str, str] = field(default_factory=dict)
    pending: Person | None = None


def build_world(api: httpx.Client, ops_headers: dict[str, str]) -> World:
    a = new_neighbourhood_with_people(api, ops_headers)
    b = new_neighbourhood_with_people(api, ops_headers)
    marker = f"secret{uuid.uuid4().hex[:10]}"
    w = World(a, b, marker)
    n = a.neighbourhood_id

    def boards() -> dict[str, str]:
        reply = api.get(f"/v1/neighbourhoods/{n}/boards", headers=a.resident.headers)
        return {x["kind"]: x["id"] for x in reply.json()} if reply.status_code == 200 else {}

    board_ids = eventually(lambda: (found := boards()) and len(found) == 10 and found, what="A's boards")
    post = eventually(
        lambda: (
            (
                r := api.post(
                    f"/v1/boards/{board_ids['neighbourhood_matters']}/posts",
                    json={"title": f"楼道灯坏了 {marker}", "body": f"请处理 {marker}"},
                    headers=a.resident.headers,
                )
            ).status_code
            == 201
            and r.json()
        ),
        what="boards knows A's resident",
    )
    comment = ok(
        api.post(f"/v1/posts/{post['id']}/comments", json={"body": f"同意 {marker}"}, headers=a.residents[1].headers),
        201,
    )
    closes = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    cadre_post = ok(
        api.post(
            f"/v1/boards/{board_ids['neighbourhood_matters']}/posts",
            json={"title": f"征求意见 {marker}", "body": f"请投票 {marker}"},
            headers=a.cadre.headers,
        ),
        201,
    )
    poll = ok(
        api.post(
            f"/v1/posts/{cadre_post['id']}/polls",
            json={"question": f"是否开放 {marker}", "options": ["是", "否"], "closes_at": closes},
            headers=a.cadre.headers,
        ),
        201,
    )
    topic = ok(
        api.post(
            f"/v1/neighbourhoods/{n}/topics",
            json={"title": f"停车 {marker}", "description": f"划线 {marker}"},
            headers=a.resident.headers,
        ),
        201,
    )
    report = ok(
        api.post(
            "/v1/reports",
            json={"target_type": "comment", "target_id": comment["id"], "reason": "spam", "note": f"spam {marker}"},
            headers=a.resident.headers,
        ),
        201,
    )
    affair = ok(
        api.post(
            f"/v1/neighbourhoods/{n}/affairs",
            json={"kind": "election", "title": f"换届 {marker}", "purpose": f"选举 {marker}"},
            headers=a.secretary.headers,
        ),
        201,
    )
    issue = ok(
        api.post(
            "/v1/issues",
            json={
                "neighbourhood_id": n,
                "title": f"垃圾 {marker}",
                "description": f"楼下垃圾堆了三天 {marker}",
                "location": {"building": "3号楼", "address": f"3号楼东侧 {marker}"},
            },
            headers=a.resident.headers,
        ),
        201,
    )
    grants = ok(api.get("/v1/roles", params={"scope": f"n:{n}"}, headers=a.secretary.headers))["items"]
    pending, reply = register(api, a.join_code)
    ok(reply, 201)
    w.pending = pending
    w.ids = {
        "neighbourhood_id": n,
        "region_id": n,
        "district_id": a.district_id,
        "board_id": board_ids["neighbourhood_matters"],
        "post_id": post["id"],
        "comment_id": comment["id"],
        "poll_id": poll["id"],
        "option_id": poll["options"][0]["id"],
        "topic_id": topic["id"],
        "report_id": report["id"],
        "affair_id": affair["id"],
        "grant_id": grants[0]["id"],
        "membership_id": str(pending.membership_id),
        "resident_membership_id": str(a.resident.membership_id),
        "person_id": a.resident.person_id,
        "code": a.join_code,
        "kind": "survey",
        # no convention or milestone is made in setup (the seven-stage chain is long): unknown ids of the
        # right shape still have to be refused without telling a stranger anything
        "milestone_id": "0190c3a0-0000-7000-8000-00000000abcd",
        "convention_id": "0190c3a0-0000-7000-8000-00000000abce",
        "issue_id": issue["id"],
        "subdistrict_id": a.subdistrict_id,
        # the services of the newer routes keep objects that are slow to set up (an approved organisation,
        # a storefront, a volunteer with hours, a grid ticket, an insights prompt): well-formed unknown ids
        **{
            name: f"0190c3a0-0000-7000-8000-0000000{i:05x}"
            for i, name in enumerate(
                (
                    "activity_id",
                    "ticket_id",
                    "prompt_id",
                    "rebuild_id",
                    "organisation_id",
                    "storefront_id",
                    "offering_id",
                    "booking_id",
                    "team_id",
                    "volunteer_id",
                    "entry_id",
                ),
                start=0xAC00,
            )
        },
    }
    return w
