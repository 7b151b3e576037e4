"""Broken object-level authorisation (OWASP API1): every route of the gateway's OpenAPI document, called
as an anonymous client and as three strangers to neighbourhood A (a resident, a cadre and the
sub-district staff of an unrelated district B), with every path parameter filled by a real object of A.

- anonymous → 401 problem+json, except the explicit public allow-list;
- a stranger → 403/404 problem+json, or 2xx with an empty page — and never a reply carrying A's text;
- a resident of A is refused every committee action.

A route of the document without an entry in MATRIX fails the test: a new route must be classified."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from integration.people import unique_phone, valid_id_number

from security.world import World

PUBLIC = "public"  # no token needed (allow-list)
SELF = "self"  # about the caller only: a stranger gets their own (empty) data, never A's
DIRECTORY = "directory"  # signed-in callers may read it (the region directory): never A's private text
SCOPED = "scoped"  # A's objects: strangers refused or shown nothing
COMMITTEE = "committee"  # SCOPED, and a resident of A is refused too
OPERATOR = "operator"  # operators / staff above only: every person here is refused

Body = Callable[[World], dict[str, Any] | None]


def soon(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def none(_: World) -> None:
    return None


MATRIX: dict[tuple[str, str], tuple[str, Body]] = {
    # --- public allow-list ---------------------------------------------------------------------
    ("GET", "/healthz"): (PUBLIC, none),
    ("GET", "/readyz"): (PUBLIC, none),
    ("GET", "/.well-known/jwks.json"): (PUBLIC, none),
    ("POST", "/v1/auth/login"): (PUBLIC, none),
    ("POST", "/v1/auth/refresh"): (PUBLIC, none),
    ("POST", "/v1/auth/logout"): (PUBLIC, none),
    ("POST", "/v1/auth/service-token"): (PUBLIC, none),
    ("POST", "/v1/registrations"): (PUBLIC, none),
    # --- the caller's own ----------------------------------------------------------------------
    ("GET", "/v1/me"): (SELF, none),
    ("GET", "/v1/me/moderation-notices"): (SELF, none),
    # --- directory -----------------------------------------------------------------------------
    ("GET", "/v1/regions"): (DIRECTORY, none),
    ("GET", "/v1/regions/{region_id}"): (DIRECTORY, none),
    # --- operators ----------------------------------------------------------------------------
    ("POST", "/v1/people"): (
        OPERATOR,
        lambda w: {
            "real_name": "王五",
            "phone": unique_phone(),
            "id_number": valid_id_number(w.marker),
            "password": "a-long-enough-password",
        },
    ),
    ("POST", "/v1/regions"): (
        OPERATOR,
        lambda w: {
            "level": "neighbourhood",
            "code": "X1",
            "name": "X",
            "parent_id": w.a.subdistrict_id,
            "kind": "residential",
        },
    ),
    ("PUT", "/v1/districts/{district_id}/board-catalogue/{kind}"): (
        OPERATOR,
        lambda w: {"name": "大调研", "policy": {}},
    ),
    # the district's board catalogue is configuration (names and policies), the same for every resident
    ("GET", "/v1/districts/{district_id}/board-catalogue"): (DIRECTORY, none),
    # --- neighbourhood A's things --------------------------------------------------------------
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/affairs"): (
        COMMITTEE,
        lambda w: {"kind": "election", "title": "换届", "purpose": "选举"},
    ),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/affairs"): (SCOPED, none),
    ("GET", "/v1/affairs/{affair_id}"): (SCOPED, none),
    ("POST", "/v1/affairs/{affair_id}/stages"): (COMMITTEE, lambda w: {"to_stage": "voter_registration"}),
    ("POST", "/v1/affairs/{affair_id}/candidates"): (COMMITTEE, lambda w: {"name": "刘*"}),
    ("PUT", "/v1/affairs/{affair_id}/result"): (COMMITTEE, lambda w: {"summary": "有效", "candidates": []}),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/boards"): (SCOPED, none),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/boards/unread"): (SCOPED, none),
    ("GET", "/v1/boards/{board_id}"): (SCOPED, none),
    ("POST", "/v1/boards/{board_id}/read"): (SCOPED, none),
    ("POST", "/v1/boards/{board_id}/posts"): (SCOPED, lambda w: {"title": "闯入", "body": "外人发帖"}),
    ("GET", "/v1/boards/{board_id}/posts"): (SCOPED, none),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/feed"): (SCOPED, none),
    ("GET", "/v1/posts/{post_id}"): (SCOPED, none),
    ("PATCH", "/v1/posts/{post_id}"): (SCOPED, lambda w: {"title": "改", "body": "改"}),
    ("DELETE", "/v1/posts/{post_id}"): (SCOPED, none),
    ("GET", "/v1/posts/{post_id}/revisions"): (SCOPED, none),
    ("PUT", "/v1/posts/{post_id}/like"): (SCOPED, none),
    ("DELETE", "/v1/posts/{post_id}/like"): (SCOPED, none),
    ("PUT", "/v1/posts/{post_id}/pin"): (COMMITTEE, lambda w: {"pinned": True}),
    ("PUT", "/v1/posts/{post_id}/lock"): (COMMITTEE, lambda w: {"locked": True, "reason": "关闭"}),
    ("POST", "/v1/posts/{post_id}/comments"): (SCOPED, lambda w: {"body": "外人留言"}),
    ("GET", "/v1/posts/{post_id}/comments"): (SCOPED, none),
    ("PATCH", "/v1/comments/{comment_id}"): (SCOPED, lambda w: {"body": "改"}),
    ("DELETE", "/v1/comments/{comment_id}"): (SCOPED, none),
    ("PUT", "/v1/comments/{comment_id}/like"): (SCOPED, none),
    ("DELETE", "/v1/comments/{comment_id}/like"): (SCOPED, none),
    ("POST", "/v1/posts/{post_id}/polls"): (
        SCOPED,
        lambda w: {"question": "外人投票?", "options": ["是", "否"], "closes_at": soon()},
    ),
    ("GET", "/v1/polls/{poll_id}"): (SCOPED, none),
    ("POST", "/v1/polls/{poll_id}/votes"): (SCOPED, lambda w: {"option_ids": [w.ids["option_id"]]}),
    ("POST", "/v1/polls/{poll_id}/close"): (COMMITTEE, none),
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/households"): (
        COMMITTEE,
        lambda w: {"building": "9号楼", "unit": "1", "room": "909"},
    ),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/households"): (COMMITTEE, none),
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/join-codes"): (COMMITTEE, lambda w: {}),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/join-codes"): (COMMITTEE, none),
    ("POST", "/v1/join-codes/{code}/revoke"): (COMMITTEE, lambda w: {}),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/registrations"): (COMMITTEE, none),
    ("POST", "/v1/memberships/{membership_id}/verify"): (COMMITTEE, lambda w: {}),
    ("POST", "/v1/memberships/{membership_id}/reject"): (COMMITTEE, lambda w: {"reason": "不符"}),
    ("POST", "/v1/memberships/{membership_id}/leave"): (SCOPED, none),
    ("POST", "/v1/reports"): (
        SCOPED,
        lambda w: {"target_type": "post", "target_id": w.ids["post_id"], "reason": "spam"},
    ),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/reports"): (COMMITTEE, none),
    ("POST", "/v1/reports/{report_id}/dismiss"): (COMMITTEE, lambda w: {"reason": "不属违规"}),
    ("POST", "/v1/moderation/actions"): (
        COMMITTEE,
        lambda w: {"target_type": "post", "target_id": w.ids["post_id"], "action": "hide", "reason": "违规"},
    ),
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/mutes"): (
        COMMITTEE,
        lambda w: {"person_id": w.a.resident.person_id, "duration_minutes": 60, "reason": "刷屏"},
    ),
    ("DELETE", "/v1/neighbourhoods/{neighbourhood_id}/mutes/{person_id}"): (COMMITTEE, none),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/moderation/actions"): (COMMITTEE, none),
    ("POST", "/v1/roles"): (
        COMMITTEE,
        lambda w: {"person_id": w.a.resident.person_id, "role": "cadre", "scope": f"n:{w.a.neighbourhood_id}"},
    ),
    ("GET", "/v1/roles"): (SCOPED, none),
    ("POST", "/v1/roles/{grant_id}/revoke"): (COMMITTEE, lambda w: {}),
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/roster"): (
        COMMITTEE,
        lambda w: {"person_id": w.a.cadre.person_id, "starts_at": soon(3), "ends_at": soon(4)},
    ),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/roster"): (SCOPED, none),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/on-duty"): (SCOPED, none),
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/topics"): (
        SCOPED,
        lambda w: {"title": "外人", "description": "议题"},
    ),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/topics"): (SCOPED, none),
    ("GET", "/v1/topics/{topic_id}"): (SCOPED, none),
    ("POST", "/v1/topics/{topic_id}/transitions"): (COMMITTEE, lambda w: {"to_stage": "review", "reason": "受理"}),
    ("PATCH", "/v1/topics/{topic_id}/milestones/{milestone_id}"): (SCOPED, lambda w: {"progress": 50}),
    ("POST", "/v1/topics/{topic_id}/ratings"): (SCOPED, lambda w: {"rating": 1}),
    ("PUT", "/v1/topics/{topic_id}/evaluation-summary"): (COMMITTEE, lambda w: {"summary": "好"}),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/conventions"): (SCOPED, none),
    ("GET", "/v1/conventions/{convention_id}"): (SCOPED, none),
    ("POST", "/v1/conventions/{convention_id}/versions"): (
        COMMITTEE,
        lambda w: {"text": "新", "poll_id": w.ids["poll_id"], "reason": "修订"},
    ),
}

# query parameters that point a list at A
QUERY: dict[tuple[str, str], Callable[[World], dict[str, str]]] = {
    ("GET", "/v1/roles"): lambda w: {"scope": f"n:{w.a.neighbourhood_id}"},
    ("GET", "/v1/regions"): lambda w: {"parent_id": w.a.subdistrict_id},
    ("DELETE", "/v1/neighbourhoods/{neighbourhood_id}/mutes/{person_id}"): lambda w: {"reason": "解除"},
    ("DELETE", "/v1/posts/{post_id}"): lambda w: {"reason": "删除"},
    ("DELETE", "/v1/comments/{comment_id}"): lambda w: {"reason": "删除"},
}

ROLES = ("anonymous", "foreign_resident", "foreign_cadre", "foreign_subdistrict_staff", "resident_of_A")


def fill(path: str, w: World) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "membership_id" and "/leave" in path:
            return w.ids["resident_membership_id"]
        return w.ids[name]

    return re.sub(r"\{(\w+)\}", value, path)


def is_problem(reply: httpx.Response) -> bool:
    return reply.headers.get("content-type", "").startswith("application/problem+json") and "code" in reply.json()


def empty_page(reply: httpx.Response) -> bool:
    body = reply.json() if reply.content else None
    if isinstance(body, list):
        return not body
    return isinstance(body, dict) and body.get("items") == []


def test_every_route_is_classified_and_no_stranger_reaches_neighbourhood_a(api: httpx.Client, world: World) -> None:
    spec = api.get("/openapi.json").json()
    routes = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops]
    unclassified = [r for r in routes if r not in MATRIX]
    assert not unclassified, f"routes with no entry in the BOLA matrix (classify them): {unclassified}"

    people = {
        "anonymous": {},
        "foreign_resident": world.b.resident.headers,
        "foreign_cadre": world.b.cadre.headers,
        "foreign_subdistrict_staff": world.b.subdistrict_staff.headers,
        "resident_of_A": world.a.residents[1].headers,
    }
    failures: list[str] = []
    table: dict[str, Counter[str]] = {role: Counter() for role in ROLES}
    for method, path in routes:
        kind, body_of = MATRIX[(method, path)]
        if kind == PUBLIC:
            table["anonymous"]["public"] += 1
            continue
        url = fill(path, world)
        body = body_of(world)
        params = QUERY.get((method, path), lambda w: {})(world)
        for role in ROLES:
            if role == "resident_of_A" and kind not in (COMMITTEE, OPERATOR):
                continue
            reply = api.request(method, url, json=body, params=params, headers=people[role])
            where = f"{method} {path} as {role}: {reply.status_code} {reply.text[:200]}"
            if reply.status_code >= 500:
                failures.append(f"5xx: {where}")
                continue
            if world.marker in reply.text:
                failures.append(f"LEAK of A's data: {where}")
                continue
            if role == "anonymous":
                if reply.status_code != 401 or not is_problem(reply):
                    failures.append(f"anonymous not 401: {where}")
                table[role]["401"] += 1
                continue
            if 200 <= reply.status_code < 300:
                if kind in (SELF, DIRECTORY) or (method == "GET" and empty_page(reply)):
                    table[role]["own/empty"] += 1
                    continue
                failures.append(f"stranger got 2xx: {where}")
                continue
            if reply.status_code not in (403, 404) or not is_problem(reply):
                failures.append(f"expected 403/404 problem: {where}")
                continue
            table[role][str(reply.status_code)] += 1

    print("\nBOLA matrix: routes × roles (outcomes)")
    print(f"  routes in the OpenAPI document: {len(routes)}; classified: {len(routes) - len(unclassified)}")
    for role in ROLES:
        print(f"  {role:28s} {dict(table[role])}  total={sum(table[role].values())}")
    assert not failures, "\n".join(failures)


def test_strangers_actions_changed_nothing_in_a(api: httpx.Client, world: World) -> None:
    """After the matrix ran (module order), A's objects are as A left them."""
    a = world.a
    post = api.get(f"/v1/posts/{world.ids['post_id']}", headers=a.resident.headers)
    assert post.status_code == 200, post.text
    assert world.marker in post.json()["title"]
    comments = api.get(f"/v1/posts/{world.ids['post_id']}/comments", headers=a.resident.headers).json()["items"]
    assert all(world.marker in c["body"] for c in comments), comments
    pending = api.get(
        f"/v1/neighbourhoods/{a.neighbourhood_id}/registrations", params={"state": "pending"}, headers=a.cadre.headers
    )
    assert pending.status_code == 200, pending.text
    assert world.ids["membership_id"] in pending.text
