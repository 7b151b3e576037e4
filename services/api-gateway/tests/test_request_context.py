"""The gateway's request context middleware: every response carries the request's id (the caller's, or
a fresh one), the app sees the same id, and a declared body over the limit is refused before it is read."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from shequtong_api_gateway import problems
from shequtong_api_gateway.app import RequestContext


def _client() -> TestClient:
    app = FastAPI()
    problems.install(app)
    app.add_middleware(RequestContext, limit=10)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, str]:
        return {"seen": request.state.request_id, "body": (await request.body()).decode()}

    return TestClient(app)


def test_the_callers_request_id_is_seen_by_the_app_and_returned() -> None:
    reply = _client().post("/echo", content=b"hi", headers={"X-Request-Id": "abc-123"})
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == "abc-123" == reply.json()["seen"]
    assert reply.json()["body"] == "hi"


def test_a_request_without_an_id_gets_a_fresh_one_and_a_long_one_is_cut() -> None:
    client = _client()
    first, second = client.post("/echo").headers["x-request-id"], client.post("/echo").headers["x-request-id"]
    assert len(first) == 32 and first != second
    cut = client.post("/echo", headers={"X-Request-Id": "x" * 100})
    assert cut.headers["x-request-id"] == "x" * 64 == cut.json()["seen"]


def test_a_declared_body_over_the_limit_is_refused_with_its_code_and_the_id() -> None:
    reply = _client().post("/echo", content=b"0123456789abc", headers={"X-Request-Id": "big-1"})
    assert reply.status_code == 413
    assert reply.json()["code"] == "body_too_large" and reply.json()["request_id"] == "big-1"
    assert reply.headers["x-request-id"] == "big-1"
