"""Session revocations reach a verifier: from the stream's recent past at start, then as they happen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_kit.auth import TokenVerifier
from shequtong_kit.nats_io import ensure_stream
from shequtong_kit.revocations import SESSION_REVOKED, SessionRevocationFollower
from shequtong_kit.testing import NatsServer, temp_workdir


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    with temp_workdir("kit-revocations-") as path:
        server = NatsServer(Path(path)).start()
        yield server
        server.stop()


def _revoked(session_id: str, at: datetime) -> bytes:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    message = ev.SessionRevoked(session_id=session_id, person_id="p", revoked_at=stamp, reason="logout")
    return message.SerializeToString()


async def _until(predicate: object, within: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def _no_keys() -> str:
    return '{"keys": []}'


async def test_follower_reads_recent_past_then_follows(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "IDENTITY")
    now = datetime.now(UTC)
    before, stale, after = (f"s-{uuid.uuid4().hex[:8]}" for _ in range(3))
    await js.publish(SESSION_REVOKED, _revoked(before, now))
    # Revoked longer ago than the lookback: its tokens have expired, nothing to remember.
    await js.publish(SESSION_REVOKED, _revoked(stale, now - timedelta(hours=1)))
    await js.publish("identity.neighbourhood.created", b"not a revocation")

    verifier = TokenVerifier(_no_keys)
    follower = SessionRevocationFollower(js, verifier, timedelta(minutes=20))
    task = asyncio.create_task(follower.run())
    try:
        assert await _until(lambda: before in verifier.revoked_sessions), "a revocation from before the start"
        await js.publish(SESSION_REVOKED, _revoked(after, datetime.now(UTC)))
        assert await _until(lambda: after in verifier.revoked_sessions), "a revocation after the start"
        await js.publish(SESSION_REVOKED, b"\xff\xff not protobuf")
        assert stale not in verifier.revoked_sessions
        assert follower.received == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await nc.close()


async def test_second_follower_is_independent(nats_server: NatsServer) -> None:
    """No durable consumer: each process (replica, restart) reads the recent past for itself."""
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_stream(js, "IDENTITY")
    sid = f"s-{uuid.uuid4().hex[:8]}"
    await js.publish(SESSION_REVOKED, _revoked(sid, datetime.now(UTC)))
    verifiers = [TokenVerifier(_no_keys), TokenVerifier(_no_keys)]
    tasks = [asyncio.create_task(SessionRevocationFollower(js, v).run()) for v in verifiers]
    try:
        for verifier in verifiers:
            assert await _until(lambda v=verifier: sid in v.revoked_sessions)  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
