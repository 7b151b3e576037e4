"""The grid case workflow: the pure stage machine, and stage changes seen through the API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from shequtong_grid_simulator import workflow
from shequtong_grid_simulator.workflow import Action, Stage, TransitionError

# The reference notes' "Suggested mapping" table, copied by hand so a drift in the code fails.
MAPPING = {
    Stage.RECEIVED: ("受理", "open", None),
    Stage.FILED: ("立案", "open", "INVESTIGATING"),
    Stage.DISPATCHED: ("派遣", "open", "ACTION_SCHEDULED"),
    Stage.HANDLED: ("处置", "open", "IN_PROGRESS"),
    Stage.CLOSED: ("核查结案", "closed", "FIXED"),
    Stage.CANCELLED: ("注销", "closed", "NOT_COUNCILS_RESPONSIBILITY"),
    Stage.RETURNED: ("退回", "open", "INTERNAL_REFERRAL"),
    Stage.DEFERRED: ("延期", "open", "NO_FURTHER_ACTION"),
    Stage.REOPENED: ("返工", "open", "REOPEN"),
}


@pytest.mark.parametrize("stage", list(Stage))
def test_stage_mapping_matches_reference_table(stage: Stage) -> None:
    info = workflow.STAGE_INFO[stage]
    assert (info.label, info.status, info.external_status_code) == MAPPING[stage]


def test_duplicate_cancellation_is_reported_as_duplicate() -> None:
    assert workflow.external_status_code(Stage.CANCELLED, duplicate=True) == "DUPLICATE"
    assert workflow.external_status_code(Stage.CLOSED, duplicate=True) == "FIXED"


def test_main_path_and_side_paths() -> None:
    stage = Stage.RECEIVED
    seen = []
    while not workflow.is_terminal(stage):
        stage = workflow.apply(stage, Action.ADVANCE)
        seen.append(stage)
    assert seen == [Stage.FILED, Stage.DISPATCHED, Stage.HANDLED, Stage.CLOSED]
    assert workflow.apply(Stage.DISPATCHED, Action.RETURN) is Stage.RETURNED
    assert workflow.apply(Stage.RETURNED, Action.ADVANCE) is Stage.DISPATCHED
    assert workflow.apply(Stage.DISPATCHED, Action.DEFER) is Stage.DEFERRED
    assert workflow.apply(Stage.DEFERRED, Action.ADVANCE) is Stage.HANDLED
    assert workflow.apply(Stage.CLOSED, Action.REOPEN) is Stage.REOPENED
    assert workflow.apply(Stage.REOPENED, Action.ADVANCE) is Stage.HANDLED
    assert workflow.apply(Stage.FILED, Action.REJECT) is Stage.CANCELLED


@pytest.mark.parametrize(
    ("stage", "action"),
    [
        (Stage.CLOSED, Action.ADVANCE),
        (Stage.CANCELLED, Action.ADVANCE),
        (Stage.CANCELLED, Action.REOPEN),
        (Stage.DISPATCHED, Action.REJECT),
        (Stage.RECEIVED, Action.RETURN),
        (Stage.RECEIVED, Action.DEFER),
        (Stage.FILED, Action.REOPEN),
    ],
)
def test_forbidden_transitions(stage: Stage, action: Action) -> None:
    with pytest.raises(TransitionError):
        workflow.apply(stage, action)


def test_path_to_and_stage_names() -> None:
    assert workflow.path_to(Stage.FILED, Stage.CLOSED) == [Stage.DISPATCHED, Stage.HANDLED, Stage.CLOSED]
    with pytest.raises(TransitionError):
        workflow.path_to(Stage.HANDLED, Stage.FILED)  # no going back by advancing
    with pytest.raises(TransitionError):
        workflow.path_to(Stage.FILED, Stage.FILED)
    assert workflow.parse_stage("结案") is Stage.CLOSED
    assert workflow.parse_stage("派遣") is Stage.DISPATCHED
    assert workflow.parse_stage(" Handled ") is Stage.HANDLED
    with pytest.raises(ValueError, match="unknown stage"):
        workflow.parse_stage("done")


async def test_advance_produces_ordered_updates(sim: Any, clock: Any) -> None:
    rid = await sim.create(service_code="04-02")  # burst water main: 2 h limit
    expected = []
    for stage in ("filed", "dispatched", "handled", "closed"):
        clock.tick(minutes=10)
        r = await sim.client.post(f"/_sim/advance/{rid}")
        assert r.status_code == 200, r.text
        [update] = r.json()["updates"]
        expected.append(update["update_id"])
        assert r.json()["request"]["extended_attributes"]["grid_stage"] == stage

    updates = (await sim.client.get("/servicerequestupdates.json")).json()
    assert [u["update_id"] for u in updates] == expected
    assert [int(u["update_id"]) for u in updates] == sorted(int(u["update_id"]) for u in updates)
    assert len(set(expected)) == 4
    assert [(u["status"], u["external_status_code"]) for u in updates] == [
        ("open", "INVESTIGATING"),
        ("open", "ACTION_SCHEDULED"),
        ("open", "IN_PROGRESS"),
        ("closed", "FIXED"),
    ]
    assert [u["updated_datetime"] for u in updates] == [
        "2025-03-01T10:10:00+08:00",
        "2025-03-01T10:20:00+08:00",
        "2025-03-01T10:30:00+08:00",
        "2025-03-01T10:40:00+08:00",
    ]
    assert set(updates[0]) == {
        "update_id",
        "service_request_id",
        "status",
        "updated_datetime",
        "description",
        "media_url",
        "external_status_code",
    }
    assert all(u["service_request_id"] == rid for u in updates)
    assert "自来水公司" in updates[1]["description"]

    req = await sim.one(rid)
    assert req["status"] == "closed"
    assert req["agency_responsible"] == "自来水公司"
    # filed at 10:10 with a 2-hour limit
    assert req["expected_datetime"] == "2025-03-01T12:10:00+08:00"
    assert req["status_notes"] == updates[-1]["description"]
    assert req["updated_datetime"] == "2025-03-01T10:40:00+08:00"

    r = await sim.client.post(f"/_sim/advance/{rid}")
    assert r.status_code == 409


async def test_advance_to_a_stage_emits_every_step(sim: Any) -> None:
    rid = await sim.create()
    r = await sim.client.post(
        f"/_sim/advance/{rid}", params={"to": "派遣", "note": "请尽快", "media_url": "https://m/1.jpg"}
    )
    assert r.status_code == 200
    codes = [u["external_status_code"] for u in r.json()["updates"]]
    assert codes == ["INVESTIGATING", "ACTION_SCHEDULED"]
    assert r.json()["updates"][-1]["description"].endswith("请尽快")
    assert r.json()["updates"][-1]["media_url"] == "https://m/1.jpg"
    assert (await sim.client.post(f"/_sim/advance/{rid}", params={"to": "filed"})).status_code == 409
    assert (await sim.client.post(f"/_sim/advance/{rid}", params={"to": "nowhere"})).status_code == 422
    assert (await sim.client.post("/_sim/advance/missing")).status_code == 404


async def test_polling_by_date_window(sim: Any, clock: Any) -> None:
    rid = await sim.create()  # 02:00Z
    for _ in range(3):  # filed 03:00Z, dispatched 04:00Z, handled 05:00Z
        clock.tick(hours=1)
        await sim.client.post(f"/_sim/advance/{rid}")

    async def codes(**params: str) -> list[str]:
        r = await sim.client.get("/servicerequestupdates.json", params=params)
        assert r.status_code == 200, r.text
        return [u["external_status_code"] for u in r.json()]

    assert await codes() == ["INVESTIGATING", "ACTION_SCHEDULED", "IN_PROGRESS"]
    assert await codes(start_date="2025-03-01T03:30:00Z") == ["ACTION_SCHEDULED", "IN_PROGRESS"]
    assert await codes(end_date="2025-03-01T03:59:59Z") == ["INVESTIGATING"]
    # both bounds are inclusive, whatever zone the caller writes them in
    assert await codes(start_date="2025-03-01T12:00:00+08:00", end_date="2025-03-01T04:00:00Z") == ["ACTION_SCHEDULED"]
    assert await codes(start_date="2025-03-01T06:00:00Z") == []
    assert await codes(service_request_id="other") == []
    r = await sim.client.get("/servicerequestupdates.json", params={"start_date": "03/01/2025"})
    assert r.status_code == 400


async def test_reject_path(sim: Any) -> None:
    rid = await sim.create()
    r = await sim.client.post(f"/_sim/reject/{rid}")
    assert r.status_code == 200
    [update] = r.json()["updates"]
    assert (update["status"], update["external_status_code"]) == ("closed", "NOT_COUNCILS_RESPONSIBILITY")
    assert "注销" in update["description"]
    assert (await sim.one(rid))["status"] == "closed"
    assert (await sim.client.post(f"/_sim/advance/{rid}")).status_code == 409
    assert (await sim.client.post(f"/_sim/reopen/{rid}")).status_code == 409

    dup = await sim.create()
    r = await sim.client.post(f"/_sim/reject/{dup}", params={"reason": "duplicate"})
    assert r.json()["updates"][0]["external_status_code"] == "DUPLICATE"
    assert (await sim.one(dup))["extended_attributes"]["external_status_code"] == "DUPLICATE"

    late = await sim.create()
    await sim.client.post(f"/_sim/advance/{late}", params={"to": "dispatched"})
    assert (await sim.client.post(f"/_sim/reject/{late}")).status_code == 409


async def test_return_then_redispatch_to_the_next_department(sim: Any) -> None:
    rid = await sim.create(service_code="05-04")  # 乱停放: 交警支队, then 派出所
    await sim.client.post(f"/_sim/advance/{rid}", params={"to": "dispatched"})
    assert (await sim.one(rid))["agency_responsible"] == "交警支队"
    r = await sim.client.post(f"/_sim/return/{rid}", params={"note": "非交警职责"})
    [update] = r.json()["updates"]
    assert (update["status"], update["external_status_code"]) == ("open", "INTERNAL_REFERRAL")
    assert "非交警职责" in update["description"]
    r = await sim.client.post(f"/_sim/advance/{rid}")
    assert r.json()["updates"][0]["external_status_code"] == "ACTION_SCHEDULED"
    assert (await sim.one(rid))["agency_responsible"] == "派出所"


async def test_defer_and_reopen(sim: Any) -> None:
    rid = await sim.create()
    await sim.client.post(f"/_sim/advance/{rid}", params={"to": "dispatched"})
    r = await sim.client.post(f"/_sim/defer/{rid}")
    assert r.json()["updates"][0]["external_status_code"] == "NO_FURTHER_ACTION"
    assert r.json()["request"]["status"] == "open"
    await sim.client.post(f"/_sim/advance/{rid}", params={"to": "closed"})
    r = await sim.client.post(f"/_sim/reopen/{rid}")
    [update] = r.json()["updates"]
    assert (update["status"], update["external_status_code"]) == ("open", "REOPEN")
    r = await sim.client.post(f"/_sim/advance/{rid}")
    assert r.json()["updates"][0]["external_status_code"] == "IN_PROGRESS"
    assert (await sim.client.post(f"/_sim/defer/{rid}")).status_code == 409  # handled cases are not deferred


async def test_advance_all_moves_only_open_cases(sim: Any) -> None:
    a, b, c = await sim.create(), await sim.create(), await sim.create()
    await sim.client.post(f"/_sim/reject/{c}")
    r = await sim.client.post("/_sim/advance-all")
    assert r.json()["advanced"] == 2
    assert {u["service_request_id"] for u in r.json()["updates"]} == {a, b}


async def test_state_file_survives_a_restart(start_sim: Any, make_settings: Any, tmp_path: Any) -> None:
    settings = make_settings(state_file=str(tmp_path / "grid-state.json"))
    async with start_sim(settings) as sim:
        rid = await sim.create(**{"attribute[issue_id]": "iss-p"})
        await sim.client.post(f"/_sim/advance/{rid}", params={"to": "dispatched"})
        before = (await sim.client.get("/servicerequestupdates.json")).json()
    async with start_sim(settings) as sim:
        req = await sim.one(rid)
        assert req["extended_attributes"]["grid_stage"] == "dispatched"
        assert (await sim.client.get("/servicerequestupdates.json")).json() == before
        assert await sim.create(**{"attribute[issue_id]": "iss-p"}) == rid  # dedupe survives too
        r = await sim.client.post(f"/_sim/advance/{rid}")
        assert int(r.json()["updates"][0]["update_id"]) > int(before[-1]["update_id"])
        assert (await sim.stats())["requests_created"] == 1


async def test_auto_advance(start_sim: Any, make_settings: Any) -> None:
    async with start_sim(make_settings(auto_advance_seconds=0.05)) as sim:
        rid = await sim.create()
        async with asyncio.timeout(5):
            while (await sim.one(rid))["status"] != "closed":  # noqa: ASYNC110 - polling over HTTP
                await asyncio.sleep(0.02)
        updates = (await sim.client.get("/servicerequestupdates.json")).json()
        assert [u["external_status_code"] for u in updates] == [
            "INVESTIGATING",
            "ACTION_SCHEDULED",
            "IN_PROGRESS",
            "FIXED",
        ]
