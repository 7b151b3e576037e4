"""kill -9 the NATS server in the middle of a burst of 300 posts in 身边事 through the gateway, restart it
on the same port and store: every post exists once, every boards.post.created event is in the stream
exactly once (Nats-Msg-Id dedupe), and the outbox drains without a manual step."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
from integration.helpers import eventually, stream_payloads
from integration.people import new_neighbourhood_with_people

from resilience.faults import Private, record
from shequtong.events.v1 import boards_events_pb2 as ev

BURST = 300
WRITERS = 4


def unsent_outbox_rows(url: str) -> int:
    if url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            return int(conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])
    import psycopg

    with psycopg.connect(url.replace("postgresql+asyncpg://", "postgresql://")) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
        return int(row[0]) if row else 0


def test_nats_killed_mid_burst_loses_and_doubles_nothing(private_stack: Private) -> None:
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
    writers = c.residents
    eventually(
        lambda: all(
            api.post(f"/v1/boards/{board}/posts", json={"title": "热身", "body": "x"}, headers=w.headers).status_code
            == 201
            for w in writers
        ),
        what="boards knows the residents",
    )
    run = uuid.uuid4().hex[:6]
    halfway = threading.Event()
    done_count = 0
    lock = threading.Lock()

    def write(i: int) -> str:
        """One post, retried with the same key until it is answered 201 (what a real client does)."""
        nonlocal done_count
        person = writers[i % len(writers)]
        headers = {**person.headers, "Idempotency-Key": f"burst-{run}-{i}"}
        deadline = time.monotonic() + 120
        while True:
            try:
                with httpx.Client(base_url=p.stack.gateway_url, timeout=10) as client:
                    reply = client.post(
                        f"/v1/boards/{board}/posts", json={"title": f"{run}-{i}", "body": "楼道灯"}, headers=headers
                    )
                if reply.status_code == 201:
                    with lock:
                        done_count += 1
                        if done_count >= BURST // 3:
                            halfway.set()
                    return str(reply.json()["id"])
                assert reply.status_code in (429, 503, 504), reply.text
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"post {i} never succeeded"
            time.sleep(0.05)

    with ThreadPoolExecutor(WRITERS) as pool:
        futures = [pool.submit(write, i) for i in range(BURST)]
        assert halfway.wait(120), "the burst did not get going"
        p.nats.kill()  # kill -9 mid-burst
        time.sleep(1.0)  # the server stays down for a moment while writes go on (a fault, not a synchronisation)
        p.nats.start()  # same port, same store directory
        restarted = time.monotonic()
        ids = [f.result() for f in futures]

    boards_db = p.stack.database_urls["boards"]
    eventually(lambda: unsent_outbox_rows(boards_db) == 0, timeout=90, what="the outbox drained")
    recovered = time.monotonic() - restarted

    def stored_titles() -> list[str]:
        titles: list[str] = []
        cursor = None
        while True:
            params = {"page_size": 100, **({"cursor": cursor} if cursor else {})}
            page = api.get(f"/v1/boards/{board}/posts", params=params, headers=c.resident.headers).json()
            titles += [x["title"] for x in page["items"] if x["title"].startswith(f"{run}-")]
            cursor = page.get("next_cursor")
            if not cursor:
                return titles

    titles = stored_titles()
    wanted = {f"{run}-{i}" for i in range(BURST)}
    lost_posts = len(wanted - set(titles))
    dup_posts = len(titles) - len(set(titles))

    def events() -> list[str]:
        return [
            e.post_id
            for e in (
                ev.PostCreated.FromString(b) for b in stream_payloads(p.stack.nats_url, "BOARDS", "boards.post.created")
            )
            if e.post_id in set(ids)
        ]

    published = eventually(
        lambda: (found := events()) and len(set(found)) == len(set(ids)) and found,
        timeout=60,
        what="every post's event in the stream",
    )
    lost_events = len(set(ids) - set(published))
    dup_events = len(published) - len(set(published))
    record("NATS kill -9 mid-burst (300 posts): posts", BURST, lost_posts, dup_posts, recovered)
    record("NATS kill -9 mid-burst (300 posts): boards.post.created", BURST, lost_events, dup_events, recovered)
    assert len(set(ids)) == BURST
    assert (lost_posts, dup_posts) == (0, 0)
    assert (lost_events, dup_events) == (0, 0)


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
        deadline = time.monotonic() + 150
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
