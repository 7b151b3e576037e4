"""Volunteers through the gateway: applications and teams, activities with a waitlist under concurrent
sign-ups, attendance windows, the service-hours ledger and its corrections, cancellation notices and
neighbourhood isolation."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError
from shequtong_stack import Stack

from integration.helpers import eventually, move_clock
from integration.people import Community, Person, new_neighbourhood_with_people, register_and_verify
from shequtong.events.v1 import volunteers_events_pb2 as ev


@pytest.fixture(scope="module")
def community(api: httpx.Client, ops_headers: dict[str, str]) -> Community:
    return new_neighbourhood_with_people(api, ops_headers)


class As:
    """Requests made as one person: `As(api, person).post(path, body)`."""

    def __init__(self, api: httpx.Client, person: Person) -> None:
        self.api, self.person = api, person

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.api.get(path, params=params, headers=self.person.headers)

    def post(self, path: str, body: dict[str, Any] | None = None, key: str | None = None) -> httpx.Response:
        headers = {**self.person.headers, **({"Idempotency-Key": key} if key else {})}
        return self.api.post(path, json=body or {}, headers=headers)


def ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url.path}: {reply.text}"
    return reply.json()


def problem(reply: httpx.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == code, reply.text


def new_activity(
    api: httpx.Client, c: Community, *, capacity: int, starts_in: timedelta, minutes: int = 60, **extra: Any
) -> dict[str, Any]:
    starts = datetime.now(UTC) + starts_in
    body = {
        "neighbourhood_id": c.neighbourhood_id,
        "title": f"楼道清扫 {uuid.uuid4().hex[:6]}",
        "place": "3号楼",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(minutes=minutes)).isoformat(),
        "capacity": capacity,
        **extra,
    }
    return ok(api.post("/v1/activities", json=body, headers=c.cadre.headers), 201)  # type: ignore[no-any-return]


def more_residents(api: httpx.Client, c: Community, count: int) -> list[Person]:
    """Verified, signed-in residents of the first neighbourhood, registered in parallel."""

    def one(_: int) -> Person:
        with httpx.Client(base_url=api.base_url, timeout=30) as client:
            return register_and_verify(client, c.join_code, c.cadre.headers)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, range(count)))


# --- applications and teams -------------------------------------------------------------------------------


def test_apply_review_and_lead_a_team(api: httpx.Client, community: Community) -> None:
    c = community
    n1 = c.neighbourhood_id
    applicant, cadre = As(api, c.residents[0]), As(api, c.cadre)
    other_cadre, outsider = As(api, c.other_cadre), As(api, c.other_resident)
    apply_path = f"/v1/neighbourhoods/{n1}/volunteer-applications"
    body = {"skills": ["理发", "急救"], "availability": "周末上午", "motivation": "为邻居服务"}
    key = f"apply-{uuid.uuid4().hex}"
    first = ok(applicant.post(apply_path, body, key=key), 201)
    again = ok(applicant.post(apply_path, body, key=key), 201)
    assert again["id"] == first["id"], "a retry with the same Idempotency-Key returns the first result"
    assert first["state"] == "pending" and first["skills"] == ["理发", "急救"]
    problem(applicant.post(apply_path, body), 409, "already_applied")
    problem(outsider.post(apply_path, body), 403, "not_a_resident")

    # The other neighbourhood's cadre neither sees nor decides; a resident cannot approve themselves.
    problem(other_cadre.get("/v1/volunteers", neighbourhood_id=n1), 403, "not_committee")
    problem(other_cadre.post(f"/v1/volunteers/{first['id']}/approve"), 403, "not_committee")
    problem(applicant.post(f"/v1/volunteers/{first['id']}/approve"), 403, "not_committee")

    queue = ok(cadre.get("/v1/volunteers", neighbourhood_id=n1, state="pending"))
    assert first["id"] in {v["id"] for v in queue["items"]}
    approved = ok(cadre.post(f"/v1/volunteers/{first['id']}/approve"))
    assert approved["state"] == "approved" and approved["decided_by"] == c.cadre.person_id
    problem(cadre.post(f"/v1/volunteers/{first['id']}/approve"), 409, "volunteer_not_pending")

    teams = ok(applicant.get(f"/v1/neighbourhoods/{n1}/volunteer-teams"))["items"]
    default = next(t for t in teams if t["is_default"])
    assert default["id"] == first["team_id"] and default["member_count"] == 1
    problem(outsider.get(f"/v1/neighbourhoods/{n1}/volunteer-teams"), 403, "not_a_member")

    # A team leader may organise the team's activities; an ordinary volunteer may not.
    starts = datetime.now(UTC) + timedelta(days=2)
    activity = {
        "neighbourhood_id": n1,
        "team_id": default["id"],
        "title": "助老理发",
        "place": "活动室",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "capacity": 5,
    }
    problem(applicant.post("/v1/activities", activity), 403, "not_organiser")
    leader = ok(cadre.post(f"/v1/volunteers/{first['id']}/leader", {"leader": True}))
    assert leader["is_leader"] is True
    created = ok(applicant.post("/v1/activities", activity), 201)
    assert created["team_id"] == default["id"] and created["audience_neighbourhood_ids"] == [n1]

    mine = ok(applicant.get("/v1/volunteers", mine="true"))["items"]
    assert [v["id"] for v in mine] == [first["id"]]


def test_leaving_and_removal(api: httpx.Client, community: Community) -> None:
    c = community
    applicant, cadre = As(api, c.residents[1]), As(api, c.cadre)
    apply_path = f"/v1/neighbourhoods/{c.neighbourhood_id}/volunteer-applications"
    application = ok(applicant.post(apply_path), 201)
    path = f"/v1/volunteers/{application['id']}"
    ok(cadre.post(f"{path}/approve"))
    problem(cadre.post(f"{path}/remove", {"reason": ""}), 400, "reason_required")
    problem(cadre.post(f"{path}/leave"), 403, "not_your_record")
    removed = ok(cadre.post(f"{path}/remove", {"reason": "长期未参加"}))
    assert removed["state"] == "removed" and removed["reason"] == "长期未参加"
    # Removed, they may apply again (a new application to review), and withdraw it.
    again = ok(applicant.post(apply_path), 201)
    assert again["id"] != application["id"] and again["state"] == "pending"
    withdrawn = ok(applicant.post(f"/v1/volunteers/{again['id']}/leave"))
    assert withdrawn["state"] == "left"


# --- sign-ups, the waitlist and promotion ------------------------------------------------------------------


def test_thirty_concurrent_sign_ups_for_twenty_places(api: httpx.Client, community: Community) -> None:
    c = community
    cadre = As(api, c.cadre)
    activity = new_activity(api, c, capacity=20, starts_in=timedelta(hours=5))
    path = f"/v1/activities/{activity['id']}"
    people = [*c.residents, *more_residents(api, c, 30 - len(c.residents))]
    assert len({p.person_id for p in people}) == 30

    async def sign_up_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(api.base_url), timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{path}/signups", json={}, headers=p.headers) for p in people))

    replies = asyncio.run(sign_up_all())
    assert all(r.status_code == 201 for r in replies), [r.text for r in replies if r.status_code != 201]
    signups = [r.json() for r in replies]
    states = [s["state"] for s in signups]
    assert states.count("confirmed") == 20
    assert states.count("waitlisted") == 10
    assert sorted(s["waitlist_position"] for s in signups if s["state"] == "waitlisted") == list(range(1, 11))

    detail = ok(cadre.get(path))
    assert (detail["confirmed_count"], detail["waitlist_count"], detail["places_left"]) == (20, 10, 0)

    def confirmed_with_names() -> bool:
        items = ok(cadre.get(f"{path}/signups", state="confirmed", page_size=100))["items"]
        assert len(items) == 20
        return all(s["display_name"] for s in items)

    # Display names come from identity's membership events (volunteers keeps its own projection).
    eventually(confirmed_with_names, what="the participants' display names on the organiser's list")

    by_person = {p.person_id: As(api, p) for p in people}
    first_waiting = next(s for s in signups if s.get("waitlist_position") == 1)
    second_waiting = next(s for s in signups if s.get("waitlist_position") == 2)
    leaving = by_person[next(s["person_id"] for s in signups if s["state"] == "confirmed")]
    result = ok(leaving.post(f"{path}/signups/mine/cancel"))
    assert result["signup"]["state"] == "cancelled"
    assert result["promoted"]["id"] == first_waiting["id"]
    assert result["promoted"]["state"] == "confirmed" and result["promoted"]["promoted_from_waitlist"] is True

    assert ok(by_person[first_waiting["person_id"]].get(path))["my_signup"]["state"] == "confirmed"
    second_view = ok(by_person[second_waiting["person_id"]].get(path))
    assert second_view["my_signup"]["waitlist_position"] == 1, "everyone behind moves up one place"
    detail = ok(cadre.get(path))
    assert (detail["confirmed_count"], detail["waitlist_count"]) == (20, 9)
    problem(by_person[second_waiting["person_id"]].post(f"{path}/signups"), 409, "already_signed_up")


def test_another_neighbourhood_cannot_see_or_join(api: httpx.Client, community: Community) -> None:
    c = community
    activity = new_activity(api, c, capacity=3, starts_in=timedelta(hours=6))
    path = f"/v1/activities/{activity['id']}"
    outsider = As(api, c.other_resident)
    problem(outsider.get(path), 403, "not_in_audience")
    problem(outsider.get("/v1/activities", neighbourhood_id=c.neighbourhood_id), 403, "not_a_member")
    problem(outsider.post(f"{path}/signups"), 403, "not_in_audience")
    problem(outsider.get(f"{path}/signups"), 403, "not_organiser")
    listed = ok(As(api, c.resident).get("/v1/activities", neighbourhood_id=c.neighbourhood_id))
    assert activity["id"] in {a["id"] for a in listed["items"]}


# --- attendance ---------------------------------------------------------------------------------------------


def test_check_in_outside_the_window_is_refused(api: httpx.Client, community: Community) -> None:
    c = community
    activity = new_activity(api, c, capacity=3, starts_in=timedelta(hours=3))
    path = f"/v1/activities/{activity['id']}"
    resident = As(api, c.residents[2])
    ok(resident.post(f"{path}/signups"), 201)
    problem(resident.get(f"{path}/checkin-code"), 403, "not_organiser")
    code = ok(As(api, c.cadre).get(f"{path}/checkin-code"))
    opens = datetime.fromisoformat(code["check_in_opens_at"])
    assert opens > datetime.now(UTC)

    refused = resident.post(f"{path}/check-in", {"code": code["code"]})
    problem(refused, 409, "outside_check_in_window")
    assert datetime.fromisoformat(refused.json()["meta"]["opens_at"]) == opens
    problem(resident.post(f"{path}/check-in", {"code": "guessed"}), 403, "checkin_code_invalid")
    assert ok(resident.get(path))["my_signup"]["checked_in_at"] is None, "a refused check-in changes nothing"


def test_hours_are_credited_at_check_out_and_corrected_by_reversal(
    api: httpx.Client, community: Community, system: Stack
) -> None:
    c = community
    n1 = c.neighbourhood_id
    volunteer, cadre, other_cadre = As(api, c.party_member), As(api, c.cadre), As(api, c.other_cadre)
    application = ok(volunteer.post(f"/v1/neighbourhoods/{n1}/volunteer-applications"), 201)
    ok(cadre.post(f"/v1/volunteers/{application['id']}/approve"))
    activity = new_activity(api, c, capacity=5, starts_in=timedelta(minutes=10), minutes=60)
    path = f"/v1/activities/{activity['id']}"
    ok(volunteer.post(f"{path}/signups"), 201)
    code = ok(cadre.get(f"{path}/checkin-code"))["code"]

    assert ok(volunteer.post(f"{path}/check-in", {"code": code}))["check_in_method"] == "qr"
    # Ninety minutes later: twenty minutes after the one-hour activity ended.
    with move_clock(system.extra_env["SHEQUTONG_CLOCK_OFFSET_FILE"], timedelta(minutes=90)):
        out = ok(volunteer.post(f"{path}/check-out", {"code": code}))
    assert out["signup"]["credited_minutes"] == 60, "attended 90 minutes, capped by the 60-minute span"
    entry = out["entry"]
    assert (entry["kind"], entry["minutes"], entry["team_id"]) == ("credit", 60, application["team_id"])

    def total(who: As, **params: str) -> int:
        return int(ok(who.get("/v1/service-hours/totals", **params))["total_minutes"])

    assert total(volunteer, scope="person") == 60
    reversal_path = f"/v1/service-hours/entries/{entry['id']}/reversal"
    problem(volunteer.post(reversal_path, {"reason": "自己改"}), 403, "not_committee")
    correction = ok(cadre.post(reversal_path, {"reason": "提前离场，按45分钟计", "corrected_minutes": 45}), 201)
    assert correction["reversal"]["minutes"] == -60 and correction["reversal"]["corrects_entry_id"] == entry["id"]
    assert correction["adjustment"]["minutes"] == 45
    problem(cadre.post(reversal_path, {"reason": "again"}), 409, "entry_already_reversed")
    assert total(volunteer, scope="person") == 45

    entries = ok(volunteer.get("/v1/service-hours/entries"))["items"]
    assert sorted((e["kind"], e["minutes"]) for e in entries) == [("adjustment", 45), ("credit", 60), ("reversal", -60)]
    assert next(e for e in entries if e["id"] == entry["id"])["reversed"] is True

    assert total(cadre, scope="team", id=application["team_id"]) >= 45
    served = datetime.fromisoformat(activity["starts_at"]).isoformat()
    since = total(cadre, scope="neighbourhood", id=n1, **{"from": served})
    until = total(cadre, scope="neighbourhood", id=n1, to=served)
    everything = total(cadre, scope="neighbourhood", id=n1)
    assert since >= 45 and since + until == everything
    problem(
        other_cadre.get("/v1/service-hours/totals", scope="person", id=c.party_member.person_id), 403, "not_committee"
    )

    certificate = ok(volunteer.get("/v1/service-hours/certificate"))
    assert certificate["total_minutes"] == 45 and certificate["total_hours"] == 0.75
    assert [line["minutes"] for line in certificate["lines"]] == [45]
    assert certificate["certificate_number"].startswith("VH-")


# --- cancellation notices and mutual aid ---------------------------------------------------------------------


def _last_event(nats_url: str, subject: str) -> bytes | None:
    """The subject's latest message on the VOLUNTEERS stream; None while there is none yet (the relay
    publishes after the commit)."""

    async def go() -> bytes | None:
        nc = await nats.connect(nats_url)
        try:
            return bytes((await nc.jetstream().get_last_msg("VOLUNTEERS", subject)).data)
        except NotFoundError:
            return None
        finally:
            await nc.close()

    return asyncio.run(go())


def test_cancelling_an_activity_notifies_everyone_signed_up(
    api: httpx.Client, community: Community, system: Stack
) -> None:
    c = community
    activity = new_activity(api, c, capacity=1, starts_in=timedelta(hours=8))
    path = f"/v1/activities/{activity['id']}"
    confirmed, waiting, cadre = As(api, c.residents[0]), As(api, c.residents[1]), As(api, c.cadre)
    for who in (confirmed, waiting):
        ok(who.post(f"{path}/signups"), 201)
    problem(confirmed.post(f"{path}/cancel", {"reason": "x"}), 403, "not_organiser")
    cancelled = ok(cadre.post(f"{path}/cancel", {"reason": "台风预警"}))
    assert cancelled["notified_count"] == 2 and cancelled["activity"]["state"] == "cancelled"
    for who in (confirmed, waiting):
        assert ok(who.get(path))["my_signup"]["state"] == "activity_cancelled"

    def published() -> ev.ActivityCancelled | None:
        payload = _last_event(system.nats_url, "volunteers.activity.cancelled")
        message = ev.ActivityCancelled.FromString(payload) if payload is not None else None
        return message if message is not None and message.activity_id == activity["id"] else None

    notice = eventually(published, what="the cancellation notice on the VOLUNTEERS stream")
    assert set(notice.notified_person_ids) == {c.residents[0].person_id, c.residents[1].person_id}
    assert notice.reason == "台风预警"


def test_an_issue_is_linked_to_the_activity_that_resolved_it(api: httpx.Client, community: Community) -> None:
    c = community
    activity = new_activity(api, c, capacity=2, starts_in=timedelta(hours=7))
    issue_id = str(uuid.uuid4())
    body = {"issue_id": issue_id, "target": "activity", "target_id": activity["id"], "note": "志愿者清理了楼道杂物"}
    resident, cadre = As(api, c.resident), As(api, c.cadre)
    problem(resident.post("/v1/mutual-aid-links", body), 403, "not_organiser")
    link = ok(cadre.post("/v1/mutual-aid-links", body), 201)
    assert (link["issue_id"], link["neighbourhood_id"]) == (issue_id, c.neighbourhood_id)
    assert ok(cadre.post("/v1/mutual-aid-links", body), 201)["id"] == link["id"], "linking twice records one link"
    seen = ok(resident.get("/v1/mutual-aid-links", issue_id=issue_id))["items"]
    assert [item["id"] for item in seen] == [link["id"]]
    assert ok(As(api, c.other_resident).get("/v1/mutual-aid-links", issue_id=issue_id))["items"] == []
