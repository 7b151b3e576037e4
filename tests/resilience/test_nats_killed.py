"""kill -9 the NATS server in the middle of a burst of 1,000 issue reports through the gateway (every
fourth one dispatched to the grid in one click by the cadre), restart it on the same port and store:
every issue exists once, every event is in its stream once and reached every consumer once (the inbox
of each durable consumer, and the effects downstream: insights' count, the grid gateway's tickets),
every grid ticket exists once at the grid platform (the simulator), and the outboxes drain without a
manual step. Then each service killed in turn while residents post."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from integration.helpers import eventually, stream_messages
from integration.people import new_neighbourhood_with_people

from resilience.faults import (
    Private,
    cpu_seconds,
    outbox_backlog_watch,
    record,
    sql,
    subject_matches,
    unsent_outbox_rows,
)
from shequtong.events.v1 import grid_events_pb2 as grid_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev

# Bounded by the whole suite's time, not pytest's 300 s default: the system starts once (inside the first
# test's setup) and a loaded 2-core machine can take minutes over it.
pytestmark = pytest.mark.timeout(900)

GRID_TYPES: dict[str, Any] = {
    "grid.ticket.sent": grid_ev.TicketSent,
    "grid.ticket.status_changed": grid_ev.TicketStatusChanged,
    "grid.ticket.failed": grid_ev.TicketFailed,
    "grid.ticket.identified": grid_ev.TicketIdentified,
}
BURST = int(os.environ.get("SHEQUTONG_FAULT_BURST", "1000"))
DISPATCH_EVERY = 4  # every fourth report goes on to the grid (report + one-click dispatch)
WRITERS = 6

# (stream, durable consumer, the service whose database holds its inbox, its subject filters)
CONSUMERS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("ISSUES", "boards-issue-feedback", "boards", ("issues.issue.>",)),
    ("ISSUES", "grid-gateway-dispatches", "grid-gateway", ("issues.issue.dispatch_requested",)),
    ("ISSUES", "insights-issues", "insights", ("issues.issue.>", "issues.record.>")),
    ("GRID", "issues-grid-status", "issues", ("grid.ticket.sent", "grid.ticket.status_changed", "grid.ticket.failed")),
    ("GRID", "insights-grid", "insights", ("grid.ticket.>",)),
]


def _send(
    client: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str], ok: int, deadline: float
) -> dict[str, Any]:
    """One POST, retried with the same Idempotency-Key until it is answered (what a real client does)."""
    while True:
        try:
            reply = client.post(path, json=body, headers=headers)
            if reply.status_code == ok:
                return dict(reply.json())
            assert reply.status_code in (429, 503, 504), f"{path}: {reply.status_code} {reply.text}"
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{path} never succeeded"
        time.sleep(0.05)


def test_nats_killed_mid_issue_burst_loses_and_doubles_nothing(private_stack: Private) -> None:
    p = private_stack
    api = p.api
    c = new_neighbourhood_with_people(api, p.ops_headers)
    n = c.neighbourhood_id
    since = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()

    def body(title: str) -> dict[str, Any]:
        return {
            "neighbourhood_id": n,
            "category_code": "rubbish",
            "title": title,
            "description": f"{title} 楼下垃圾没人清",
            "location": {"address": "淞南十村3号楼东侧", "lat": 31.3921, "lon": 121.4836},
        }

    eventually(
        lambda: api.post("/v1/issues", json=body("热身"), headers=c.resident.headers).status_code == 201,
        timeout=30,
        what="issues knows the neighbourhood",
    )
    run = uuid.uuid4().hex[:6]
    halfway = threading.Event()
    done = Counter[str]()
    lock = threading.Lock()
    local = threading.local()
    clients: list[httpx.Client] = []

    def client() -> httpx.Client:
        """One keep-alive client per writer thread."""
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=p.stack.gateway_url, timeout=10)
            with lock:
                clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    def report(i: int) -> tuple[str, str | None]:
        deadline = time.monotonic() + 300
        person = c.residents[i % len(c.residents)]
        issue = _send(
            client(),
            "/v1/issues",
            body(f"{run}-{i}"),
            {**person.headers, "Idempotency-Key": f"issue-{run}-{i}"},
            201,
            deadline,
        )
        dispatch_id = None
        if i % DISPATCH_EVERY == 0:
            dispatched = _send(
                client(),
                f"/v1/issues/{issue['id']}/dispatch",
                {"note": "派至网格"},
                {**c.cadre.headers, "Idempotency-Key": f"dispatch-{run}-{i}"},
                200,
                deadline,
            )
            dispatch_id = str(dispatched["dispatch_id"])
        with lock:
            done["issues"] += 1
            if done["issues"] >= BURST // 3:
                halfway.set()
        return str(issue["id"]), dispatch_id

    started = time.monotonic()
    cpu_before = cpu_seconds(p.stack)
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(report, i) for i in range(BURST)]
        assert halfway.wait(150), "the burst did not get going"
        p.nats.kill()  # kill -9 mid-burst
        time.sleep(1.0)  # the server stays down for a moment while reports go on (a fault, not a synchronisation)
        p.nats.start()  # same port, same store directory
        restarted = time.monotonic()
        catching_up = outbox_backlog_watch(p.stack.database_urls["issues"], restarted)
        answers = [f.result() for f in futures]
    for each in clients:
        each.close()
    burst_s = time.monotonic() - started
    cpu = {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in cpu_seconds(p.stack).items()}
    print(f"\nCPU seconds during the burst: {cpu}")
    issue_ids = {i for i, _ in answers}
    dispatch_ids = {d for _, d in answers if d}
    dispatched = len(dispatch_ids)

    # --- the issues: each once --------------------------------------------------------------------
    urls = p.stack.database_urls
    titles = [t for (t,) in sql(urls["issues"], "SELECT title FROM issues WHERE title LIKE %s", f"{run}-%")]
    lost_issues = len({f"{run}-{i}" for i in range(BURST)} - set(titles))
    dup_issues = len(titles) - len(set(titles))

    # --- the outboxes drain, every event reaches every consumer's inbox ----------------------------
    def drained() -> bool:
        return all(unsent_outbox_rows(urls[s]) == 0 for s in ("issues", "grid-gateway"))

    eventually(drained, timeout=180, interval=0.5, what="the outboxes drained")
    streams = {name: stream_messages(p.stack.nats_url, name, ">") for name in ("ISSUES", "GRID")}

    # This journey's events: what the issues service wrote (its outbox; other journeys publish dispatch
    # requests of their own straight to the stream), and the grid's events about this journey's issues.
    produced = {e for (e,) in sql(urls["issues"], "SELECT id FROM outbox")}

    def ours(stream: str, subject: str, headers: dict[str, str], payload: bytes) -> bool:
        if stream == "ISSUES":
            return headers.get("ce-id") in produced
        kind = GRID_TYPES.get(subject)
        return kind is not None and kind.FromString(payload).issue_id in issue_ids

    def missing_in(stream: str, consumer: str, service: str, filters: tuple[str, ...]) -> set[str]:
        wanted = {
            h["ce-id"]
            for s, h, data in streams[stream]
            if any(subject_matches(f, s) for f in filters) and ours(stream, s, h, data)
        }
        handled = {e for (e,) in sql(urls[service], "SELECT event_id FROM inbox WHERE consumer = %s", consumer)}
        return wanted - handled

    missing: dict[str, int] = {}

    def consumed() -> bool:
        for name in streams:
            streams[name] = stream_messages(p.stack.nats_url, name, ">")
        missing.clear()
        missing.update({spec[1]: len(missing_in(*spec)) for spec in CONSUMERS})
        return not any(missing.values())

    try:
        eventually(consumed, timeout=180, interval=1.0, what="every event in every consumer's inbox")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: events missing per consumer {missing}") from None
    recovered = catching_up.result(timeout=180)
    ids_per_stream = {name: Counter(h["ce-id"] for _, h, _ in found) for name, found in streams.items()}
    issue_outbox = {e for (e,) in sql(urls["issues"], "SELECT id FROM outbox")}
    lost_events = len(issue_outbox - set(ids_per_stream["ISSUES"]))
    dup_events = sum(k - 1 for k in ids_per_stream["ISSUES"].values() if k > 1)
    dup_events += sum(k - 1 for k in ids_per_stream["GRID"].values() if k > 1)
    reported = Counter(
        issues_ev.IssueReported.FromString(data).issue_id
        for s, _, data in streams["ISSUES"]
        if s == "issues.issue.reported"
    )
    reported_ours = sum(k for i, k in reported.items() if i in issue_ids)

    # --- downstream effects: counted once ----------------------------------------------------------
    def insights_count() -> int:
        rows = sql(
            urls["insights"],
            "SELECT coalesce(sum(value), 0) FROM ins_daily WHERE neighbourhood_id = %s AND metric = %s",
            n,
            "issues_reported",
        )
        return int(rows[0][0])

    counted = insights_count()  # every issues event is in insights' inbox already
    tickets = Counter(
        d for d, i in sql(urls["grid-gateway"], "SELECT dispatch_id, issue_id FROM tickets") if i in issue_ids
    )

    def at_the_grid() -> Counter[str] | None:
        with httpx.Client(base_url=p.stack.simulator_url, timeout=30) as sim:
            cases = sim.get("/requests.json", params={"start_date": since}).json()
        found = Counter(m.group(0) for r in cases if (m := re.search(rf"{run}-\d+", r.get("description") or "")))
        return found if sum(found.values()) >= dispatched else None

    cases = eventually(at_the_grid, timeout=180, interval=1.0, what="every dispatch a case at the grid")
    wanted_cases = {f"{run}-{i}" for i in range(0, BURST, DISPATCH_EVERY)}

    print(f"\nburst of {BURST} reports ({dispatched} dispatched) took {burst_s:.1f}s")
    record(f"NATS kill -9 mid-burst ({BURST} reports): issues", BURST, lost_issues, dup_issues, recovered)
    record(
        f"NATS kill -9 mid-burst ({BURST} reports): events in streams",
        len(issue_outbox),
        lost_events,
        dup_events,
        recovered,
    )
    record(
        f"NATS kill -9 mid-burst ({BURST} reports): issues_reported counted",
        BURST + 1,
        max(0, BURST + 1 - counted),
        max(0, counted - BURST - 1),
        recovered,
    )
    record(
        f"NATS kill -9 mid-burst ({BURST} reports): grid tickets",
        dispatched,
        len(dispatch_ids - set(tickets)),
        sum(k - 1 for k in tickets.values()),
        recovered,
    )
    record(
        f"NATS kill -9 mid-burst ({BURST} reports): cases at the grid",
        dispatched,
        len(wanted_cases - set(cases)),
        sum(k - 1 for k in cases.values()),
        recovered,
    )
    assert len(issue_ids) == BURST and dispatched == len(wanted_cases)
    assert (lost_issues, dup_issues) == (0, 0)
    assert (lost_events, dup_events) == (0, 0) and reported_ours == BURST
    assert counted == BURST + 1, f"insights counted {counted} reports of {BURST + 1}"
    assert set(tickets) == dispatch_ids and max(tickets.values()) == 1
    assert set(cases) == wanted_cases and max(cases.values()) == 1


def test_each_service_killed_in_turn_during_load_loses_and_doubles_nothing(private_stack: Private) -> None:
    """kill -9 boards, identity and the gateway in turn while residents keep posting (clients retry with
    the same Idempotency-Key): every post exists once and the outbox drains."""
    p = private_stack
    api = p.api
    c = new_neighbourhood_with_people(api, p.ops_headers)
    n = c.neighbourhood_id
    boards = eventually(
        lambda: (
            (r := api.get(f"/v1/neighbourhoods/{n}/boards", headers=c.resident.headers)).status_code == 200
            and {b["kind"]: b["id"] for b in r.json()}
        ),
        what="boards",
    )
    board = boards["neighbourhood_matters"]
    eventually(
        lambda: all(
            api.post(f"/v1/boards/{board}/posts", json={"title": "热身", "body": "x"}, headers=w.headers).status_code
            == 201
            for w in c.residents
        ),
        what="boards knows the residents",
    )
    run = uuid.uuid4().hex[:6]
    per_victim = 40
    victims = ["boards", "identity", "api-gateway"]
    total = per_victim * len(victims)
    progress = threading.Semaphore(0)

    def write(i: int) -> str:
        person = c.residents[i % len(c.residents)]
        headers = {**person.headers, "Idempotency-Key": f"kill-{run}-{i}"}
        deadline = time.monotonic() + 300
        while True:
            try:
                with httpx.Client(base_url=p.stack.gateway_url, timeout=10) as client:
                    reply = client.post(
                        f"/v1/boards/{board}/posts", json={"title": f"{run}-{i}", "body": "x"}, headers=headers
                    )
                if reply.status_code == 201:
                    progress.release()
                    return str(reply.json()["id"])
                assert reply.status_code in (401, 429, 503, 504), reply.text
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"post {i} never succeeded"
            time.sleep(0.1)

    recovered: dict[str, float] = {}
    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(write, i) for i in range(total)]
        for victim in victims:
            for _ in range(per_victim // 3):
                assert progress.acquire(timeout=120), "writes stopped"
            p.stack.kill(victim)
            killed = time.monotonic()
            p.stack.start(victim)
            recovered[victim] = time.monotonic() - killed
        ids = [f.result() for f in futures]

    eventually(lambda: unsent_outbox_rows(p.stack.database_urls["boards"]) == 0, timeout=90, what="outbox drained")
    titles: list[str] = []
    cursor = None
    while True:
        params = {"page_size": 100, **({"cursor": cursor} if cursor else {})}
        page = api.get(f"/v1/boards/{board}/posts", params=params, headers=c.resident.headers).json()
        titles += [x["title"] for x in page["items"] if x["title"].startswith(f"{run}-")]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    lost = len({f"{run}-{i}" for i in range(total)} - set(titles))
    dup = len(titles) - len(set(titles))
    for victim in victims:
        record(f"kill -9 {victim} during posting (all {total} posts)", total, lost, dup, recovered[victim])
    assert len(set(ids)) == total
    assert (lost, dup) == (0, 0)
