"""Abuse: password guessing is throttled, bodies are bounded (with or without a Content-Length), and one
person cannot flood a board (a per-person bucket on posts and comments)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
from integration.helpers import eventually
from integration.people import PASSWORD

from security.world import World


def problem(reply: httpx.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json"), reply.headers
    assert reply.json()["code"] == code, reply.text


def test_password_guessing_is_throttled_even_for_the_right_password(api: httpx.Client, world: World) -> None:
    victim = world.b.residents[2]
    for _ in range(5):
        wrong = api.post("/v1/auth/login", json={"phone": victim.phone, "password": "guess-123456"})
        assert wrong.status_code == 401, wrong.text
    locked = api.post("/v1/auth/login", json={"phone": victim.phone, "password": PASSWORD})
    problem(locked, 429, "too_many_attempts")
    assert locked.json().get("retryable") is True and locked.headers.get("Retry-After")
    assert victim.phone not in locked.text


def test_request_bodies_are_bounded(api: httpx.Client, world: World) -> None:
    big = "长" * 400_000  # 1.2 MB of UTF-8, over the 1 MB limit
    board = f"/v1/boards/{world.ids['board_id']}/posts"
    problem(api.post(board, json={"title": "t", "body": big}, headers=world.a.resident.headers), 413, "body_too_large")
    problem(
        api.post(
            "/v1/auth/login", content=b"{" + b" " * 2_000_000 + b"}", headers={"content-type": "application/json"}
        ),
        413,
        "body_too_large",
    )


def test_a_body_without_content_length_is_bounded_too(api: httpx.Client, world: World) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"phone": "13800000000", "password": "'
        for _ in range(40):
            yield b"a" * 50_000
        yield b'"}'

    reply = api.post("/v1/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in reply.request.headers}
    problem(reply, 413, "body_too_large")


def test_one_person_cannot_flood_a_board(api: httpx.Client, world: World) -> None:
    flooder, neighbour = world.b.residents[1], world.b.resident
    n = world.b.neighbourhood_id

    def matters() -> str | None:
        reply = api.get(f"/v1/neighbourhoods/{n}/boards", headers=flooder.headers)
        kinds = {b["kind"]: b["id"] for b in reply.json()} if reply.status_code == 200 else {}
        return kinds.get("neighbourhood_matters")

    board = eventually(matters, what="B's boards")
    statuses: list[int] = []
    limited: httpx.Response | None = None
    for i in range(80):
        reply = api.post(
            f"/v1/boards/{board}/posts", json={"title": f"刷屏{i}", "body": "广告"}, headers=flooder.headers
        )
        statuses.append(reply.status_code)
        if reply.status_code == 429:
            limited = reply
            break
    assert limited is not None, f"80 posts in a row were all accepted: {statuses}"
    problem(limited, 429, "rate_limited")
    assert limited.json().get("retryable") is True
    assert set(statuses[:-1]) == {201}, statuses
    # the bucket is per person: a neighbour still posts
    reply = api.post(
        f"/v1/boards/{board}/posts", json={"title": "正常发帖", "body": "路灯修好了"}, headers=neighbour.headers
    )
    assert reply.status_code == 201, reply.text
