"""The walking skeleton crosses every process: gateway → identity (gRPC) → outbox → NATS → boards."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import nats
from shequtong_stack import Stack

from integration.helpers import create_region_tree, eventually, metric_value
from shequtong_kit.testing import OtlpCollector


def test_readyz_sees_every_service_serving(api: httpx.Client) -> None:
    reply = api.get("/readyz")
    assert reply.status_code == 200, reply.text
    services = reply.json()["services"]
    assert set(services) == {"identity", "boards", "issues", "grid-gateway", "volunteers", "insights"}
    assert all(status == "SERVING" for status in services.values()), services


def test_openapi_and_problem_json(api: httpx.Client) -> None:
    spec = api.get("/openapi.json").json()
    assert "/v1/regions" in spec["paths"]
    reply = api.get("/v1/regions")
    assert reply.status_code == 401
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == "unauthenticated"
    bad = api.get("/v1/regions", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.json()["code"] == "token_invalid"


def _republish(nats_url: str, subject: str, new_msg_id: str) -> tuple[bool, bool]:
    """Publishes the last stored event on `subject` again: once with its own Nats-Msg-Id (the relay
    retrying inside the dedupe window) and once with a fresh one (a retry after the window)."""

    async def go() -> tuple[bool, bool]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        stored = await js.get_last_msg("IDENTITY", subject)
        headers = dict(stored.headers or {})
        same = await js.publish(subject, stored.data, headers=headers)
        headers["Nats-Msg-Id"] = new_msg_id
        fresh = await js.publish(subject, stored.data, headers=headers)
        await nc.close()
        return bool(same.duplicate), bool(fresh.duplicate)

    return asyncio.run(go())


def test_event_consumed_once_even_when_published_twice(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], collector: OtlpCollector
) -> None:
    tree = create_region_tree(api, ops_headers, uuid.uuid4().hex[:6])
    neighbourhood = tree["residential"]

    def boards() -> list[dict[str, str]]:
        reply = api.get(f"/v1/neighbourhoods/{neighbourhood}/boards", headers=ops_headers)
        return reply.json() if reply.status_code == 200 else []

    first = eventually(lambda: len(boards()) == 10 and boards(), what="boards opened from the catalogue")
    assert "neighbourhood_matters" in {b["kind"] for b in first}

    port = system.metrics_ports["boards"]
    before = metric_value(port, "consumer_duplicates_total", consumer="boards-neighbourhoods")
    deduped_by_stream, deduped_fresh = _republish(system.nats_url, "identity.neighbourhood.created", uuid.uuid4().hex)
    assert deduped_by_stream is True, "JetStream should drop a copy with the same Nats-Msg-Id"
    assert deduped_fresh is False, "a copy with a new Nats-Msg-Id reaches the consumer"
    eventually(
        lambda: metric_value(port, "consumer_duplicates_total", consumer="boards-neighbourhoods") >= before + 1,
        what="the consumer's inbox skipping the copy",
    )
    assert len(boards()) == 10

    def trace_edges() -> tuple[dict[str, object], dict[str, object]] | None:
        spans = collector.snapshot()
        consumers = [
            s for s in spans if s["name"] == "identity.neighbourhood.created process" and s["service"] == "boards"
        ]
        producers = {s["span_id"]: s for s in spans if s["name"] == "identity.neighbourhood.created publish"}
        for consumer in consumers:
            producer = producers.get(str(consumer["parent_span_id"]))
            if producer and producer["trace_id"] == consumer["trace_id"]:
                gateway = [s for s in spans if s["trace_id"] == consumer["trace_id"] and s["service"] == "api-gateway"]
                if gateway:
                    return producer, consumer
        return None

    producer, consumer = eventually(trace_edges, what="a trace from the gateway through the relay to boards")
    assert producer["service"] == "identity"
    assert consumer["trace_id"] == producer["trace_id"]
