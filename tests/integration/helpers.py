"""Small helpers for journeys: polling for eventually-consistent results, reading metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> T:
    """Polls until `probe` returns a truthy value (events are asynchronous); fails with the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s; last value: {last!r}")


def metric_value(port: int, name: str, **labels: str) -> float:
    """Sum of a Prometheus series on a service's metrics port whose labels include `labels`."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+([0-9.eE+-]+|NaN)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(4))
    return total


def create_region_tree(api: httpx.Client, headers: dict[str, str], suffix: str) -> dict[str, str]:
    """A district with one sub-district and two neighbourhoods (one of each kind)."""

    def make(body: dict[str, object]) -> str:
        reply = api.post("/v1/regions", json=body, headers=headers)
        assert reply.status_code == 201, reply.text
        return str(reply.json()["id"])

    district = make({"level": "district", "code": f"D{suffix}", "name": f"宝山区{suffix}"})
    subdistrict = make({"level": "subdistrict", "code": f"S{suffix}", "name": "淞南镇", "parent_id": district})
    residential = make(
        {
            "level": "neighbourhood",
            "code": f"N{suffix}-1",
            "name": "淞南十村",
            "parent_id": subdistrict,
            "kind": "residential",
        }
    )
    village = make(
        {
            "level": "neighbourhood",
            "code": f"N{suffix}-2",
            "name": "塘湾村",
            "parent_id": subdistrict,
            "kind": "village",
        }
    )
    return {"district": district, "subdistrict": subdistrict, "residential": residential, "village": village}


def publish_events(
    nats_url: str,
    events: list[tuple[str, object]],
    source: str = "/shequtong/tests",
    traceparent: str | None = None,
) -> list[str]:
    """Publishes protobuf events (subject, message) to JetStream the way the kit's outbox relay
    does — CloudEvents binary-mode headers, `Nats-Msg-Id` = `ce-id`, optionally a W3C
    `traceparent` — and returns their ids. For journeys that stand in for a producer."""
    import asyncio
    import uuid
    from datetime import UTC, datetime

    import nats

    async def go() -> list[str]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        ids = []
        for subject, message in events:
            event_id = str(uuid.uuid4())
            headers = {
                "ce-id": event_id,
                "ce-type": message.DESCRIPTOR.full_name,  # type: ignore[attr-defined]
                "ce-source": source,
                "ce-specversion": "1.0",
                "ce-time": datetime.now(UTC).isoformat(),
                "ce-subject": subject,
                "content-type": "application/protobuf",
                "Nats-Msg-Id": event_id,
            }
            if traceparent:
                headers["traceparent"] = traceparent
            await js.publish(subject, message.SerializeToString(), headers=headers, timeout=10)  # type: ignore[attr-defined]
            ids.append(event_id)
        await nc.close()
        return ids

    return asyncio.run(go())


def stream_messages(nats_url: str, stream: str, subject: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Every message stored in `stream` on `subject` (wildcards allowed), oldest first, read with
    an ephemeral consumer that acknowledges nothing: (subject, headers, payload)."""
    import asyncio

    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    async def go() -> list[tuple[str, dict[str, str], bytes]]:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        sub = await js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30),
        )
        found: list[tuple[str, dict[str, str], bytes]] = []
        while True:
            info = await sub.consumer_info()
            if not info.num_pending:
                break
            try:
                batch = await sub.fetch(batch=500, timeout=2)
            except TimeoutError:
                break
            found.extend((m.subject, dict(m.headers or {}), m.data) for m in batch)
        await sub.unsubscribe()
        await nc.close()
        return found

    return asyncio.run(go())


@contextmanager
def move_clock(offset_file: str | Path, by: timedelta) -> Iterator[None]:
    """Moves every service's clock forward by `by` (the stack's SHEQUTONG_CLOCK_OFFSET_FILE) for the
    duration of the block, then puts it back as it was."""
    path = Path(offset_file)
    previous = path.read_text() if path.exists() else None
    path.write_text(str(float(previous or 0) + by.total_seconds()))
    try:
        yield
    finally:
        if previous is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(previous)


def stream_payloads(nats_url: str, stream: str, subject: str, limit: int = 100_000) -> list[bytes]:
    """Every stored message on `subject` in `stream`, oldest first (reads the stream; consumes nothing)."""
    import asyncio

    import nats
    from nats.js.errors import NotFoundError

    async def read() -> list[bytes]:
        nc = await nats.connect(nats_url)
        found: list[bytes] = []
        try:
            js = nc.jetstream()
            seq = 1
            while len(found) < limit:
                try:
                    msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
                except NotFoundError:
                    break
                found.append(msg.data or b"")
                seq = int(msg.seq or seq) + 1
        finally:
            await nc.close()
        return found

    return asyncio.run(read())


def publish_event(nats_url: str, subject: str, payload: bytes, event_id: str, msg_id: str | None = None) -> bool:
    """Publishes one event as a producer's relay would (CloudEvents headers, `Nats-Msg-Id`); returns whether
    JetStream dropped it as a duplicate. `msg_id` other than `event_id` plays a relay retry after the window."""
    import asyncio

    import nats

    async def go() -> bool:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            headers = {
                "ce-id": event_id,
                "ce-type": "test",
                "ce-source": "/shequtong/tests",
                "ce-specversion": "1.0",
                "content-type": "application/protobuf",
                "Nats-Msg-Id": msg_id or event_id,
            }
            ack = await js.publish(subject, payload, headers=headers)
            return bool(ack.duplicate)
        finally:
            await nc.close()

    return asyncio.run(go())


def mint_token(system: object, subject: str, roles: list[str], ttl_seconds: int = 3600) -> dict[str, str]:
    """TEST-ONLY SHORTCUT: an access token signed with the running stack's identity signing key, for
    roles no real sign-in can give a test yet. Prefer real identity sign-ins (integration.people) where
    they exist. Claims as in shequtong_kit/auth.py: iss, aud, sub, typ "access", iat, exp, jti, roles.
    Returns the Authorization header."""
    import json
    import uuid as _uuid

    import jwt
    from cryptography.hazmat.primitives import serialization

    key = json.loads(system.secrets.signing_keys)[0]  # type: ignore[attr-defined]
    private = serialization.load_pem_private_key(key["pem"].encode(), password=None)
    now = int(time.time())
    claims = {
        "iss": "shequtong-identity",
        "aud": "shequtong",
        "sub": subject,
        "typ": "access",
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": _uuid.uuid4().hex,
        "roles": sorted(roles),
    }
    token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": key["kid"]})  # type: ignore[arg-type]
    return {"Authorization": f"Bearer {token}"}
