"""Small helpers for journeys: polling for eventually-consistent results, reading metrics."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
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
