"""Signing-key rotation with real identity processes: `keys new` makes an entry, identity restarted with
[new, old] signs with the new key and still accepts tokens signed by the old one; once the old entry is
dropped, its tokens are refused."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from shequtong_identity.__main__ import keys_command

from shequtong_kit.testing import NatsServer, ServiceProcess, free_port, temp_workdir

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
    # Waits on the log, not on gRPC health: no gRPC in this process (see CLIENT).
    deadline = time.monotonic() + 180
    while '"message":"serving"' not in proc.log_text():  # the kit's JSON log line once SERVING
        assert proc.alive, proc.log_text()[-3000:]
        assert time.monotonic() < deadline, "identity did not start"
        time.sleep(0.2)
    return proc, port


# gRPC runs in a child process: a pytest process with live gRPC threads must not fork the services that
# later tests start (grpc's fork handlers abort the child — see the integration stack).
CLIENT = """
import asyncio, json, sys
import grpc
from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong_kit.auth import TokenVerifier
from shequtong_kit.errors import DomainError, error_info
from shequtong_kit.grpc_client import identity_jwks_loader

async def main(port, tokens):
    out = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = identity_pb2_grpc.IdentityServiceStub(channel)
        reply = await stub.IssueServiceToken(
            identity_pb2.IssueServiceTokenRequest(client_id="rotation", client_secret=sys.argv[2]), timeout=10
        )
        out["issued"] = reply.access_token
        verifier = TokenVerifier(await identity_jwks_loader(f"127.0.0.1:{port}"))
        for name, token in tokens.items():
            try:
                await stub.ListRegions(
                    identity_pb2.ListRegionsRequest(), metadata=(("authorization", f"Bearer {token}"),), timeout=10
                )
                out[name + ".identity"] = "ok"
            except grpc.aio.AioRpcError as exc:
                out[name + ".identity"] = error_info(exc)[0]
            try:
                out[name + ".kit"] = (await verifier.verify(token)).subject
            except DomainError as exc:
                out[name + ".kit"] = exc.code
    print(json.dumps(out))

asyncio.run(main(int(sys.argv[1]), json.loads(sys.argv[3])))
"""


def ask(port: int, **tokens: str) -> dict[str, str]:
    """A fresh service token ("issued") and, per given token, whether identity accepts it ("<name>.identity")
    and whether the kit's verifier does, as every other service would ("<name>.kit")."""
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, str(port), SECRET, json.dumps(tokens)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


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
        before = ask(port)["issued"]
    finally:
        proc.stop()
    assert jwt.get_unverified_header(before)["kid"] == "old-key"

    proc, port = run_identity(workdir, nats, [new, old], database_url)
    try:
        answers = ask(port, before=before)
    finally:
        proc.stop()
    after = answers["issued"]
    assert jwt.get_unverified_header(after)["kid"] == "new-key", "the first key signs"
    assert answers["before.identity"] == "ok", "a token of the old key still works"
    assert answers["before.kit"] == "svc:rotation", "and other services (the kit's verifier) accept it"

    proc, port = run_identity(workdir, nats, [new], database_url)
    try:
        answers = ask(port, before=before, after=after)
    finally:
        proc.stop()
    assert answers["before.identity"] == "token_invalid" and answers["before.kit"] == "token_invalid", "old key gone"
    assert answers["after.identity"] == "ok" and answers["after.kit"] == "svc:rotation"
