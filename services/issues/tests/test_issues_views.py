"""What the servicer packs for each view: masked for neighbours, full for the reporter and staff."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from shequtong_issues.domain.access import View
from shequtong_issues.models import Issue, SlaClock, TimelineEntry
from shequtong_issues.service import IssueView
from shequtong_issues.servicer import clock_to_proto, entry_to_proto, issue_to_proto

T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def issue() -> Issue:
    return Issue(
        id="i1",
        neighbourhood_id="n1",
        subdistrict_id="s1",
        district_id="d1",
        category_code="rubbish",
        title="",
        description="垃圾",
        state="reported",
        level="neighbourhood",
        round=1,
        version=2,
        source="resident",
        reporter_id="alice",
        created_by="alice",
        assignee_id="carol",
        household_id="h-42",
        building="3号楼",
        address="",
        lat=31.4,
        lon=121.5,
        photo_urls=["https://m/1.jpg"],
        public=True,
        reported_at=T0,
        updated_at=T0,
        response_due_at=T0 + timedelta(hours=15),
        resolution_due_at=T0 + timedelta(hours=48),
        escalated=False,
        reject_reason="",
        dispatch_id="i1:r1:d1",
        grid_service_code="01-02",
    )


def test_neighbours_see_the_problem_not_the_person() -> None:
    masked = issue_to_proto(IssueView(issue(), View.PUBLIC, T0))
    assert (masked.reporter_id, masked.created_by, masked.location.household_id) == ("", "", "")
    assert masked.reporter_masked and masked.dispatch_id == ""
    assert masked.location.building == "3号楼" and masked.location.has_point
    full = issue_to_proto(IssueView(issue(), View.REPORTER, T0))
    assert (full.reporter_id, full.location.household_id, full.reporter_masked) == ("alice", "h-42", False)


def test_overdue_is_computed_at_the_viewing_time() -> None:
    assert not issue_to_proto(IssueView(issue(), View.STAFF, T0)).overdue
    assert issue_to_proto(IssueView(issue(), View.STAFF, T0 + timedelta(hours=16))).overdue


def test_timeline_entries_hide_residents_but_not_officials() -> None:
    def entry(role: str) -> TimelineEntry:
        return TimelineEntry(
            id="e",
            issue_id="i1",
            seq=1,
            at=T0,
            kind="note",
            actor_id="p1",
            actor_role=role,
            from_state="",
            to_state="",
            level="neighbourhood",
            internal=False,
            text="x",
            photo_urls=[],
            data={"dispatch_id": "i1:r1:d1", "rating": 2},
        )

    assert entry_to_proto(entry("reporter"), View.PUBLIC).actor_id == ""
    assert entry_to_proto(entry("committee"), View.PUBLIC).actor_id == "p1"
    assert entry_to_proto(entry("reporter"), View.REPORTER).actor_id == "p1"
    public = json.loads(entry_to_proto(entry("committee"), View.PUBLIC).data_json)
    assert public == {"rating": 2}
    assert "dispatch_id" in json.loads(entry_to_proto(entry("committee"), View.STAFF).data_json)


def test_a_breached_running_clock_reads_breached() -> None:
    clock = SlaClock(
        id="c",
        issue_id="i1",
        round=1,
        clock="response",
        level="subdistrict",
        started_at=T0,
        due_at=T0,
        stopped_at=None,
        outcome="running",
        breached_at=T0 + timedelta(minutes=1),
    )
    assert clock_to_proto(clock).outcome == "breached"
