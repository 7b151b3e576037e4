"""The insight centre over the running system.

A scripted week of activity across two sub-districts is published as the producers' real events
(JetStream, their subjects and streams, CloudEvents headers and Nats-Msg-Id as the kit's relay sends
them, times in the past week); the portraits, comparisons and exports must show the expected counts
and medians. A spike of one category in one neighbourhood raises exactly one work prompt, there. A
rebuild drops every projection and replays the streams; the figures come back the same. A real
journey through the gateway (identity creates neighbourhoods) reaches the portraits too.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from google.protobuf.message import Message
from shequtong_stack import Stack

from integration.helpers import eventually, metric_value, mint_token
from integration.people import new_neighbourhood_with_people
from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong.events.v1 import volunteers_events_pb2 as volunteers_ev
from shequtong_kit.proto import ts

PERIOD = 7
RESIDENTIAL, VILLAGE = 1, 2
H = timedelta(hours=1)


def stack_now(system: Stack) -> datetime:
    """The services' "now": real time plus the offset other journeys may have set on the shared clock."""
    path = system.workdir / "clock-offset"
    offset = float(path.read_text().strip() or 0) if path.exists() else 0.0
    return datetime.now(UTC) + timedelta(seconds=offset)


@dataclass
class Script:
    """Events to publish, as the producers' outbox relays would."""

    items: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def add(self, subject: str, message: Message, at: datetime) -> None:
        event_id = uuid.uuid4().hex
        headers = {
            "ce-id": event_id,
            "ce-type": message.DESCRIPTOR.full_name,
            "ce-source": f"/shequtong/{subject.split('.', 1)[0]}",
            "ce-specversion": "1.0",
            "ce-time": at.isoformat(),
            "ce-subject": subject,
            "content-type": "application/protobuf",
            "Nats-Msg-Id": event_id,
        }
        self.items.append((subject, message.SerializeToString(), headers))

    def publish(self, nats_url: str) -> None:
        async def go() -> None:
            nc = await nats.connect(nats_url)
            js = nc.jetstream()
            for subject, payload, headers in self.items:
                await js.publish(subject, payload, headers=headers, timeout=10)
            await nc.close()

        asyncio.run(go())

    # --- producers' events -------------------------------------------------------------------------
    def neighbourhood(self, nid: str, sid: str, did: str, kind: int, name: str, at: datetime) -> None:
        msg = identity_ev.NeighbourhoodCreated(
            neighbourhood_id=nid, code=f"C-{nid[:8]}", name=name, kind=kind, subdistrict_id=sid, district_id=did
        )  # type: ignore[arg-type]
        self.add("identity.neighbourhood.created", msg, at)

    def issue(
        self,
        nid: str,
        category: str,
        reporter: str,
        reported_at: datetime,
        *,
        steps: tuple[tuple[str, float, str], ...] = (),
        building: str = "",
    ) -> str:
        issue_id = str(uuid.uuid4())
        self.add(
            "issues.issue.reported",
            issues_ev.IssueReported(
                issue_id=issue_id,
                neighbourhood_id=nid,
                category_code=category,
                reporter_id=reporter,
                source="resident",
                reported_at=ts(reported_at),
                building=building,
            ),
            reported_at,
        )
        for transition, hours, level in steps:
            at = reported_at + timedelta(hours=hours)
            self.add(
                f"issues.issue.{transition}",
                issues_ev.IssueStateChanged(
                    issue_id=issue_id,
                    neighbourhood_id=nid,
                    to_state=transition,
                    level=level,
                    occurred_at=ts(at),
                    category_code=category,
                    reported_at=ts(reported_at),
                    actor_id=f"cadre-of-{nid[:8]}",
                ),
                at,
            )
        return issue_id


@dataclass
class Week:
    district: str
    s1: str
    s2: str
    n1: str  # residential, S1 — the scripted neighbourhood
    n2: str  # residential, S1 — its peer
    n3: str  # village, S1
    m1: str  # residential, S2
    m2: str  # village, S2
    staff: dict[str, str]


@pytest.fixture(scope="module")
def week(system: Stack) -> Week:
    ids = [str(uuid.uuid4()) for _ in range(8)]
    w = Week(*ids, staff={})  # type: ignore[misc]
    w.staff = mint_token(system, f"staff-{w.district[:8]}", [f"district_staff@d:{w.district}"])
    now = stack_now(system)
    base = now - timedelta(days=4)
    s = Script()
    for nid, sid, kind, name in (
        (w.n1, w.s1, RESIDENTIAL, "淞南十村"),
        (w.n2, w.s1, RESIDENTIAL, "淞南九村"),
        (w.n3, w.s1, VILLAGE, "塘湾村"),
        (w.m1, w.s2, RESIDENTIAL, "友谊一村"),
        (w.m2, w.s2, VILLAGE, "海星村"),
    ):
        s.neighbourhood(nid, sid, w.district, kind, name, now - timedelta(days=90))
    # Ten residents of n1 in five households, verified 40 days ago; one more registered this week.
    residents = [f"r{i}-{w.n1[:8]}" for i in range(10)]
    for i, person in enumerate(residents):
        s.add(
            "identity.membership.verified",
            identity_ev.MemberVerified(
                person_id=person,
                neighbourhood_id=w.n1,
                membership_id=f"m-{person}",
                household_id=f"h{i // 2}-{w.n1[:8]}",
            ),
            now - timedelta(days=40),
        )
    s.add(
        "identity.membership.joined",
        identity_ev.MemberJoined(person_id="newcomer", neighbourhood_id=w.n1, membership_id=f"m-new-{w.n1[:8]}"),
        now - timedelta(days=2),
    )
    # Six posts by four residents.
    for i, person in enumerate(residents[i] for i in (0, 1, 2, 3, 0, 1)):
        at = base + timedelta(hours=5 * i)
        s.add(
            "boards.post.created",
            boards_ev.PostCreated(
                post_id=str(uuid.uuid4()), neighbourhood_id=w.n1, author_id=person, created_at=ts(at)
            ),
            at,
        )
    # Four comments by two more residents, three votes (two more people), a topic proposed and taken
    # to consultation, and a convention adopted: eight different people took part.
    for i, person in enumerate(residents[i] for i in (4, 5, 4, 5)):
        at = base + timedelta(hours=2 + 5 * i)
        s.add(
            "boards.comment.created",
            boards_ev.CommentCreated(
                comment_id=str(uuid.uuid4()), neighbourhood_id=w.n1, author_id=person, kind="member", created_at=ts(at)
            ),
            at,
        )
    poll = str(uuid.uuid4())
    for person in (residents[0], residents[6], residents[7]):
        s.add(
            "boards.poll.voted",
            boards_ev.VoteCast(poll_id=poll, neighbourhood_id=w.n1, person_id=person, cast_at=ts(base + 20 * H)),
            base + 20 * H,
        )
    topic = str(uuid.uuid4())
    for hours, (before, after) in enumerate((("", "proposed"), ("proposed", "review"), ("review", "consultation"))):
        at = base + timedelta(hours=hours)
        s.add(
            "boards.topic.stage_changed",
            boards_ev.TopicStageChanged(
                topic_id=topic,
                neighbourhood_id=w.n1,
                from_stage=before,
                to_stage=after,
                actor_id=residents[0],
                occurred_at=ts(at),
            ),
            at,
        )
    s.add(
        "boards.convention.adopted",
        boards_ev.ConventionAdopted(
            convention_id=str(uuid.uuid4()),
            neighbourhood_id=w.n1,
            topic_id=topic,
            version=1,
            adopted_at=ts(base + 30 * H),
        ),
        base + 30 * H,
    )
    # Five issues in n1: first responses after 1, 2, 3, 4 and 10 hours (median 3); four resolved after
    # 5, 8, 12 and 20 hours (median 10), one of them at the sub-district (3 of 4 solved inside).
    nb, sd = "neighbourhood", "subdistrict"
    plans: list[tuple[str, tuple[tuple[str, float, str], ...]]] = [
        ("sanitation", (("acknowledged", 1, nb), ("resolved", 5, nb))),
        ("sanitation", (("acknowledged", 2, nb), ("resolved", 8, nb))),
        ("sanitation", (("acknowledged", 3, nb), ("escalated", 4, sd), ("resolved", 12, sd))),
        ("parking", (("acknowledged", 4, nb), ("resolved", 20, nb))),
        ("parking", (("acknowledged", 10, nb),)),
    ]
    issue_ids = [
        s.issue(w.n1, category, residents[i % 4], base + timedelta(hours=3 * i), steps=steps)
        for i, (category, steps) in enumerate(plans)
    ]
    s.add(
        "issues.issue.sla_breached",
        issues_ev.IssueSlaBreached(
            issue_id=issue_ids[4], neighbourhood_id=w.n1, clock="response", breached_at=ts(base + timedelta(hours=9))
        ),
        base + timedelta(hours=9),
    )
    for issue_id, rating in ((issue_ids[0], 5), (issue_ids[1], 3)):
        at = base + timedelta(days=1)
        s.add(
            "issues.issue.rated",
            issues_ev.IssueRated(issue_id=issue_id, neighbourhood_id=w.n1, rating=rating, fixed=True, rated_at=ts(at)),
            at,
        )
    s.add(
        "volunteers.volunteer.approved",
        volunteers_ev.VolunteerApproved(
            volunteer_id=str(uuid.uuid4()), person_id=residents[0], neighbourhood_id=w.n1, approved_at=ts(base)
        ),
        base,
    )
    # The others: n2 answered after 2, 4 and 6 hours; n3 after 8; m1 after 1 and 5; m2 is quiet.
    for nid, category, hours in (
        (w.n2, "noise", (2, 4, 6)),
        (w.n3, "sanitation", (8,)),
        (w.m1, "parking", (1, 5)),
    ):
        for i, h in enumerate(hours):
            s.issue(nid, category, f"someone-{i}", base + timedelta(hours=i), steps=(("acknowledged", h, nb),))
    s.publish(system.nats_url)
    return w


def portrait(api: httpx.Client, nid: str, headers: dict[str, str], days: int = PERIOD) -> httpx.Response:
    return api.get(f"/v1/insights/neighbourhoods/{nid}/portrait", params={"period_days": days}, headers=headers)


def settled_portrait(api: httpx.Client, w: Week) -> dict[str, Any]:
    expected = {
        "issues_reported": 5,
        "issues_resolved": 4,
        "ratings": 2,
        "posts": 6,
        "comments": 4,
        "votes": 3,
        "conventions_adopted": 1,
        "topics_proposed": 1,
        "residents": 10,
    }

    def probe() -> dict[str, Any] | None:
        reply = portrait(api, w.n1, w.staff)
        if reply.status_code != 200:
            return None
        body = reply.json()
        seen = {key: body["figures"][key] for key in expected}
        peer_ready = body["peer_figures"] and body["peer_figures"]["response_time"]["count"] == 3
        return body if seen == expected and peer_ready else None

    return eventually(probe, timeout=30, what="the scripted week in n1's portrait")


def test_a_scripted_week_gives_the_expected_counts_and_medians(api: httpx.Client, week: Week) -> None:
    body = settled_portrait(api, week)
    f = body["figures"]
    assert body["visibility"] == "full"
    assert (body["name"], body["kind"], body["days_on_platform"]) == ("淞南十村", "residential", 90)
    assert (f["residents"], f["households"], f["residents_joined"]) == (10, 5, 1)
    assert (f["active_residents"], f["participation_rate"]) == (8, 0.8)
    assert f["topics_by_stage"] == [{"stage": "consultation", "count": 1}]
    assert f["conventions_total"] == 1
    assert (f["issues_acknowledged"], f["issues_escalated"], f["issues_open"], f["sla_breaches"]) == (5, 1, 1, 1)
    assert (f["response_time"]["count"], f["response_time"]["median_hours"]) == (5, 3.0)
    assert (f["resolution_time"]["count"], f["resolution_time"]["median_hours"]) == (4, 10.0)
    assert (f["resolved_inside"], f["share_resolved_inside"]) == (3, 0.75)
    assert (f["mean_rating"], f["share_satisfied"]) == (4.0, 0.5)
    assert f["volunteers_approved"] == 1
    assert body["top_categories"] == [
        {"category_code": "sanitation", "count": 3, "share": 0.6},
        {"category_code": "parking", "count": 2, "share": 0.4},
    ]
    # Against similar neighbourhoods (residential, same sub-district: n2 only) and its own past.
    assert body["peer_ids"] == [week.n2]
    assert body["peer_figures"]["response_time"]["median_hours"] == 4.0
    trend = next(t for t in body["trends"] if t["measure"] == "response_median_hours")
    assert (trend["current"], trend["peer_median"], trend["versus_peers"]) == (3.0, 4.0, "below")
    assert (trend["previous"], trend["direction"]) == (None, "no_data")
    assert "3.0 h" in trend["statement"] and "4.0 h" in trend["statement"]


def test_comparisons_side_by_side_and_as_csv(api: httpx.Client, week: Week) -> None:
    settled_portrait(api, week)

    def compare(**params: Any) -> dict[str, Any]:
        reply = api.get("/v1/insights/comparisons", params={"period_days": PERIOD, **params}, headers=week.staff)
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    by_sub = {row["key"]: row for row in compare(district_id=week.district, group_by="subdistrict")["items"]}
    assert set(by_sub) == {week.s1, week.s2}
    s1, s2 = by_sub[week.s1], by_sub[week.s2]
    assert (s1["neighbourhoods"], s1["figures"]["issues_reported"]) == (3, 9)
    assert s1["figures"]["response_time"]["median_hours"] == 4.0  # 1,2,2,3,4,4,6,8,10
    assert (s2["neighbourhoods"], s2["figures"]["issues_reported"]) == (2, 2)
    assert s2["figures"]["response_time"]["median_hours"] == 3.0
    by_kind = {row["key"]: row for row in compare(district_id=week.district, group_by="kind")["items"]}
    assert by_kind["residential"]["figures"]["response_time"]["median_hours"] == 3.5
    assert (by_kind["village"]["neighbourhoods"], by_kind["village"]["figures"]["issues_reported"]) == (2, 1)

    first = compare(district_id=week.district, group_by="neighbourhood", page_size=3)
    rest = compare(district_id=week.district, group_by="neighbourhood", page_size=3, cursor=first["next_cursor"])
    keys = [row["key"] for row in first["items"] + rest["items"]]
    assert keys == sorted([week.n1, week.n2, week.n3, week.m1, week.m2]) and rest["next_cursor"] is None

    exported = api.get(
        "/v1/insights/exports/comparison.csv",
        params={"district_id": week.district, "group_by": "subdistrict", "period_days": PERIOD},
        headers=week.staff,
    )
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig")))}
    assert (rows[week.s1]["issues_reported"], rows[week.s1]["response_median_hours"]) == ("9", "4.0")
    daily = api.get(
        "/v1/insights/exports/daily.csv",
        params={"neighbourhood_id": week.n1, "period_days": PERIOD},
        headers=week.staff,
    )
    assert daily.status_code == 200, daily.text
    days = list(csv.DictReader(io.StringIO(daily.content.decode("utf-8-sig"))))
    assert len(days) == PERIOD
    assert sum(int(r["issues_reported"]) for r in days) == 5
    assert sum(int(r["posts"]) for r in days) == 6


def test_each_sees_only_their_own(api: httpx.Client, system: Stack, week: Week) -> None:
    settled_portrait(api, week)
    other_cadre = mint_token(system, "cadre-n2", [f"cadre@n:{week.n2}", f"resident@n:{week.n2}"])
    refused = portrait(api, week.n1, other_cadre)
    assert refused.status_code == 403 and refused.json()["code"] == "portrait_forbidden"
    other_staff = mint_token(system, "staff-s2", [f"subdistrict_staff@s:{week.s2}"])
    assert portrait(api, week.n1, other_staff).status_code == 403
    assert portrait(api, week.m1, other_staff).status_code == 200
    refused_compare = api.get("/v1/insights/comparisons", params={"district_id": week.district}, headers=other_staff)
    assert refused_compare.status_code == 403 and refused_compare.json()["code"] == "comparison_forbidden"

    resident = mint_token(system, f"r0-{week.n1[:8]}", [f"resident@n:{week.n1}"])
    public = portrait(api, week.n1, resident).json()
    assert public["visibility"] == "public"
    assert (public["figures"]["issues_resolved"], public["figures"]["response_time"]["median_hours"]) == (4, 3.0)
    assert (public["figures"]["conventions_adopted"], public["figures"]["conventions_total"]) == (1, 1)
    assert (public["figures"]["posts"], public["figures"]["residents"], public["peer_figures"]) == (0, 0, None)
    assert public["trends"] == [] and public["top_categories"] == []
    assert portrait(api, week.n2, resident).status_code == 403
    listed = api.get("/v1/insights/prompts", headers=resident)
    assert listed.status_code == 403
    assert portrait(api, week.n1, {}).status_code == 401


@dataclass
class Spike:
    district: str
    sub: str
    hot: str
    calm: str
    elsewhere: str


@pytest.fixture(scope="module")
def spike(system: Stack) -> Spike:
    sp = Spike(*(str(uuid.uuid4()) for _ in range(5)))
    other_sub = str(uuid.uuid4())
    now = stack_now(system)
    s = Script()
    s.neighbourhood(sp.hot, sp.sub, sp.district, RESIDENTIAL, "长江小区", now - timedelta(days=60))
    s.neighbourhood(sp.calm, sp.sub, sp.district, RESIDENTIAL, "黄河小区", now - timedelta(days=60))
    s.neighbourhood(sp.elsewhere, other_sub, sp.district, VILLAGE, "新华村", now - timedelta(days=60))
    # Six leaking pipes in two days in one neighbourhood (none in the 28 days before), at different
    # buildings; two in its neighbour and one in the other sub-district: background.
    for i in range(6):
        s.issue(sp.hot, "leaking_pipe", f"p{i}", now - 2 * H - timedelta(hours=7 * i), building=f"{i + 1}号楼")
    for i in range(2):
        s.issue(sp.calm, "leaking_pipe", f"q{i}", now - timedelta(days=3 + i))
    s.issue(sp.elsewhere, "leaking_pipe", "v0", now - timedelta(days=5))
    s.publish(system.nats_url)
    return sp


def test_a_spike_raises_exactly_one_prompt_there(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], spike: Spike
) -> None:
    staff = mint_token(system, "staff-spike", [f"district_staff@d:{spike.district}"])
    eventually(
        lambda: (
            portrait(api, spike.hot, staff).json().get("figures", {}).get("issues_reported") == 6
            and portrait(api, spike.calm, staff).json()["figures"]["issues_reported"] == 2
            and portrait(api, spike.elsewhere, staff).json()["figures"]["issues_reported"] == 1
        ),
        timeout=30,
        what="the spike's issues projected",
    )
    first = api.post("/v1/insights/detections", headers={**ops_headers, "Idempotency-Key": uuid.uuid4().hex})
    assert first.status_code == 200, first.text
    again = api.post("/v1/insights/detections", headers={**ops_headers, "Idempotency-Key": uuid.uuid4().hex})
    assert again.status_code == 200
    assert [p for p in again.json()["created"] if p["district_id"] == spike.district] == []

    listed = api.get("/v1/insights/prompts", params={"district_id": spike.district}, headers=staff).json()["items"]
    assert len(listed) == 1, listed
    prompt = listed[0]
    assert (prompt["level"], prompt["neighbourhood_id"], prompt["rule"], prompt["subject"]) == (
        "neighbourhood",
        spike.hot,
        "category_spike",
        "leaking_pipe",
    )
    evidence = prompt["evidence"]
    assert (evidence["observed"], evidence["baseline_count"], evidence["expected"]) == (6, 0, 0.25)
    assert evidence["p_value"] < evidence["p_threshold"] == 0.01 and evidence["min_count"] == 5
    assert "Poisson" in evidence["rule_text"] and len(evidence["issue_ids"]) == 6
    raised = metric_value(system.metrics_ports["insights"], "insights_prompts_raised_total", rule="category_spike")
    assert raised >= 1
    assert prompt["status"] == "open"

    hot_cadre = mint_token(system, "cadre-hot", [f"cadre@n:{spike.hot}"])
    calm_cadre = mint_token(system, "cadre-calm", [f"cadre@n:{spike.calm}"])
    assert api.get("/v1/insights/prompts", headers=calm_cadre).json()["items"] == []
    hidden = api.get(f"/v1/insights/prompts/{prompt['id']}", headers=calm_cadre)
    assert hidden.status_code == 404 and hidden.json()["code"] == "prompt_not_found"
    assert api.post(f"/v1/insights/prompts/{prompt['id']}/acknowledge", headers=calm_cadre).status_code == 404

    key = {"Idempotency-Key": uuid.uuid4().hex}
    acked = api.post(
        f"/v1/insights/prompts/{prompt['id']}/acknowledge", json={"note": "物业排查"}, headers={**hot_cadre, **key}
    )
    assert acked.status_code == 200, acked.text
    retried = api.post(
        f"/v1/insights/prompts/{prompt['id']}/acknowledge", json={"note": "物业排查"}, headers={**hot_cadre, **key}
    )
    assert retried.json() == acked.json()
    assert (acked.json()["status"], acked.json()["decided_by"]) == ("acknowledged", "cadre-hot")
    no_reason = api.post(f"/v1/insights/prompts/{prompt['id']}/dismiss", json={"reason": ""}, headers=hot_cadre)
    assert no_reason.status_code == 422
    mine = api.get("/v1/insights/prompts", params={"status": "acknowledged"}, headers=hot_cadre).json()["items"]
    assert [p["id"] for p in mine] == [prompt["id"]]
    refused = api.post("/v1/insights/detections", headers=hot_cadre)
    assert refused.status_code == 403 and refused.json()["code"] == "operator_required"


def test_a_real_community_through_identity(api: httpx.Client, ops_headers: dict[str, str]) -> None:
    """Real people: identity's registrations and verifications reach the portrait, and identity's own
    tokens get the same answers (a cadre of the other neighbourhood is refused)."""
    community = new_neighbourhood_with_people(api, ops_headers)
    n1 = community.neighbourhood_id

    def ready() -> dict[str, Any] | None:
        reply = portrait(api, n1, community.cadre.headers)
        if reply.status_code != 200:
            return None
        body = reply.json()
        return body if body["figures"]["residents"] == 3 else None

    body = eventually(ready, timeout=30, what="identity's verified residents in the portrait")
    f = body["figures"]
    assert (body["name"], body["kind"], body["days_on_platform"]) == ("淞南十村", "residential", 0)
    assert (f["residents_joined"], f["residents_verified"], f["households"]) == (3, 3, 3)
    refused = portrait(api, n1, community.other_cadre.headers)
    assert refused.status_code == 403 and refused.json()["code"] == "portrait_forbidden"
    public = portrait(api, n1, community.resident.headers).json()
    assert public["visibility"] == "public" and public["figures"]["residents"] == 0
    assert portrait(api, n1, community.other_resident.headers).status_code == 403

    def village() -> dict[str, Any] | None:
        reply = portrait(api, community.other_neighbourhood_id, community.subdistrict_staff.headers)
        body = reply.json() if reply.status_code == 200 else None
        return body if body and body["figures"]["residents"] == 1 else None

    assert eventually(village, what="the village's resident")["kind"] == "village"
    compared = api.get(
        "/v1/insights/comparisons",
        params={"subdistrict_id": community.subdistrict_id},
        headers=community.subdistrict_staff.headers,
    ).json()
    assert compared["group_by"] == "kind"
    assert [(r["key"], r["neighbourhoods"], r["figures"]["residents"]) for r in compared["items"]] == [
        ("residential", 1, 3),
        ("village", 1, 1),
    ]
    assert (
        api.get(
            "/v1/insights/comparisons",
            params={"subdistrict_id": community.subdistrict_id},
            headers=community.cadre.headers,
        ).status_code
        == 403
    )
    by_sub = api.get(
        "/v1/insights/comparisons",
        params={"district_id": community.district_id},
        headers=community.district_staff.headers,
    ).json()["items"]
    assert [(r["key"], r["label"], r["neighbourhoods"]) for r in by_sub] == [(community.subdistrict_id, "淞南镇", 2)]


def test_a_rebuild_replays_the_streams_into_the_same_figures(
    api: httpx.Client, system: Stack, ops_headers: dict[str, str], week: Week, spike: Spike
) -> None:
    settled_portrait(api, week)

    def snapshot() -> dict[str, Any]:
        body = portrait(api, week.n1, week.staff).json()
        body.pop("generated_at")
        body.pop("rebuilding")
        compared = api.get(
            "/v1/insights/comparisons",
            params={"district_id": week.district, "group_by": "neighbourhood", "period_days": PERIOD},
            headers=week.staff,
        ).json()
        daily = api.get(
            "/v1/insights/exports/daily.csv",
            params={"district_id": week.district, "period_days": PERIOD},
            headers=week.staff,
        ).content
        return {"portrait": body, "comparison": compared, "daily": daily}

    spike_staff = mint_token(system, "staff-spike", [f"district_staff@d:{spike.district}"])

    def prompts_of_spike() -> list[dict[str, Any]]:
        reply = api.get("/v1/insights/prompts", params={"district_id": spike.district}, headers=spike_staff)
        return reply.json()["items"]  # type: ignore[no-any-return]

    eventually(
        lambda: portrait(api, spike.hot, spike_staff).json().get("figures", {}).get("issues_reported") == 6,
        what="the spike projected",
    )
    assert api.post("/v1/insights/detections", headers=ops_headers).status_code == 200
    prompts_before = prompts_of_spike()
    assert [(p["neighbourhood_id"], p["subject"]) for p in prompts_before] == [(spike.hot, "leaking_pipe")]
    live = snapshot()
    refused = api.post("/v1/insights/rebuilds", headers=week.staff)
    assert refused.status_code == 403 and refused.json()["code"] == "operator_required"

    started = api.post("/v1/insights/rebuilds", headers={**ops_headers, "Idempotency-Key": uuid.uuid4().hex})
    assert started.status_code == 202, started.text
    run = started.json()
    assert run["rows_dropped"] > 0 and run["phase"] in ("replaying", "done")
    targets = {s["stream"]: s["target_sequence"] for s in run["streams"]}
    assert targets["ISSUES"] > 0 and targets["IDENTITY"] > 0

    def finished() -> dict[str, Any] | None:
        reply = api.get(f"/v1/insights/rebuilds/{run['id']}", headers=ops_headers).json()
        return reply if reply["phase"] == "done" else None

    done = eventually(finished, timeout=90, interval=0.5, what="the replay catching up")
    assert all(s["caught_up"] for s in done["streams"]) and done["finished_at"]
    assert snapshot() == live
    # Prompts are the cadres' work, not a projection: kept, and detection does not raise them again.
    assert api.post("/v1/insights/detections", headers=ops_headers).status_code == 200
    assert prompts_of_spike() == prompts_before
