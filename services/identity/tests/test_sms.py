"""The SMS senders behind the domain's port: the production HTTP gateway (against a real local HTTP
server) and the development file sink."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from shequtong_identity.settings import IdentitySettings
from shequtong_identity.sms import HttpSender, OutboxFileSender, sender_from_settings

from shequtong_kit.errors import Unavailable
from shequtong_kit.testing import free_port


class Gateway:
    """A stand-in SMS gateway: records requests, answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 202
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.requests.append((dict(self.headers), body))
                self.send_response(gateway.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    g = Gateway()
    yield g
    g.server.shutdown()


async def test_the_http_sender_posts_json_with_its_token(gateway: Gateway) -> None:
    sender = HttpSender(f"http://127.0.0.1:{gateway.port}/sms", "sms-token")
    try:
        await sender.send("13812345678", "【社区通】验证码123456", purpose="login", code="123456")
    finally:
        await sender.close()
    (headers, body), *_ = gateway.requests
    assert headers["Authorization"] == "Bearer sms-token"
    assert body == {
        "to": "13812345678",
        "text": "【社区通】验证码123456",
        "purpose": "login",
        "params": {"code": "123456"},
    }


async def test_a_refusing_or_unreachable_gateway_is_unavailable_without_the_number(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.status = 500
    for url in (f"http://127.0.0.1:{gateway.port}/sms", f"http://127.0.0.1:{free_port()}/sms"):
        sender = HttpSender(url, "t", timeout=2)
        try:
            with pytest.raises(Unavailable) as err:
                await sender.send("13812345678", "text 654321", purpose="login", code="654321")
        finally:
            await sender.close()
        assert err.value.code == "sms_unavailable" and "13812345678" not in err.value.message
    assert "13812345678" not in caplog.text and "654321" not in caplog.text


async def test_the_development_sink_appends_json_lines(tmp_path: Path) -> None:
    sink = OutboxFileSender(tmp_path / "sms" / "outbox.jsonl")
    await sink.send("13812345678", "一", purpose="login", code="000001")
    await sink.send("13912345678", "二", purpose="login", code="000002")
    lines = [json.loads(line) for line in sink.path.read_text(encoding="utf-8").splitlines()]
    assert [(line["to"], line["code"]) for line in lines] == [("13812345678", "000001"), ("13912345678", "000002")]
    assert all("development" in line["sink"] for line in lines)


def test_the_sender_follows_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {
        "DATABASE_URL": "sqlite://",
        "NATS_URL": "nats://x",
        "IDENTITY_SIGNING_KEYS": "[]",
        "PII_HMAC_KEY": "k" * 32,
        "PII_ENCRYPTION_KEY": "x",
    }
    for key, value in base.items():
        monkeypatch.setenv(key, value)
    assert sender_from_settings(IdentitySettings()) is None
    monkeypatch.setenv("SMS_OUTBOX_FILE", str(tmp_path / "o.jsonl"))
    assert isinstance(sender_from_settings(IdentitySettings()), OutboxFileSender)
    monkeypatch.setenv("SMS_HTTP_URL", "https://sms.example/send")
    assert isinstance(sender_from_settings(IdentitySettings()), HttpSender)
