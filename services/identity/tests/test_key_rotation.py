"""Signing-key rotation with real identity processes: `keys new` makes an entry, identity restarted with
[new, old] signs with the new key and still accepts tokens signed by the old one; once the old entry is
dropped, its tokens are refused."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import jwt
import pytest
from shequtong_identity.__main__ import keys_command

from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_kit.auth import TokenVerifier
from shequtong_kit.errors import error_info
from shequtong_kit.grpc_client import identity_jwks_loader
from shequtong_kit.testing import NatsServer, ServiceProcess, free_port, temp_workdir, wait_grpc_serving

SECRET = "rotation-client-secret"


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with temp_workdir("identity-keys-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def nats(workdir: Path) -> Iterator[NatsServer]:
    server = NatsServer(workdir).start()
    yield server
    server.stop()


def keys_new(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shequtong_identity", "keys", *args], capture_output=True, text=True, timeout=120
    )


def run_identity(
    workdir: Path, nats: NatsServer, keys: list[dict[str, str]], database_url: str
) -> tuple[ServiceProcess, int]:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "NATS_URL": nats.url,
        "GRPC_PORT": str(port),
        "GRPC_HOST": "127.0.0.1",
        "IDENTITY_SIGNING_KEYS": json.dumps(keys),
        "PII_HMAC_KEY": "h" * 32,
        "PII_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "SERVICE_ACCOUNTS": json.dumps({"rotation": {"secret": SECRET, "roles": ["operator@*"]}}),
        "SHUTDOWN_GRACE_SECONDS": "1",
    }
    proc = ServiceProcess(f"identity-{port}", "shequtong_identity", env, workdir).start()
    wait_grpc_serving(port, 180, proc)
    return proc, port


async def _token(port: int) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await identity_pb2_grpc.IdentityServiceStub(channel).IssueServiceToken(
            identity_pb2.IssueServiceTokenRequest(client_id="rotation", client_secret=SECRET), timeout=10
        )
        return str(reply.access_token)


async def _list_regions(port: int, token: str) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            await identity_pb2_grpc.IdentityServiceStub(channel).ListRegions(
                identity_pb2.ListRegionsRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10
            )
        except grpc.aio.AioRpcError as exc:
            return error_info(exc)[0]
        return "ok"


async def _verified_by_kit(port: int, token: str) -> str:
    verifier = TokenVerifier(await identity_jwks_loader(f"127.0.0.1:{port}"))
    return (await verifier.verify(token)).subject


def test_keys_new_prints_an_entry_and_refuses_nonsense(capsys: pytest.CaptureFixture[str]) -> None:
    made = keys_new("new", "--kid", "k-test-1")
    assert made.returncode == 0, made.stderr
    entry = json.loads(made.stdout)
    assert entry["kid"] == "k-test-1" and entry["pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "prepend" in made.stderr
    assert keys_command(["new"]) == 0
    generated = json.loads(capsys.readouterr().out)
    assert generated["kid"].startswith("k-") and generated["pem"] != entry["pem"]
    for wrong in ([], ["old"], ["new", "--kid"], ["new", "--kid", ""]):
        assert keys_command(wrong) == 2
        assert capsys.readouterr().err


def test_tokens_of_the_old_key_verify_after_a_rotation(workdir: Path, nats: NatsServer) -> None:
    database_url = f"sqlite+aiosqlite:///{workdir / 'identity.db'}"
    subprocess.run(
        [sys.executable, "-m", "shequtong_identity", "migrate"],
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        timeout=180,
    )
    old = json.loads(keys_new("new", "--kid", "old-key").stdout)
    new = json.loads(keys_new("new", "--kid", "new-key").stdout)

    proc, port = run_identity(workdir, nats, [old], database_url)
    try:
        before = asyncio.run(_token(port))
    finally:
        proc.stop()
    assert jwt.get_unverified_header(before)["kid"] == "old-key"

    proc, port = run_identity(workdir, nats, [new, old], database_url)
    try:
        after = asyncio.run(_token(port))
        assert jwt.get_unverified_header(after)["kid"] == "new-key", "the first key signs"
        assert asyncio.run(_list_regions(port, before)) == "ok", "a token of the old key still works"
        assert asyncio.run(_list_regions(port, after)) == "ok"
        assert asyncio.run(_verified_by_kit(port, before)) == "svc:rotation"  # what every other service does
        assert asyncio.run(_verified_by_kit(port, after)) == "svc:rotation"
    finally:
        proc.stop()

    proc, port = run_identity(workdir, nats, [new], database_url)
    try:
        assert asyncio.run(_list_regions(port, before)) == "token_invalid", "the old key is gone"
        assert asyncio.run(_list_regions(port, after)) == "ok"
    finally:
        proc.stop()
