"""PostgreSQL stopped (fast shutdown) and started again under load, on the suite's own server:
while it is down every request is refused cleanly (503/504 problem+json with a stable, retryable code,
never a 500), and afterwards the system is whole again without a manual step: requests succeed, every
report exists once, the outbox drains and the consumers catch up."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from integration.helpers import eventually
from integration.people import new_neighbourhood_with_people

from resilience.faults import Private, outbox_backlog_watch, record, sql, unsent_outbox_rows

# Bounded by the whole suite's time, not pytest's 300 s default: the system starts once (inside the first
# test's setup) and a loaded 2-core machine can take minutes over it.
pytestmark = pytest.mark.timeout(900)

REPORTS = 160
WRITERS = 4
OUTAGE_SECONDS = 4.0
CLEAN = {200, 201, 503, 504}  # 429 is not expected here: no rate limit on reports


def test_postgres_restart_under_load_refuses_cleanly_and_recovers(private_stack: Private) -> None:
    p = private_stack
    if p.pg is None:
        pytest.skip("no private PostgreSQL (initdb/postgres binaries missing)")
    api = p.api
    c = new_neighbourhood_with_people(api, p.ops_headers)
    n = c.neighbourhood_id

    def body(title: str) -> dict[str, Any]:
        return {
            "neighbourhood_id": n,
            "category_code": "rubbish",
            "title": title,
            "description": f"{title} 井盖松动",
            "location": {"address": "淞南十村5号楼", "lat": 31.3921, "lon": 121.4836},
        }

    first = eventually(
        lambda: (
            (r := api.post("/v1/issues", json=body("热身"), headers=c.resident.headers)).status_code == 201 and r.json()
        ),
        timeout=30,
        what="issues knows the neighbourhood",
    )
    run = uuid.uuid4().hex[:6]
    answers: Counter[tuple[str, int, str]] = Counter()  # (phase, status, code)
    unclean: list[str] = []
    phase = "before"
    lock = threading.Lock()
    progress = threading.Semaphore(0)
    stop_reading = threading.Event()

    def note(reply: httpx.Response, what: str) -> None:
        code = ""
        if reply.status_code >= 400:
            is_problem = reply.headers.get("content-type", "").startswith("application/problem+json")
            code = reply.json().get("code", "") if is_problem else "<not problem+json>"
            if reply.status_code not in CLEAN or not is_problem or not code:
                with lock:
                    unclean.append(f"{what}: {reply.status_code} {reply.text[:300]}")
            elif reply.status_code == 503 and not reply.json().get("retryable"):
                with lock:
                    unclean.append(f"{what}: 503 not marked retryable: {reply.text[:300]}")
        elif reply.status_code not in CLEAN:
            with lock:
                unclean.append(f"{what}: {reply.status_code} {reply.text[:300]}")
        with lock:
            answers[(phase, reply.status_code, code)] += 1

    def report(i: int) -> str:
        person = c.residents[i % len(c.residents)]
        headers = {**person.headers, "Idempotency-Key": f"pg-{run}-{i}"}
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=p.stack.gateway_url, timeout=15) as client:
            while True:
                try:
                    reply = client.post("/v1/issues", json=body(f"{run}-{i}"), headers=headers)
                    note(reply, "POST /v1/issues")
                    if reply.status_code == 201:
                        progress.release()
                        return str(reply.json()["id"])
                except httpx.TransportError as exc:
                    with lock:
                        answers[(phase, 0, type(exc).__name__)] += 1
                assert time.monotonic() < deadline, f"report {i} never succeeded"
                time.sleep(0.1)

    def read() -> None:
        """Reads go on beside the writes: one issue, the reporter's list."""
        with httpx.Client(base_url=p.stack.gateway_url, timeout=15) as client:
            while not stop_reading.is_set():
                for path in (f"/v1/issues/{first['id']}", "/v1/me/issues/reported"):
                    try:
                        note(client.get(path, headers=c.resident.headers), f"GET {path}")
                    except httpx.TransportError as exc:
                        with lock:
                            answers[(phase, 0, type(exc).__name__)] += 1
                time.sleep(0.1)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(report, i) for i in range(REPORTS)]
        for _ in range(REPORTS // 4):
            assert progress.acquire(timeout=120), "reports stopped"
        phase = "outage"
        p.pg.stop("fast")  # every session ended, new ones refused
        time.sleep(OUTAGE_SECONDS)  # the outage itself (a fault, not a synchronisation)
        p.pg.start()
        restarted = time.monotonic()
        phase = "after"
        catching_up = outbox_backlog_watch(p.stack.database_urls["issues"], restarted)

        def answered_again() -> bool:
            reply = api.get(f"/v1/issues/{first['id']}", headers=c.resident.headers)
            return reply.status_code == 200

        eventually(answered_again, timeout=60, interval=0.2, what="requests succeeding again")
        serving_again = time.monotonic() - restarted
        ids = [f.result() for f in futures]
    stop_reading.set()
    reader.join(20)

    urls = p.stack.database_urls
    titles = [t for (t,) in sql(urls["issues"], "SELECT title FROM issues WHERE title LIKE %s", f"{run}-%")]
    lost = len({f"{run}-{i}" for i in range(REPORTS)} - set(titles))
    dup = len(titles) - len(set(titles))
    eventually(lambda: unsent_outbox_rows(urls["issues"]) == 0, timeout=60, interval=0.5, what="issues' outbox drained")

    def insights_count() -> int:
        rows = sql(
            urls["insights"],
            "SELECT coalesce(sum(value), 0) FROM ins_daily WHERE neighbourhood_id = %s AND metric = %s",
            n,
            "issues_reported",
        )
        return int(rows[0][0])

    counted = eventually(
        lambda: (k := insights_count()) >= REPORTS + 1 and k, timeout=60, interval=0.5, what="insights caught up"
    )
    drained = catching_up.result(timeout=120)
    during = {f"{status} {code}".strip(): k for (ph, status, code), k in sorted(answers.items()) if ph == "outage"}
    print(f"\nanswers during the outage: {during}")
    print(f"answers overall: {dict(answers)}")
    print(f"serving again {serving_again:.1f}s after the restart; outage backlog published after {drained:.1f}s")
    refused = sum(k for (ph, status, _), k in answers.items() if ph != "before" and status in (503, 504))
    record(f"PostgreSQL fast stop {OUTAGE_SECONDS:.0f}s under load: reports", REPORTS, lost, dup, serving_again)
    record(
        "PostgreSQL fast stop: answers other than 2xx/503/504 problem+json",
        sum(answers.values()),
        len(unclean),
        0,
        None,
    )
    record(
        "PostgreSQL fast stop: issues_reported counted (outbox → insights)",
        REPORTS + 1,
        max(0, REPORTS + 1 - counted),
        max(0, counted - REPORTS - 1),
        drained,
    )
    assert not unclean, "\n".join(unclean[:20])
    assert refused > 0, f"the outage was not noticed at all: {dict(answers)}"
    assert len(set(ids)) == REPORTS and (lost, dup) == (0, 0)
    assert counted == REPORTS + 1
