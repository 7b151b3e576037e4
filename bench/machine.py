"""What the numbers were measured on: CPU model, cores, memory, Python, PostgreSQL, NATS, commit,
and how busy the machine already was (other people's work makes a run noisy)."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import psutil

from bench.procs import ROOT


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _git(*args: str) -> str:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
    return ""


def nats_version() -> str:
    from shequtong_kit.testing import nats_server_binary

    with contextlib.suppress(Exception):
        out = subprocess.run([nats_server_binary(), "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or out.stderr.strip()
    return "unknown"


def _ask_postgres(query: str, *params: Any) -> list[Any] | None:
    """The rows of one query to the bench's PostgreSQL, or None when it cannot be reached."""
    with contextlib.suppress(Exception):
        import psycopg

        from shequtong_kit.testing import POSTGRES_ADMIN_URL

        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3) as conn:
            return list(conn.execute(query, list(params) or None).fetchall())
    return None


def postgres_version() -> str:
    rows = _ask_postgres("SHOW server_version")
    if rows is None:
        return "not reachable"
    return str(rows[0][0]) if rows else "unknown"


# The server settings a run's numbers depend on. This machine kind's PostgreSQL runs with autovacuum off,
# for one: updated rows are then pruned only by the statements that meet them, and no table is analyzed
# unless the services do it themselves (the kit analyzes tables its bulk paths grow).
POSTGRES_SETTINGS = (
    "autovacuum",
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "max_connections",
    "jit",
)


def postgres_settings() -> dict[str, str]:
    rows = _ask_postgres(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)", list(POSTGRES_SETTINGS)
    )
    return {str(name): str(value) for name, value in rows or []}


def describe(postgres: str | None = None) -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": postgres or postgres_version(),
        "postgresql_settings": postgres_settings(),
        "nats_server": nats_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "branch": _git("rev-parse", "--abbrev-ref", "HEAD"),
        "load_average_at_start": [round(load1, 2), round(load5, 2)],
        "note": "development machine shared with other engineers' test runs: noisy"
        if load1 > (psutil.cpu_count() or 1) * 0.5
        else "",
    }
