"""The real process: console entry point, JSON log lines, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_real_process_serves_and_stops_on_sigterm(tmp_path: Any) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HTTP_PORT": str(port),
        "SIMULATOR_API_KEY": "proc-key",
        "SIMULATOR_STATE_FILE": str(tmp_path / "state.json"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("HOST", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shequtong_grid_simulator",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async with asyncio.timeout(15):
                while True:
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert proc.returncode is None, "the simulator exited during start-up"
                    await asyncio.sleep(0.05)
            assert "SIMULATOR" in (await client.get("/")).text
            r = await client.post(
                "/requests.json",
                data={"api_key": "proc-key", "service_code": "05-04", "address_string": "友谊路1号"},
            )
            assert r.status_code == 200, r.text
            rid = r.json()[0]["service_request_id"]
            assert (await client.post(f"/_sim/advance/{rid}")).status_code == 200
            assert (await client.get(f"/requests/{rid}.json")).json()[0]["status"] == "open"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            stdout, stderr = await proc.communicate()

    assert proc.returncode == 0, stderr.decode()
    records = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    messages = [r["message"] for r in records]
    assert "request created" in messages and "stage changed" in messages
    assert all({"time", "level", "service", "logger", "message"} <= set(r) for r in records)
    assert {r["service"] for r in records} == {"grid-simulator"}
    # the state file was written, so a restart would keep the case
    state = json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))
    assert [r["service_request_id"] for r in state["requests"]] == [rid]
