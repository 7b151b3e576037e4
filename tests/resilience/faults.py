"""The fault table: one row per fault survived (or not)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import httpx
from shequtong_stack import Stack

from shequtong_kit.testing import NatsServer, PostgresServer


class Private:
    """A system of one test module's own, with the NATS server (and the PostgreSQL, if it has its own)
    it may kill."""

    def __init__(
        self,
        stack: Stack,
        nats: NatsServer,
        client: httpx.Client,
        headers: dict[str, str],
        pg: PostgresServer | None = None,
    ) -> None:
        self.stack, self.nats, self.api, self.ops_headers, self.pg = stack, nats, client, headers, pg


@dataclass
class Fault:
    fault: str
    attempted: int
    lost: int
    duplicated: int
    recovered_s: float | None = None


FAULTS: list[Fault] = []


def record(fault: str, attempted: int, lost: int, duplicated: int, recovered_s: float | None = None) -> Fault:
    row = Fault(fault, attempted, lost, duplicated, recovered_s)
    FAULTS.append(row)
    print(f"\nFAULT {row}")
    return row


def sql(url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on one service's database (SQLite or PostgreSQL): what a test checks
    behind the API, e.g. the outbox and the consumers' inbox."""
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            return list(conn.execute(query.replace("%s", "?"), params).fetchall())
    import psycopg

    with psycopg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), connect_timeout=5) as conn:
        return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]


def unsent_outbox_rows(url: str) -> int:
    return int(sql(url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")[0][0])


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` one token, `>` the rest."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or (token != "*" and token != got[i]):
            return False
    return len(want) == len(got)


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) each process of the stack has used so far (Linux /proc)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for name, proc in stack.processes.items():
        if proc.proc is None:
            continue
        try:
            with open(f"/proc/{proc.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            used[name] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return used


def outbox_backlog_watch(url: str, since: float) -> Future[float]:
    """Watches, in the background, the events left unsent in one service's outbox right now (by an
    outage that just ended): resolves to the seconds from `since` (a monotonic time) until every one of
    them is published — the relay's recovery, measured while the load goes on."""
    backlog = {e for (e,) in sql(url, "SELECT id FROM outbox WHERE sent_at IS NULL")}
    watcher: Future[float] = Future()

    def watch() -> None:
        deadline = time.monotonic() + 240
        left = backlog
        try:
            while left and time.monotonic() < deadline:
                left = backlog & {e for (e,) in sql(url, "SELECT id FROM outbox WHERE sent_at IS NULL")}
                if left:
                    time.sleep(0.2)
            if left:
                raise TimeoutError(f"{len(left)} events of the outage still unsent")
            watcher.set_result(time.monotonic() - since)
        except Exception as exc:
            watcher.set_exception(exc)

    threading.Thread(target=watch, daemon=True).start()
    return watcher
