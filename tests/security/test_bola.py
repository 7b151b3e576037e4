"""Broken object-level authorisation (OWASP API1): every route of the gateway's OpenAPI document, called
as an anonymous client and as three strangers to neighbourhood A (a resident, a cadre and the
sub-district staff of an unrelated district B), with every path parameter filled by a real object of A.

- anonymous → 401 problem+json, except the explicit public allow-list;
- a stranger → 403/404 problem+json, or 2xx with an empty page — and never a reply carrying A's text;
- a resident of A is refused every committee action.

A route of the document without an entry in MATRIX fails the test: a new route must be classified."""

from __future__ import annotations

import random
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

PLACEHOLDER = "0190c3a0-0000-7000-8000-00000000abcf"  # a well-formed id of nothing


def soon(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def none(_: World) -> None:
    return None


def credit_code() -> str:
    """A fresh unified social credit code (GB 32100 check character)."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    weights = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    body = "913101" + "".join(random.choice(alphabet[:10]) for _ in range(11))
    check = (31 - sum(alphabet.index(c) * wt for c, wt in zip(body, weights, strict=True)) % 31) % 31
    return body + alphabet[check]


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
    # --- sign-in by SMS code (anonymous by design) ------------------------------------------------
    ("POST", "/v1/auth/login-code"): (PUBLIC, none),
    ("POST", "/v1/auth/login-with-code"): (PUBLIC, none),
    # --- join codes, memberships, people (A's committee) -------------------------------------------
    ("GET", "/v1/join-codes/{code}"): (COMMITTEE, none),
    ("GET", "/v1/join-codes/{code}/qr.png"): (COMMITTEE, none),
    ("GET", "/v1/join-codes/{code}/qr.svg"): (COMMITTEE, none),
    ("POST", "/v1/memberships/{membership_id}/move"): (COMMITTEE, lambda w: {"household_id": PLACEHOLDER}),
    ("POST", "/v1/memberships/{membership_id}/confirm-party-member"): (COMMITTEE, lambda w: {"reason": "核实"}),
    ("PATCH", "/v1/people/{person_id}"): (COMMITTEE, lambda w: {"real_name": "张三丰", "reason": "录入有误"}),
    ("POST", "/v1/people/{person_id}/id-number/reveal"): (
        COMMITTEE,
        lambda w: {"neighbourhood_id": w.a.neighbourhood_id, "reason": "核对材料"},
    ),
    ("GET", "/v1/id-number-reveals"): (SCOPED, none),
    # --- imports (operators) -------------------------------------------------------------------
    ("POST", "/v1/imports/regions"): (OPERATOR, lambda w: "code,name\n"),  # type: ignore[dict-item]
    ("POST", "/v1/imports/households"): (OPERATOR, lambda w: "building,unit,room\n"),  # type: ignore[dict-item]
    # --- issues -------------------------------------------------------------------------------
    ("GET", "/v1/districts/{district_id}/issue-categories"): (DIRECTORY, none),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/issue-categories"): (DIRECTORY, none),
    ("PUT", "/v1/districts/{district_id}/issue-categories/{code}"): (
        OPERATOR,
        lambda w: {"name": "垃圾乱堆乱放", "resolution_hours": 48},
    ),
    ("PUT", "/v1/neighbourhoods/{neighbourhood_id}/issue-response-target"): (
        COMMITTEE,
        lambda w: {"response_hours": 8},
    ),
    ("POST", "/v1/issues"): (
        SCOPED,
        lambda w: {"neighbourhood_id": w.a.neighbourhood_id, "description": "外人报事", "location": {"building": "1"}},
    ),
    ("GET", "/v1/issues/{issue_id}"): (SCOPED, none),
    ("GET", "/v1/issues/{issue_id}/timeline"): (SCOPED, none),
    ("GET", "/v1/issues/{issue_id}/sla"): (SCOPED, none),
    ("POST", "/v1/issues/{issue_id}/acknowledge"): (COMMITTEE, none),
    ("POST", "/v1/issues/{issue_id}/start"): (COMMITTEE, none),
    ("POST", "/v1/issues/{issue_id}/escalate"): (COMMITTEE, none),
    ("POST", "/v1/issues/{issue_id}/dispatch"): (COMMITTEE, none),
    ("POST", "/v1/issues/{issue_id}/resolve"): (COMMITTEE, none),
    ("POST", "/v1/issues/{issue_id}/reject"): (COMMITTEE, lambda w: {"reason": "不属于"}),
    ("POST", "/v1/issues/{issue_id}/merge"): (COMMITTEE, lambda w: {"duplicate_of_id": PLACEHOLDER}),
    ("POST", "/v1/issues/{issue_id}/category"): (COMMITTEE, lambda w: {"category_code": "rubbish"}),
    ("POST", "/v1/issues/{issue_id}/notes"): (COMMITTEE, lambda w: {"body": "外人备注", "text": "外人备注"}),
    ("POST", "/v1/issues/{issue_id}/feedback"): (SCOPED, lambda w: {"rating": 1, "fixed": False}),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/issues"): (COMMITTEE, none),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/issues/public"): (SCOPED, none),
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/issues/counts"): (COMMITTEE, none),
    ("GET", "/v1/subdistricts/{subdistrict_id}/issues"): (COMMITTEE, none),
    ("GET", "/v1/subdistricts/{subdistrict_id}/issues/counts"): (COMMITTEE, none),
    ("GET", "/v1/me/issues/assigned"): (SELF, none),
    ("GET", "/v1/me/issues/reported"): (SELF, none),
    ("POST", "/v1/mutual-aid-links"): (
        COMMITTEE,
        lambda w: {"issue_id": w.ids["issue_id"], "target": "activity", "target_id": w.ids["activity_id"]},
    ),
    ("GET", "/v1/mutual-aid-links"): (SCOPED, none),
    # --- grid gateway (staff / operators) ----------------------------------------------------------
    ("GET", "/v1/grid/tickets"): (OPERATOR, none),
    ("GET", "/v1/grid/tickets/{ticket_id}"): (OPERATOR, none),
    ("POST", "/v1/grid/tickets/{ticket_id}/retry"): (OPERATOR, none),
    ("GET", "/v1/grid/circuits"): (OPERATOR, none),
    ("GET", "/v1/grid/catalogue"): (DIRECTORY, none),
    ("POST", "/v1/grid/catalogue/reload"): (OPERATOR, none),
    # --- activities -----------------------------------------------------------------------------
    ("POST", "/v1/activities"): (
        COMMITTEE,
        lambda w: {
            "neighbourhood_id": w.a.neighbourhood_id,
            "title": "外人活动",
            "place": "活动室",
            "starts_at": soon(3),
            "ends_at": soon(4),
            "capacity": 5,
        },
    ),
    ("GET", "/v1/activities"): (SCOPED, none),
    ("GET", "/v1/activities/{activity_id}"): (SCOPED, none),
    ("POST", "/v1/activities/{activity_id}/cancel"): (COMMITTEE, lambda w: {"reason": "取消"}),
    ("POST", "/v1/activities/{activity_id}/signups"): (SCOPED, lambda w: {}),
    ("GET", "/v1/activities/{activity_id}/signups"): (COMMITTEE, none),
    ("POST", "/v1/activities/{activity_id}/signups/mine/cancel"): (SCOPED, none),
    ("GET", "/v1/signups"): (SELF, none),
    ("GET", "/v1/activities/{activity_id}/checkin-code"): (COMMITTEE, none),
    ("POST", "/v1/activities/{activity_id}/check-in"): (SCOPED, lambda w: {"code": "000000"}),
    ("POST", "/v1/activities/{activity_id}/check-out"): (SCOPED, lambda w: {"code": "000000"}),
    # --- volunteers and service hours ------------------------------------------------------------
    ("GET", "/v1/neighbourhoods/{neighbourhood_id}/volunteer-teams"): (SCOPED, none),
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/volunteer-teams"): (COMMITTEE, lambda w: {"name": "外人队"}),
    ("GET", "/v1/volunteer-teams/{team_id}"): (SCOPED, none),
    ("POST", "/v1/neighbourhoods/{neighbourhood_id}/volunteer-applications"): (SCOPED, lambda w: {}),
    ("GET", "/v1/volunteers"): (SCOPED, none),
    ("GET", "/v1/volunteers/{volunteer_id}"): (SCOPED, none),
    ("POST", "/v1/volunteers/{volunteer_id}/approve"): (COMMITTEE, none),
    ("POST", "/v1/volunteers/{volunteer_id}/reject"): (COMMITTEE, lambda w: {"reason": "不符"}),
    ("POST", "/v1/volunteers/{volunteer_id}/leave"): (SCOPED, lambda w: {"reason": "离开"}),
    ("POST", "/v1/volunteers/{volunteer_id}/remove"): (COMMITTEE, lambda w: {"reason": "移除"}),
    ("POST", "/v1/volunteers/{volunteer_id}/leader"): (COMMITTEE, lambda w: {"leader": True}),
    ("GET", "/v1/service-hours/entries"): (SCOPED, none),
    ("POST", "/v1/service-hours/entries/{entry_id}/reversal"): (COMMITTEE, lambda w: {"reason": "录入错误"}),
    # without a scope, the caller's own totals
    ("GET", "/v1/service-hours/totals"): (SELF, none),
    ("GET", "/v1/service-hours/certificate"): (SCOPED, none),
    # --- organisations and storefronts -----------------------------------------------------------
    # registering an organisation is self-service for any signed-in person (approved by district staff)
    ("POST", "/v1/organisations"): (
        SELF,
        lambda w: {"name": "外人社工服务社", "credit_code": credit_code(), "district_id": w.b.district_id},
    ),
    ("GET", "/v1/organisations"): (DIRECTORY, none),
    ("GET", "/v1/organisations/{organisation_id}"): (SCOPED, none),
    ("POST", "/v1/organisations/{organisation_id}/approve"): (OPERATOR, none),
    ("POST", "/v1/organisations/{organisation_id}/reject"): (OPERATOR, lambda w: {"reason": "不符"}),
    ("POST", "/v1/organisations/{organisation_id}/storefronts"): (
        SCOPED,
        lambda w: {"name": "外人服务点", "neighbourhood_ids": [w.a.neighbourhood_id]},
    ),
    ("GET", "/v1/storefronts"): (DIRECTORY, none),
    ("GET", "/v1/storefronts/{storefront_id}"): (SCOPED, none),
    ("POST", "/v1/storefronts/{storefront_id}/close"): (SCOPED, none),
    ("POST", "/v1/storefronts/{storefront_id}/offerings"): (SCOPED, lambda w: {"title": "外人服务"}),
    ("GET", "/v1/storefronts/{storefront_id}/offerings"): (SCOPED, none),
    ("POST", "/v1/offerings/{offering_id}/slots"): (
        SCOPED,
        lambda w: {"starts_at": soon(3), "ends_at": soon(4), "capacity": 1},
    ),
    ("GET", "/v1/offerings/{offering_id}/slots"): (SCOPED, none),
    ("POST", "/v1/offerings/{offering_id}/bookings"): (SCOPED, lambda w: {}),
    ("GET", "/v1/bookings"): (SCOPED, none),
    ("GET", "/v1/bookings/{booking_id}"): (SCOPED, none),
    ("POST", "/v1/bookings/{booking_id}/accept"): (SCOPED, none),
    ("POST", "/v1/bookings/{booking_id}/decline"): (SCOPED, lambda w: {"reason": "请假"}),
    ("POST", "/v1/bookings/{booking_id}/fulfil"): (SCOPED, none),
    ("POST", "/v1/bookings/{booking_id}/cancel"): (SCOPED, lambda w: {"reason": "取消"}),
    ("POST", "/v1/bookings/{booking_id}/rating"): (SCOPED, lambda w: {"rating": 1}),
    # --- insights -------------------------------------------------------------------------------
    # a portrait is shown to any signed-in caller at public visibility (figures only, no text of A)
    ("GET", "/v1/insights/neighbourhoods/{neighbourhood_id}/portrait"): (DIRECTORY, none),
    ("GET", "/v1/insights/comparisons"): (OPERATOR, none),
    ("GET", "/v1/insights/exports/daily.csv"): (OPERATOR, none),
    ("GET", "/v1/insights/exports/comparison.csv"): (OPERATOR, none),
    ("GET", "/v1/insights/prompts"): (SCOPED, none),
    ("GET", "/v1/insights/prompts/{prompt_id}"): (COMMITTEE, none),
    ("POST", "/v1/insights/prompts/{prompt_id}/acknowledge"): (COMMITTEE, lambda w: {"note": "跟进"}),
    ("POST", "/v1/insights/prompts/{prompt_id}/dismiss"): (COMMITTEE, lambda w: {"reason": "已处理"}),
    ("POST", "/v1/insights/detections"): (OPERATOR, none),
    ("POST", "/v1/insights/rebuilds"): (OPERATOR, none),
    ("GET", "/v1/insights/rebuilds/{rebuild_id}"): (OPERATOR, none),
}

# query parameters that point a list at A
QUERY: dict[tuple[str, str], Callable[[World], dict[str, str]]] = {
    ("GET", "/v1/activities"): lambda w: {"neighbourhood_id": w.a.neighbourhood_id},
    ("GET", "/v1/volunteers"): lambda w: {"neighbourhood_id": w.a.neighbourhood_id},
    ("GET", "/v1/mutual-aid-links"): lambda w: {"issue_id": w.ids["issue_id"]},
    ("GET", "/v1/id-number-reveals"): lambda w: {"region_id": w.a.neighbourhood_id},
    ("GET", "/v1/insights/prompts"): lambda w: {"neighbourhood_id": w.a.neighbourhood_id},
    ("GET", "/v1/service-hours/entries"): lambda w: {"neighbourhood_id": w.a.neighbourhood_id},
    ("GET", "/v1/bookings"): lambda w: {"storefront_id": w.ids["storefront_id"]},
    ("GET", "/v1/storefronts"): lambda w: {"neighbourhood_id": w.a.neighbourhood_id},
    ("GET", "/v1/insights/comparisons"): lambda w: {"district_id": w.a.district_id},
    ("GET", "/v1/insights/exports/daily.csv"): lambda w: {"district_id": w.a.district_id},
    ("GET", "/v1/insights/exports/comparison.csv"): lambda w: {"district_id": w.a.district_id},
    ("GET", "/v1/service-hours/certificate"): lambda w: {"person_id": w.a.resident.person_id},
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
        params = QUERY.get((method, path), lambda w: {})(world)
        for role in ROLES:
            if role == "resident_of_A" and kind not in (COMMITTEE, OPERATOR):
                continue
            body = body_of(world)
            if isinstance(body, str):  # CSV imports
                headers = {**people[role], "content-type": "text/csv"}
                reply = api.request(method, url, content=body.encode(), params=params, headers=headers)
            else:
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
    # the platform's own replies (the issues service collects a post on neighbourhood matters into an issue
    # and says so under it) are not a stranger's doing
    people = [c for c in comments if c["author"]["person_id"] != "system"]
    assert people and all(world.marker in c["body"] for c in people), comments
    pending = api.get(
        f"/v1/neighbourhoods/{a.neighbourhood_id}/registrations", params={"state": "pending"}, headers=a.cadre.headers
    )
    assert pending.status_code == 200, pending.text
    assert world.ids["membership_id"] in pending.text
