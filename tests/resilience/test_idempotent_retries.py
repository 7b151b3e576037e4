"""A client whose POST timed out retries it with the same Idempotency-Key (again and again, some retries
racing each other): exactly one effect, and every retry gets the first answer."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from integration.helpers import eventually
from integration.people import PASSWORD, Community, new_neighbourhood_with_people, unique_phone, valid_id_number
from shequtong_stack import Stack

from resilience.faults import Private, record

# Bounded by the whole suite's time, not pytest's 300 s default: the system starts once (inside the first
# test's setup) and a loaded 2-core machine can take minutes over it.
pytestmark = pytest.mark.timeout(900)

RETRIES = 6


@pytest.fixture(scope="module")
def system(private_stack: Private) -> Stack:
    return private_stack.stack


@pytest.fixture(scope="module")
def api(private_stack: Private) -> httpx.Client:
    return private_stack.api


@pytest.fixture(scope="module")
def ops_headers(private_stack: Private) -> dict[str, str]:
    return private_stack.ops_headers


@pytest.fixture(scope="module")
def community(api: httpx.Client, ops_headers: dict[str, str]) -> Community:
    return new_neighbourhood_with_people(api, ops_headers)


def timed_out_then_retried(system: Stack, path: str, body: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    """The first attempt gives up before the answer (a tiny client timeout); then RETRIES retries, half of
    them concurrently. Returns the bodies of the successful answers."""
    key = f"retry-{uuid.uuid4()}"
    sent = {**headers, "Idempotency-Key": key}
    with (
        httpx.Client(base_url=system.gateway_url, timeout=0.001) as impatient,
        contextlib.suppress(httpx.TimeoutException),
    ):
        impatient.post(path, json=body, headers=sent)
    with httpx.Client(base_url=system.gateway_url, timeout=20) as client:

        def once(_: int) -> httpx.Response:
            return client.post(path, json=body, headers=sent)

        replies = [once(0)]
        with ThreadPoolExecutor(RETRIES // 2) as pool:
            replies += list(pool.map(once, range(RETRIES // 2)))
        replies += [once(i) for i in range(RETRIES - 1 - RETRIES // 2)]
    assert all(r.status_code == 201 for r in replies), [(r.status_code, r.text[:200]) for r in replies]
    return [r.json() for r in replies]


def check(fault: str, answers: list[Any], count_effects: Callable[[], int]) -> None:
    ids = {a["id"] for a in answers}
    effects = eventually(lambda: count_effects() or None, what=f"{fault}: the effect")
    record(fault, attempted=RETRIES + 1, lost=1 - min(effects, 1), duplicated=max(0, effects - 1))
    assert len(ids) == 1, f"retries got different objects: {ids}"
    assert effects == 1, f"{fault}: {effects} effects"


def test_post_comment_registration_and_region_take_effect_once(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], community: Community
) -> None:
    c = community
    n = c.neighbourhood_id
    boards = eventually(
        lambda: (
            (r := api.get(f"/v1/neighbourhoods/{n}/boards", headers=c.resident.headers)).status_code == 200
            and {b["kind"]: b["id"] for b in r.json()}
        ),
        what="boards",
    )
    board = boards["neighbourhood_matters"]
    title = f"重试 {uuid.uuid4().hex[:8]}"

    def titled() -> int:
        reply = api.get(f"/v1/boards/{board}/posts", params={"page_size": 100}, headers=c.resident.headers)
        return sum(1 for p in reply.json()["items"] if p["title"] == title)

    posted = eventually(
        lambda: (
            timed_out_then_retried(
                system, f"/v1/boards/{board}/posts", {"title": title, "body": "x"}, c.resident.headers
            )
            if titled() == 0
            else None
        ),
        what="boards knows the resident",
    )
    check("POST /v1/boards/{id}/posts retried after a timeout", posted, titled)

    post_id = posted[0]["id"]
    text = f"评论 {uuid.uuid4().hex[:8]}"
    commented = timed_out_then_retried(system, f"/v1/posts/{post_id}/comments", {"body": text}, c.residents[1].headers)

    def comments() -> int:
        reply = api.get(f"/v1/posts/{post_id}/comments", params={"page_size": 100}, headers=c.resident.headers)
        return sum(1 for x in reply.json()["items"] if x["body"] == text)

    check("POST /v1/posts/{id}/comments retried after a timeout", commented, comments)

    code = f"R{uuid.uuid4().hex[:10]}"
    regions = timed_out_then_retried(
        system,
        "/v1/regions",
        {"level": "neighbourhood", "code": code, "name": "新村", "parent_id": c.subdistrict_id, "kind": "residential"},
        ops_headers,
    )

    def regions_with_code() -> int:
        reply = api.get("/v1/regions", params={"parent_id": c.subdistrict_id, "page_size": 100}, headers=ops_headers)
        return sum(1 for r in reply.json()["items"] if r["code"] == code)

    check("POST /v1/regions retried after a timeout", regions, regions_with_code)

    phone = unique_phone()
    seed = uuid.uuid4().hex
    registered = timed_out_then_retried(
        system,
        "/v1/registrations",
        {
            "join_code": c.join_code,
            "real_name": "钱七",
            "phone": phone,
            "id_number": valid_id_number(seed),
            "password": PASSWORD,
            "address": {"building": "7号楼", "unit": "1", "room": "701"},
        },
        {},
    )

    def pending_with_phone() -> int:
        reply = api.get(
            f"/v1/neighbourhoods/{n}/registrations",
            params={"state": "pending", "page_size": 100},
            headers=c.cadre.headers,
        )
        return sum(1 for m in reply.json()["items"] if m["phone"] == phone)

    check("POST /v1/registrations retried after a timeout", registered, pending_with_phone)
