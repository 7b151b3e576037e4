"""Historic content imported through the services' own bulk RPCs (as the data generator does) shows up through
the gateway like any other: backdated posts in the board's feed with their comment counts, an imported issue
with its whole record on the timeline; a re-sent batch creates nothing twice."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from shequtong_stack import Stack

from integration.helpers import eventually
from integration.people import Community, new_neighbourhood_with_people
from shequtong.boards.v1 import boards_pb2 as bpb
from shequtong.boards.v1 import boards_pb2_grpc
from shequtong.issues.v1 import issues_pb2 as ipb
from shequtong.issues.v1 import issues_pb2_grpc


@pytest.fixture(scope="module")
def community(api: httpx.Client, ops_headers: dict[str, str]) -> Community:
    return new_neighbourhood_with_people(api, ops_headers)


def stamp(moment: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(moment)
    return out


def call(system: Stack, service: str, method: str, request: Any, ops_headers: dict[str, str]) -> Any:
    stubs = {"boards": boards_pb2_grpc.BoardsServiceStub, "issues": issues_pb2_grpc.IssuesServiceStub}
    with grpc.insecure_channel(system.addr(service)) as channel:
        stub = stubs[service](channel)
        return getattr(stub, method)(request, metadata=(("authorization", ops_headers["Authorization"]),), timeout=30)


def local_day(moment: datetime) -> str:
    return moment.astimezone(timezone(timedelta(hours=8))).date().isoformat()  # insights' days: China time


def daily_posts_and_comments(
    api: httpx.Client, neighbourhood: str, headers: dict[str, str], days: Iterable[str]
) -> dict[str, tuple[str, str]]:
    reply = api.get(
        "/v1/insights/exports/daily.csv",
        params={"neighbourhood_id": neighbourhood, "period_days": 366},
        headers=headers,
    )
    assert reply.status_code == 200, reply.text
    rows = csv.DictReader(io.StringIO(reply.content.decode("utf-8-sig")))
    return {r["day"]: (r["posts"], r["comments"]) for r in rows if r["day"] in set(days)}


def accepted(system: Stack, service: str, method: str, request: Any, ops_headers: dict[str, str]) -> Any:
    """Boards learns members from identity's events: until it has, an author is refused (and nothing written)."""

    def attempt() -> Any:
        try:
            return call(system, service, method, request, ops_headers)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return None
            raise

    return eventually(attempt, what=f"{method} accepted")


def test_imported_posts_comments_and_an_issue_show_through_the_gateway(
    system: Stack, api: httpx.Client, ops_headers: dict[str, str], community: Community
) -> None:
    run = uuid.uuid4().hex[:8]
    n = community.neighbourhood_id
    boards = eventually(
        lambda: (
            {
                b["kind"]: b["id"]
                for b in api.get(f"/v1/neighbourhoods/{n}/boards", headers=community.resident.headers).json()
            }
            or None
        ),
        what="the neighbourhood's boards",
    )
    hall = boards["deliberation_hall"]
    now = datetime.now(UTC)
    posts = bpb.ImportPostsRequest(
        posts=[
            bpb.ImportPost(
                external_ref=f"it-{run}-p{i}",
                board_id=hall,
                author_id=community.residents[i % 2].person_id,
                title=f"去年的话题{i}",
                body="小区里的老话题",
                created_at=stamp(now - timedelta(days=300 - i)),
            )
            for i in range(3)
        ]
    )
    made = accepted(system, "boards", "ImportPosts", posts, ops_headers)
    assert made.result.created == 3
    assert call(system, "boards", "ImportPosts", posts, ops_headers).result.created == 0
    comments = bpb.ImportCommentsRequest(
        comments=[
            bpb.ImportComment(
                external_ref=f"it-{run}-c{i}",
                post_external_ref=f"it-{run}-p2",
                author_id=community.residents[0].person_id,
                body=f"老回复{i}",
                created_at=stamp(now - timedelta(days=297)),
            )
            for i in range(2)
        ]
    )
    assert accepted(system, "boards", "ImportComments", comments, ops_headers).result.created == 2

    feed = api.get(f"/v1/boards/{hall}/posts", headers=community.resident.headers)
    assert feed.status_code == 200, feed.text
    mine = [p for p in feed.json()["items"] if p["title"].startswith("去年的话题")]
    assert [p["title"] for p in mine] == ["去年的话题2", "去年的话题1", "去年的话题0"]
    assert mine[0]["comment_count"] == 2
    assert datetime.fromisoformat(mine[0]["created_at"]) < now - timedelta(days=290)
    # Insights counts them on their own days (boards sends an import's created events packed together).
    imported_days = {local_day(now - timedelta(days=300 - i)): ("1", "0") for i in range(3)}
    imported_days[local_day(now - timedelta(days=297))] = ("0", "2")
    eventually(
        lambda: daily_posts_and_comments(api, n, community.district_staff.headers, imported_days) == imported_days,
        what="the imported posts and comments in insights' daily figures",
    )

    reported = now - timedelta(days=40)
    cadre = community.cadre.person_id
    issue = ipb.ImportIssue(
        external_ref=f"it-{run}-issue",
        neighbourhood_id=n,
        category_code="rubbish",
        title="楼下垃圾",
        description="3号楼下垃圾堆了三天",
        location=ipb.IssueLocation(building="3号楼"),
        public=True,
        source="resident",
        reporter_id=community.resident.person_id,
        created_by=community.resident.person_id,
        assignee_id=cadre,
        reported_at=stamp(reported),
        steps=[
            ipb.ImportIssueStep(
                action=ipb.IMPORT_STEP_ACTION_ACKNOWLEDGE,
                at=stamp(reported + timedelta(hours=2)),
                actor_id=cadre,
                actor_role="committee",
            ),
            ipb.ImportIssueStep(
                action=ipb.IMPORT_STEP_ACTION_RESOLVE,
                at=stamp(reported + timedelta(hours=20)),
                actor_id=cadre,
                actor_role="committee",
                note="已清运",
            ),
            ipb.ImportIssueStep(
                action=ipb.IMPORT_STEP_ACTION_RATE, at=stamp(reported + timedelta(hours=30)), rating=5, fixed=True
            ),
        ],
    )
    imported = call(system, "issues", "ImportIssues", ipb.ImportIssuesRequest(issues=[issue]), ops_headers)
    assert (imported.created, imported.issues[0].state) == (1, "closed")
    again = call(system, "issues", "ImportIssues", ipb.ImportIssuesRequest(issues=[issue]), ops_headers)
    assert (again.created, again.skipped, again.issues[0].id) == (0, 1, imported.issues[0].id)

    timeline = api.get(f"/v1/issues/{imported.issues[0].id}/timeline", headers=community.cadre.headers)
    assert timeline.status_code == 200, timeline.text
    entries = timeline.json()["items"]
    assert [(e["kind"], e["to_state"] or "") for e in entries] == [
        ("reported", "reported"),
        ("assigned", ""),
        ("state_changed", "acknowledged"),
        ("state_changed", "resolved"),
        ("feedback", ""),
        ("state_changed", "closed"),
    ]
    assert datetime.fromisoformat(entries[0]["at"]) == reported

    seen = api.get(f"/v1/issues/{imported.issues[0].id}", headers=community.resident.headers)
    assert seen.status_code == 200 and seen.json()["state"] == "closed"
