"""The 15-hour clock across real processes: two issues replicas share one database; time moves for every
service through the offset file; one breach is recorded and the issue is escalated once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from shequtong_stack import Stack

from integration.helpers import create_region_tree, eventually, metric_value, publish_event, stream_payloads
from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_kit.testing import ServiceProcess, free_port, wait_grpc_serving

FIFTEEN_HOURS_AND_A_MINUTE = 15 * 3600 + 60


@pytest.fixture
def clock_offset(system: Stack) -> Iterator[Path]:
    path = Path(system.env_for("issues")["SHEQUTONG_CLOCK_OFFSET_FILE"])
    try:
        yield path
    finally:
        path.write_text("0")


@pytest.fixture
def second_replica(system: Stack) -> Iterator[tuple[ServiceProcess, int]]:
    """Another issues process on the same DATABASE_URL and NATS (its own gRPC and metrics ports)."""
    metrics_port = free_port()
    env = {
        **system.env_for("issues"),
        "GRPC_PORT": str(free_port()),
        "METRICS_PORT": str(metrics_port),
        "SHUTDOWN_GRACE_SECONDS": "2",
    }
    replica = ServiceProcess("issues-replica-2", "shequtong_issues", env, system.workdir).start()
    try:
        wait_grpc_serving(int(env["GRPC_PORT"]), 90, replica)
        yield replica, metrics_port
    finally:
        replica.stop()


def collect_issue(api: httpx.Client, system: Stack, headers: dict[str, str], neighbourhood: str) -> dict[str, object]:
    """A 身边事 post @mentioning the committee, as boards publishes it, becomes an issue."""
    post_id = str(uuid.uuid4())
    post = boards_ev.PostCreated(
        post_id=post_id,
        board_id=str(uuid.uuid4()),
        board_kind="neighbourhood_matters",
        neighbourhood_id=neighbourhood,
        author_id=f"resident-{uuid.uuid4().hex[:6]}",
        title="路灯不亮",
        body="@居委会 5号楼门口路灯坏了一周",
        mentions_committee=True,
    )

    def find() -> dict[str, object] | None:
        reply = api.get(f"/v1/neighbourhoods/{neighbourhood}/issues", headers=headers)
        if reply.status_code != 200:
            return None
        return next((i for i in reply.json()["items"] if i["source_post_id"] == post_id), None)

    publish_event(system.nats_url, "boards.post.created", post.SerializeToString(), str(uuid.uuid4()))
    # The region directory of issues may still be catching up with identity: the consumer retries.
    return eventually(find, timeout=30, interval=0.2, what="the post collected as an issue")


def test_fifteen_hours_without_response_breach_once_and_escalate_once_with_two_schedulers(
    api: httpx.Client,
    system: Stack,
    ops_headers: dict[str, str],
    clock_offset: Path,
    second_replica: tuple[ServiceProcess, int],
) -> None:
    tree = create_region_tree(api, ops_headers, uuid.uuid4().hex[:6])
    issue = collect_issue(api, system, ops_headers, tree["residential"])
    issue_id = str(issue["id"])
    assert issue["state"] == "reported" and issue["level"] == "neighbourhood"
    replica, replica_metrics = second_replica
    ports = [system.metrics_ports["issues"], replica_metrics]
    eventually(lambda: all(metric_value(p, "issues_sla_scans_total") >= 1 for p in ports), what="both schedulers")

    clock_offset.write_text(str(FIFTEEN_HOURS_AND_A_MINUTE))

    def escalated() -> dict[str, object] | None:
        body = api.get(f"/v1/issues/{issue_id}", headers=ops_headers).json()
        return body if body["state"] == "escalated" else None

    after = eventually(escalated, timeout=30, what="the automatic escalation")
    assert after["level"] == "subdistrict" and after["escalated"] is True
    # Both replicas have scanned again since (twice each): nothing more may happen.
    marks = [metric_value(p, "issues_sla_scans_total") for p in ports]
    eventually(
        lambda: all(metric_value(p, "issues_sla_scans_total") >= m + 2 for p, m in zip(ports, marks, strict=True)),
        timeout=30,
        what="two more passes of both schedulers",
    )
    assert replica.alive

    sla = api.get(f"/v1/issues/{issue_id}/sla", headers=ops_headers).json()
    assert [(b["clock"], b["level"], b["auto_escalated"], b["notified_level"]) for b in sla["breaches"]] == [
        ("response", "neighbourhood", True, "subdistrict")
    ]
    clocks = {(c["level"], c["clock"]): c["outcome"] for c in sla["clocks"]}
    assert clocks[("neighbourhood", "response")] == "breached"
    assert clocks[("neighbourhood", "resolution")] == "handed_over"
    assert clocks[("subdistrict", "response")] == "running"

    timeline = api.get(f"/v1/issues/{issue_id}/timeline", headers=ops_headers).json()["items"]
    escalations = [e for e in timeline if e["to_state"] == "escalated"]
    assert [(e["actor_role"], e["from_state"]) for e in escalations] == [("system", "reported")]
    assert sum(1 for e in timeline if e["kind"] == "sla_breached") == 1

    def events_for(subject: str, cls: type) -> list[object]:
        found = []
        for payload in stream_payloads(system.nats_url, "ISSUES", subject):
            message = cls.FromString(payload)
            if message.issue_id == issue_id:
                found.append(message)
        return found

    breached = eventually(
        lambda: events_for("issues.issue.sla_breached", issues_ev.IssueSlaBreached), what="the breach event"
    )
    assert len(breached) == 1 and breached[0].notified_level == "subdistrict" and breached[0].auto_escalated
    escalated_events = eventually(
        lambda: events_for("issues.issue.escalated", issues_ev.IssueStateChanged), what="the escalation event"
    )
    assert len(escalated_events) == 1 and escalated_events[0].actor_kind == "system"
