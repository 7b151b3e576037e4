"""The HTTP edges: the signed webhook (over ASGI) and the Open311 adapter's wire format."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from shequtong_grid_gateway.domain import tickets as rules
from shequtong_grid_gateway.domain.delivery import Verdict
from shequtong_grid_gateway.domain.tickets import Location, Submission
from shequtong_grid_gateway.domain.webhook import sign
from shequtong_grid_gateway.open311 import Open311Platform
from shequtong_grid_gateway.platforms import PlatformError
from shequtong_grid_gateway.webhook import WEBHOOK_PATH, create_http_app
from shequtong_grid_gateway.workers import DeliveryWorker

SECRET = "test-webhook-secret"
API_KEY = "test-webhook-key"


async def ready_ok() -> dict[str, bool]:
    return {"database": True, "nats": True}


async def ready_not() -> dict[str, bool]:
    return {"database": True, "nats": False}


def client_for(h: Any, ready: Any = ready_ok) -> httpx.AsyncClient:
    app = create_http_app(h.service, h.settings, ready)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gg")


def body_for(external_id: str, update_id: str = "4000000000000001", **extra: Any) -> bytes:
    payload = {
        "update_id": update_id,
        "service_request_id": external_id,
        "status": "closed",
        "updated_datetime": "2026-03-01T10:00:00+08:00",
        "description": "核查通过，已结案",
        "media_url": None,
        "external_status_code": "FIXED",
        "api_key": API_KEY,
    }
    payload.update(extra)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def headers_for(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/json; charset=utf-8",
        "X-Grid-Timestamp": str(stamp),
        "X-Grid-Signature": sign(secret, stamp, body),
    }


async def sent(h: Any) -> Any:
    ticket = await h.dispatch()
    await DeliveryWorker(h.service, h.platform, h.settings, monotonic=lambda: 0.0).pass_once()
    return await h.ticket(ticket.id)


async def test_probes(harness: Any) -> None:
    async with client_for(harness) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 200
    async with client_for(harness, ready_not) as client:
        reply = await client.get("/readyz")
        assert reply.status_code == 503 and reply.json()["checks"]["nats"] is False


async def test_refused_pushes_change_nothing(harness: Any) -> None:
    harness.clock.set(datetime.now(UTC))
    ticket = await sent(harness)
    body = body_for(ticket.external_id)
    now = int(time.time())
    attempts = [
        ({"Content-Type": "application/json"}, body, 401, "signature_missing"),
        (headers_for(body, secret="forged"), body, 401, "signature_invalid"),
        (headers_for(body, timestamp=now - 400), body, 401, "signature_stale"),
        (headers_for(body, timestamp=now + 400), body, 401, "signature_stale"),
        # signed over one body, another sent
        (headers_for(body), body.replace(b"FIXED", b"REOPEN"), 401, "signature_invalid"),
        (headers_for(wrong := body_for(ticket.external_id, api_key="nope")), wrong, 403, "api_key_invalid"),
        (headers_for(b"[1]"), b"[1]", 400, "body_invalid"),
        (headers_for(nodate := body_for(ticket.external_id, updated_datetime="")), nodate, 400, "update_invalid"),
        (headers_for(big := b" " * 70_000), big, 413, "body_too_large"),
    ]
    async with client_for(harness) as client:
        for headers, content, status, code in attempts:
            reply = await client.post(WEBHOOK_PATH, content=content, headers=headers)
            assert (reply.status_code, reply.json()["code"]) == (status, code), code
            assert reply.headers["content-type"].startswith("application/problem+json")
        after = await harness.ticket(ticket.id)
        assert after.state == rules.SENT and after.last_update_id is None
        assert (await harness.service.get_ticket(_ops(), ticket.id)).updates == []
        # the same update, signed properly, is taken — once
        good = await client.post(WEBHOOK_PATH, content=body, headers=headers_for(body))
        assert good.status_code == 200 and good.json() == {"update_id": "4000000000000001", "outcome": "applied"}
        replay = await client.post(WEBHOOK_PATH, content=body, headers=headers_for(body))
        assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
    assert (await harness.ticket(ticket.id)).state == rules.CLOSED
    assert len([s for s, _ in await harness.events(ticket.id) if s == "grid.ticket.status_changed"]) == 1


async def test_form_encoded_pushes_are_accepted_too(harness: Any) -> None:
    harness.clock.set(datetime.now(UTC))
    ticket = await sent(harness)
    form = httpx.QueryParams(
        {
            "update_id": "4000000000000002",
            "service_request_id": ticket.external_id,
            "status": "open",
            "updated_datetime": "2026-03-01T02:00:00Z",
            "external_status_code": "INVESTIGATING",
            "api_key": API_KEY,
        }
    )
    body = str(form).encode()
    headers = {**headers_for(body), "Content-Type": "application/x-www-form-urlencoded"}
    async with client_for(harness) as client:
        reply = await client.post(WEBHOOK_PATH, content=body, headers=headers)
    assert reply.json()["outcome"] == "applied"
    assert (await harness.ticket(ticket.id)).state == rules.ACCEPTED


def _ops() -> Any:
    from shequtong_kit.auth import Principal, parse_roles

    return Principal("ops", parse_roles(["operator@*"]))


# --- the Open311 adapter ----------------------------------------------------------------------

SUBMISSION = Submission(
    service_code="01-02",
    description="暴露垃圾 & 积水",
    location=Location(31.4, 121.48, "宝山区淞南路1号"),
    media_url="https://img.example/a.jpg",
    attributes={"issue_id": "i-1", "ticket_id": "t-1"},
)


def recording(answer: httpx.Response | Exception) -> tuple[list[httpx.Request], httpx.AsyncClient]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return seen, httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_the_request_is_form_encoded_under_the_base_path() -> None:
    seen, client = recording(httpx.Response(200, json=[{"service_request_id": "G-1", "service_notice": None}]))
    platform = Open311Platform("district", "https://grid.example.gov.cn/open311/v2/", "k3y", client=client,
                               jurisdiction_id="baoshan")  # fmt: skip
    accepted = await platform.submit(SUBMISSION)
    assert (accepted.service_request_id, accepted.token) == ("G-1", None)
    [request] = seen
    assert str(request.url) == "https://grid.example.gov.cn/open311/v2/requests.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(request.content.decode()))
    assert form == {
        "api_key": "k3y",
        "service_code": "01-02",
        "description": "暴露垃圾 & 积水",
        "jurisdiction_id": "baoshan",
        "lat": "31.4000000",
        "long": "121.4800000",
        "address_string": "宝山区淞南路1号",
        "media_url": "https://img.example/a.jpg",
        "attribute[issue_id]": "i-1",
        "attribute[ticket_id]": "t-1",
    }


@pytest.mark.parametrize(
    ("answer", "verdict", "status", "retry_after", "reason"),
    [
        (httpx.Response(400, json=[{"code": 400, "description": "service_code is required"}]), Verdict.REJECTED, 400,
         None, "HTTP 400: service_code is required"),
        (httpx.Response(404, json=[{"code": 404, "description": "not found"}]), Verdict.REJECTED, 404, None,
         "HTTP 404: not found"),
        (httpx.Response(403, json=[{"code": 403, "description": "api_key"}]), Verdict.UNAUTHORIZED, 403, None,
         "HTTP 403: api_key"),
        (httpx.Response(503, text="busy", headers={"Retry-After": "5"}), Verdict.TRANSIENT, 503, 5.0, "HTTP 503"),
        (httpx.Response(200, json=[{"service_notice": "ok"}]), Verdict.TRANSIENT, 200, None,
         "the platform answered without service_request_id or token"),
        (httpx.Response(200, text="<html>"), Verdict.TRANSIENT, 200, None, "the platform answered with no JSON"),
        (httpx.ReadTimeout("slow"), Verdict.TRANSIENT, 0, None, "timeout"),
        (httpx.ConnectError("refused"), Verdict.TRANSIENT, 0, None, "network error: ConnectError"),
    ],
)  # fmt: skip
async def test_answers_become_verdicts(
    answer: Any, verdict: Verdict, status: int, retry_after: float | None, reason: str
) -> None:
    _, client = recording(answer)
    platform = Open311Platform("district", "https://grid.example", "k", client=client)
    with pytest.raises(PlatformError) as failed:
        await platform.submit(SUBMISSION)
    assert (failed.value.verdict, failed.value.http_status, failed.value.retry_after) == (verdict, status, retry_after)
    assert failed.value.reason == reason


async def test_token_answers_and_lookups() -> None:
    _, client = recording(httpx.Response(200, json=[{"token": "T-9", "service_notice": None}]))
    accepted = await Open311Platform("d", "https://grid.example", "k", client=client).submit(SUBMISSION)
    assert (accepted.service_request_id, accepted.token) == (None, "T-9")
    seen, client = recording(httpx.Response(200, json=[{"service_request_id": "G-9", "token": "T/9"}]))
    assert await Open311Platform("d", "https://grid.example", "k", client=client).resolve_token("T/9") == "G-9"
    assert str(seen[0].url) == "https://grid.example/tokens/T%2F9.json"
    _, client = recording(httpx.Response(404, json=[{"code": 404, "description": "unknown"}]))
    assert await Open311Platform("d", "https://grid.example", "k", client=client).resolve_token("T") is None


async def test_updates_and_requests_are_read_and_bad_items_skipped() -> None:
    seen, client = recording(
        httpx.Response(
            200,
            json=[
                {"update_id": "1", "service_request_id": "G-1", "status": "open",
                 "updated_datetime": "2026-03-01T10:00:00+08:00", "external_status_code": "INVESTIGATING"},
                {"update_id": "2", "service_request_id": "G-1"},
                "garbage",
            ],
        )
    )  # fmt: skip
    platform = Open311Platform("d", "https://grid.example/v2", "k", client=client)
    updates = await platform.fetch_updates(datetime(2026, 3, 1, 1, 0, 0, 500, tzinfo=UTC), ["G-1", "G-2"])
    assert [u.update_id for u in updates] == ["1"]
    assert seen[0].url.params["start_date"] == "2026-03-01T01:00:00Z"
    assert seen[0].url.params["service_request_id"] == "G-1,G-2"
    _, client = recording(
        httpx.Response(
            200,
            json=[{"service_request_id": "G-1", "status": "open", "agency_responsible": "区城管",
                   "updated_datetime": "2026-03-01T10:00:00+08:00", "expected_datetime": None}],
        )
    )  # fmt: skip
    [status] = await Open311Platform("d", "https://grid.example", "k", client=client).fetch_requests(["G-1"])
    assert (status.agency, status.status, status.expected_at) == ("区城管", "open", None)
    assert await Open311Platform("d", "https://grid.example", "k", client=client).fetch_requests([]) == []


async def test_the_http_client_finds_its_async_library_without_searching_for_it() -> None:
    """httpcore asks sniffio which async library runs on every request (four times); without sniffio
    installed each ask is a failed import that searches sys.path again (≈ 70 µs each, a third of a
    request's client CPU). sniffio is a declared dependency for that reason."""
    import importlib.util

    from httpcore._synchronization import current_async_library

    assert importlib.util.find_spec("sniffio") is not None
    assert current_async_library() == "asyncio"
