"""Signed webhook pushes to a real local receiver, with retries and the misbehaviour modes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

from shequtong_grid_simulator.push import arrange, sign, verify

SECRET = "test-webhook-secret"
UPDATE_FIELDS = {
    "update_id",
    "service_request_id",
    "status",
    "updated_datetime",
    "description",
    "media_url",
    "external_status_code",
    "api_key",
}


def independent_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The scheme as the README states it, written out without the simulator's code."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def test_sign_and_verify() -> None:
    body = '{"update_id":"1","description":"已立案"}'.encode()
    signature = sign("k", 1700000000, body)
    assert signature == independent_signature("k", "1700000000", body)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    assert verify("k", "1700000000", signature, body, now=1700000010)
    assert not verify("k", "1700000000", signature, body + b" ", now=1700000010)
    assert not verify("other", "1700000000", signature, body, now=1700000010)
    assert not verify("k", "1700000001", signature, body, now=1700000010)
    assert not verify("k", "1700000000", signature, body, now=1700000000 + 301)  # too old
    assert not verify("k", "1700000000", signature.removeprefix("sha256="), body, now=1700000000)
    assert not verify("k", None, signature, body)


def test_arrange_modes() -> None:
    assert arrange([1, 2, 3], duplicate=False, reverse=False) == [1, 2, 3]
    assert arrange([1, 2, 3], duplicate=False, reverse=True) == [3, 2, 1]
    assert arrange([1, 2], duplicate=True, reverse=False) == [1, 1, 2, 2]
    assert arrange([1, 2], duplicate=True, reverse=True) == [2, 2, 1, 1]


async def wait_pushed(sim: Any) -> None:
    async with asyncio.timeout(10):
        await sim.engine.pusher.wait_idle()


async def test_pushes_are_signed_ordered_and_retried(start_sim: Any, make_settings: Any, start_receiver: Any) -> None:
    async with (
        start_receiver(fail_first=1) as receiver,
        start_sim(make_settings(webhook_url=receiver.url)) as sim,
    ):
        rid = await sim.create(service_code="04-02")
        r = await sim.client.post(f"/_sim/advance/{rid}", params={"to": "closed"})
        sent = r.json()["updates"]
        await wait_pushed(sim)
        stats = await sim.stats()

    # 4 updates, the first delivered on its second attempt
    assert len(receiver.deliveries) == 5
    first, retry = receiver.deliveries[0], receiver.deliveries[1]
    assert first.body == retry.body
    assert first.headers["x-grid-delivery"] == retry.headers["x-grid-delivery"]
    assert (first.headers["x-grid-attempt"], retry.headers["x-grid-attempt"]) == ("1", "2")

    bodies = [json.loads(d.body) for d in receiver.deliveries[1:]]
    assert [b["update_id"] for b in bodies] == [u["update_id"] for u in sent]
    assert [b["external_status_code"] for b in bodies] == [
        "INVESTIGATING",
        "ACTION_SCHEDULED",
        "IN_PROGRESS",
        "FIXED",
    ]
    for body, update in zip(bodies, sent, strict=True):
        assert set(body) == UPDATE_FIELDS
        assert body["api_key"] == "test-webhook-key"
        assert {k: v for k, v in body.items() if k != "api_key"} == update
        assert body["service_request_id"] == rid

    now = time.time()
    for d in receiver.deliveries:
        assert d.headers["content-type"] == "application/json; charset=utf-8"
        ts = d.headers["x-grid-timestamp"]
        assert ts.isdigit() and abs(int(ts) - now) < 60  # unix seconds, not milliseconds
        assert d.headers["x-grid-signature"] == independent_signature(SECRET, ts, d.body)
        assert verify(SECRET, ts, d.headers["x-grid-signature"], d.body)
        assert not verify("wrong-secret", ts, d.headers["x-grid-signature"], d.body)

    assert stats["updates_pushed"] == 4
    assert stats["push_attempts"] == 5
    assert stats["push_attempts_failed"] == 1
    assert stats["pushes_abandoned"] == 0
    assert stats["push_pending"] == 0


async def test_duplicate_updates_mode_pushes_each_twice(
    start_sim: Any, make_settings: Any, start_receiver: Any
) -> None:
    async with start_receiver() as receiver, start_sim(make_settings(webhook_url=receiver.url)) as sim:
        await sim.mode(duplicate_updates=True)
        rid = await sim.create()
        r = await sim.client.post(f"/_sim/advance/{rid}", params={"to": "dispatched"})
        a, b = (u["update_id"] for u in r.json()["updates"])
        await wait_pushed(sim)
    ids = [json.loads(d.body)["update_id"] for d in receiver.deliveries]
    assert ids == [a, a, b, b]
    # a duplicate is a separate delivery, signed on its own
    assert receiver.deliveries[0].headers["x-grid-delivery"] != receiver.deliveries[1].headers["x-grid-delivery"]


async def test_out_of_order_mode_reverses_a_batch(start_sim: Any, make_settings: Any, start_receiver: Any) -> None:
    async with start_receiver() as receiver, start_sim(make_settings(webhook_url=receiver.url)) as sim:
        await sim.mode(out_of_order=True)
        rid = await sim.create()
        r = await sim.client.post(f"/_sim/advance/{rid}", params={"to": "handled"})
        sent = [u["update_id"] for u in r.json()["updates"]]
        await wait_pushed(sim)
    assert [json.loads(d.body)["update_id"] for d in receiver.deliveries] == sent[::-1]


async def test_push_does_not_block_and_gives_up_on_a_dead_receiver(
    start_sim: Any, make_settings: Any, start_receiver: Any
) -> None:
    async with start_receiver(status=503) as receiver:
        settings = make_settings(webhook_url=receiver.url, webhook_max_attempts=3, webhook_backoff_seconds=0.2)
        async with start_sim(settings) as sim:
            rid = await sim.create()
            r = await sim.client.post(f"/_sim/advance/{rid}")
            assert r.status_code == 200
            # back-off alone takes 0.2 + 0.4 s, so the answer came before the pushing ended
            assert (await sim.stats())["pushes_abandoned"] == 0
            await wait_pushed(sim)
            stats = await sim.stats()
    assert len(receiver.deliveries) == 3
    assert stats["pushes_abandoned"] == 1 and stats["updates_pushed"] == 0
    # polling is the backstop: the update is still served
    assert stats["updates_created"] == 1


async def test_webhook_url_can_be_set_by_command(sim: Any, start_receiver: Any) -> None:
    rid = await sim.create()
    await sim.client.post(f"/_sim/advance/{rid}")  # no webhook yet: nothing pushed
    async with start_receiver() as receiver:
        await sim.mode(webhook_url=receiver.url)
        await sim.client.post(f"/_sim/advance/{rid}")
        await wait_pushed(sim)
    assert [json.loads(d.body)["external_status_code"] for d in receiver.deliveries] == ["ACTION_SCHEDULED"]
