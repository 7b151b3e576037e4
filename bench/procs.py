"""Processes of a benchmark run: start on loopback, wait until they answer, measure their CPU, stop them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from shequtong_kit.testing import dies_with_parent

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    """`python <args>` with the repository on PYTHONPATH, output in `<workdir>/<name>.log`."""

    def __init__(self, name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log_path = workdir / f"{name}.log"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            dies_with_parent([sys.executable, *self.args]),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            text = self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{text}")

    def stop(self, timeout: float = 15) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def wait_http(url: str, proc: Proc | None = None, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def wait_port(port: int, proc: Proc | None = None, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            proc.check_alive()
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} within {timeout}s")


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (other users' backends included: noisy)."""
    pids = []
    for proc in psutil.process_iter(["name"]):
        if (proc.info.get("name") or "").startswith("postgres"):
            pids.append(proc.pid)
    return pids


class CpuMeter:
    """CPU used by named process trees between `start()` and `stop()`, in cores (1.0 = one core busy)."""

    def __init__(self, groups: dict[str, Iterable[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self._before: dict[str, dict[int, float]] = {}
        self._t0 = 0.0
        self._system0: Any = None

    @staticmethod
    def _snapshot(pids: list[int]) -> dict[int, float]:
        seen: dict[int, float] = {}
        for pid in pids:
            for proc in _tree(pid):
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    # children_*: reaped children (a PostgreSQL backend that closed, a uvicorn worker).
                    seen[proc.pid] = times.user + times.system + times.children_user + times.children_system
        return seen

    def start(self) -> CpuMeter:
        self._before = {name: self._snapshot(pids) for name, pids in self.groups.items()}
        self._system0 = psutil.cpu_times()
        self._t0 = time.monotonic()
        return self

    def stop(self) -> dict[str, Any]:
        wall = max(time.monotonic() - self._t0, 1e-6)
        cores: dict[str, float] = {}
        for name, pids in self.groups.items():
            after = self._snapshot(pids)
            before = self._before.get(name, {})
            used = sum(after.values()) - sum(before.values())
            cores[name] = round(used / wall, 3)
        system1 = psutil.cpu_times()
        busy0 = sum(self._system0) - self._system0.idle - getattr(self._system0, "iowait", 0)
        busy1 = sum(system1) - system1.idle - getattr(system1, "iowait", 0)
        busy = (busy1 - busy0) / wall
        return {
            "cores_by_process": cores,
            "machine_busy_cores": round(busy, 3),
            "machine_cores": psutil.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }


def wait_until_idle(
    groups: dict[str, Iterable[int]], *, below: float = 0.15, window: float = 1.0, within: float = 90.0
) -> dict[str, Any]:
    """Waits until the measured processes together use less than `below` cores over `window` seconds.

    A phase that overloads the system leaves it working on requests its driver gave up on (and on the
    events they wrote); the next phase would measure that tail instead of its own journey."""
    started = time.monotonic()
    busy = float("inf")
    while time.monotonic() - started < within:
        meter = CpuMeter(groups).start()
        time.sleep(window)
        busy = sum(meter.stop()["cores_by_process"].values())
        if busy < below:
            break
    return {"seconds": round(time.monotonic() - started, 1), "idle": busy < below, "last_cores": round(busy, 3)}
