"""The Open311 GeoReport v2 surface: catalogue, create, validation, de-duplication, tokens,
queries, and the outage modes that only the control API can switch on."""

from __future__ import annotations

import time
from typing import Any

import pytest

KEY = "test-grid-key"
BASE = {"api_key": KEY, "service_code": "01-02", "lat": "31.40", "long": "121.48"}


def is_error_list(body: Any, code: int) -> bool:
    return (
        isinstance(body, list)
        and len(body) == 1
        and set(body[0]) == {"code", "description"}
        and body[0]["code"] == code
        and isinstance(body[0]["description"], str)
        and body[0]["description"] != ""
    )


async def test_root_says_it_is_a_simulator(sim: Any) -> None:
    r = await sim.client.get("/")
    assert r.status_code == 200
    assert "SIMULATOR" in r.text and "not the real platform" in r.text.lower()


async def test_service_list_and_definition(sim: Any) -> None:
    r = await sim.client.get("/services.json")
    assert r.status_code == 200
    services = {s["service_code"]: s for s in r.json()}
    assert services["04-02"]["service_name"] == "自来水管破裂"
    assert services["05-04"]["service_name"] == "乱停放"
    assert services["01-01"]["service_name"] == "私搭乱建"
    assert {"C-01", "C-06"} <= set(services)
    assert all(s["metadata"] is True and s["type"] == "realtime" for s in services.values())
    # simulator-only catalogue keys are never served
    assert "departments" not in services["01-02"] and "time_limit_hours" not in services["01-02"]

    r = await sim.client.get("/services/C-01.json")
    assert r.status_code == 200
    attrs = {a["code"]: a for a in r.json()["attributes"]}
    assert attrs["component_id"]["required"] is True
    assert attrs["issue_id"]["required"] is False

    r = await sim.client.get("/services/99-99.json")
    assert r.status_code == 404 and is_error_list(r.json(), 404)


async def test_create_request_and_read_it_back(sim: Any) -> None:
    r = await sim.client.post(
        "/requests.json",
        data={
            **BASE,
            "description": "小区门口暴露垃圾",
            "attribute[issue_id]": "iss-1",
            "media_url": "https://x/y.jpg",
        },
    )
    assert r.status_code == 200
    [body] = r.json()
    assert set(body) == {"service_request_id", "service_notice", "account_id"}
    assert body["account_id"] is None
    rid = body["service_request_id"]

    req = await sim.one(rid)
    assert req["status"] == "open"
    assert req["service_code"] == "01-02" and req["service_name"] == "暴露垃圾"
    assert req["description"] == "小区门口暴露垃圾"
    assert req["lat"] == 31.40 and req["long"] == 121.48
    assert req["media_url"] == "https://x/y.jpg"
    # the fake clock reads 2025-03-01T02:00:00Z; the simulator answers in +08:00
    assert req["requested_datetime"] == "2025-03-01T10:00:00+08:00"
    assert req["extended_attributes"]["grid_stage"] == "received"
    assert req["agency_responsible"] is None

    r = await sim.client.get("/requests/nope.json")
    assert r.status_code == 404 and is_error_list(r.json(), 404)


async def test_address_alone_is_a_location(sim: Any) -> None:
    rid = await sim.create(lat="", long="", address_string="宝山区友谊路1号")
    assert (await sim.one(rid))["address"] == "宝山区友谊路1号"


@pytest.mark.parametrize("api_key", ["wrong", "", None])
async def test_bad_api_key_is_refused(sim: Any, api_key: str | None) -> None:
    data = {**BASE, "attribute[issue_id]": "iss-key"}
    if api_key is None:
        del data["api_key"]
    else:
        data["api_key"] = api_key
    r = await sim.client.post("/requests.json", data=data)
    assert r.status_code == 403 and is_error_list(r.json(), 403)
    stats = await sim.stats()
    assert stats["requests_created"] == 0 and stats["posts_refused"] == 1


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"service_code": ""}, 400),
        ({"service_code": "99-99"}, 404),
        ({"lat": "", "long": ""}, 400),  # no location at all
        ({"long": ""}, 400),  # lat without long
        ({"lat": "north"}, 400),
        ({"lat": "91"}, 400),
        ({"description": "x" * 4001}, 400),
        ({"description": "<b>bold</b> rubbish"}, 400),
        ({"description": "see <img src=x onerror=alert(1)>"}, 400),
        ({"media_url": "javascript:alert(1)"}, 400),
        ({"service_code": "C-02"}, 400),  # a component without attribute[component_id]
    ],
)
async def test_validation_errors_use_open311_error_format(sim: Any, changes: dict[str, str], code: int) -> None:
    r = await sim.client.post("/requests.json", data={**BASE, **changes})
    assert r.status_code == code, r.text
    assert is_error_list(r.json(), code)
    assert (await sim.stats())["requests_created"] == 0


async def test_limits_that_are_allowed(sim: Any) -> None:
    await sim.create(description="y" * 4000)
    await sim.create(description="水深 < 10 cm, 2 > 1")  # comparisons are not HTML
    await sim.create(service_code="C-02", **{"attribute[component_id]": "3101130201000001"})
    assert (await sim.stats())["requests_created"] == 3


async def test_json_body_is_refused(sim: Any) -> None:
    r = await sim.client.post("/requests.json", json=BASE)
    assert r.status_code == 400 and is_error_list(r.json(), 400)


async def test_same_issue_and_ticket_return_the_same_request(sim: Any) -> None:
    first = await sim.create(**{"attribute[issue_id]": "iss-9", "attribute[ticket_id]": "t-1"})
    again = await sim.create(**{"attribute[issue_id]": "iss-9", "attribute[ticket_id]": "t-1"})
    assert again == first
    # a new ticket for the same issue (e.g. after 注销) is a new case
    other = await sim.create(**{"attribute[issue_id]": "iss-9", "attribute[ticket_id]": "t-2"})
    assert other != first
    # without an issue id nothing can be recognised: two posts, two cases
    a, b = await sim.create(), await sim.create()
    assert a != b
    stats = await sim.stats()
    assert stats["requests_created"] == 4
    assert stats["duplicate_submissions"] == 1
    assert stats["posts_received"] == 5
    r = await sim.client.get("/requests.json", params={"service_request_id": first})
    assert [x["service_request_id"] for x in r.json()] == [first]


async def test_token_mode_by_setting(start_sim: Any, make_settings: Any) -> None:
    async with start_sim(make_settings(response_mode="token")) as sim:
        r = await sim.client.post("/requests.json", data={**BASE, "attribute[issue_id]": "iss-t"})
        assert r.status_code == 200
        [body] = r.json()
        assert "service_request_id" not in body
        token = body["token"]
        r = await sim.client.get(f"/tokens/{token}.json")
        assert r.status_code == 200
        [mapping] = r.json()
        assert mapping["token"] == token
        rid = mapping["service_request_id"]
        assert (await sim.one(rid))["service_request_id"] == rid
        # a retried submission gets the same token back, not a second case
        r = await sim.client.post("/requests.json", data={**BASE, "attribute[issue_id]": "iss-t"})
        assert r.json()[0]["token"] == token
        assert (await sim.stats())["requests_created"] == 1

        r = await sim.client.get("/tokens/unknown.json")
        assert r.status_code == 404 and is_error_list(r.json(), 404)


async def test_token_mode_by_command(sim: Any) -> None:
    await sim.mode(response_mode="token")
    r = await sim.client.post("/requests.json", data=BASE)
    assert "token" in r.json()[0]
    await sim.mode(response_mode="id")
    r = await sim.client.post("/requests.json", data=BASE)
    assert "service_request_id" in r.json()[0] and "token" not in r.json()[0]


async def test_request_list_filters(sim: Any, clock: Any) -> None:
    early = await sim.create()
    clock.tick(hours=2)
    late = await sim.create(service_code="05-04")
    await sim.client.post(f"/_sim/advance/{late}", params={"to": "closed"})

    async def ids(**params: str) -> list[str]:
        r = await sim.client.get("/requests.json", params=params)
        assert r.status_code == 200, r.text
        return [x["service_request_id"] for x in r.json()]

    assert await ids() == [early, late]
    assert await ids(status="open") == [early]
    assert await ids(status="closed") == [late]
    assert await ids(status="open,closed") == [early, late]
    assert await ids(service_code="05-04") == [late]
    assert await ids(start_date="2025-03-01T03:00:00Z") == [late]
    # the same instant written in +08:00
    assert await ids(end_date="2025-03-01T11:00:00+08:00") == [early]
    assert await ids(service_request_id=f"{late},missing,{early}") == [late, early]
    r = await sim.client.get("/requests.json", params={"status": "pending"})
    assert r.status_code == 400 and is_error_list(r.json(), 400)
    r = await sim.client.get("/requests.json", params={"start_date": "yesterday"})
    assert r.status_code == 400 and is_error_list(r.json(), 400)


async def test_down_mode_answers_503_but_control_api_works(sim: Any) -> None:
    rid = await sim.create()
    await sim.mode(down=True)
    for r in (
        await sim.client.get("/services.json"),
        await sim.client.post("/requests.json", data=BASE),
        await sim.client.get(f"/requests/{rid}.json"),
        await sim.client.get("/servicerequestupdates.json"),
    ):
        assert r.status_code == 503 and is_error_list(r.json(), 503)
        assert r.headers["retry-after"] == "5"
    r = await sim.client.post(f"/_sim/advance/{rid}")
    assert r.status_code == 200
    assert (await sim.client.get("/healthz")).status_code == 200
    stats = await sim.stats()
    assert stats["answered_down"] == 4 and stats["requests_created"] == 1
    await sim.mode(down=False)
    assert (await sim.one(rid))["extended_attributes"]["grid_stage"] == "filed"


async def test_slow_mode_delays_open311_only(sim: Any) -> None:
    await sim.mode(slow_seconds=0.4)
    started = time.monotonic()
    r = await sim.client.get("/services.json")
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    await sim.client.get("/_sim/stats")
    assert time.monotonic() - started < 0.4


async def test_fail_next_answers_500_then_recovers(sim: Any) -> None:
    await sim.mode(fail_next=2)
    for _ in range(2):
        r = await sim.client.post("/requests.json", data=BASE)
        assert r.status_code == 500 and is_error_list(r.json(), 500)
    assert (await sim.stats())["requests_created"] == 0  # failed before anything was stored
    await sim.create()
    stats = await sim.stats()
    assert stats["posts_failed_injected"] == 2 and stats["requests_created"] == 1
    assert (await sim.client.get("/_sim/mode")).json()["fail_next"] == 0


async def test_fail_after_create_then_retry_finds_the_same_case(sim: Any) -> None:
    await sim.mode(fail_next=1, fail_after_create=True)
    data = {**BASE, "attribute[issue_id]": "iss-lost", "attribute[ticket_id]": "t-1"}
    r = await sim.client.post("/requests.json", data=data)
    assert r.status_code == 500
    r = await sim.client.get("/requests.json")
    [stored] = r.json()  # the case exists although the caller saw an error
    rid = await sim.create(**{"attribute[issue_id]": "iss-lost", "attribute[ticket_id]": "t-1"})
    assert rid == stored["service_request_id"]
    stats = await sim.stats()
    assert stats["requests_created"] == 1 and stats["duplicate_submissions"] == 1


async def test_error_rate(sim: Any) -> None:
    await sim.mode(error_rate=1.0)
    assert (await sim.client.post("/requests.json", data=BASE)).status_code == 500
    await sim.mode(error_rate=0.0)
    assert (await sim.client.post("/requests.json", data=BASE)).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [{"error_rate": 1.5}, {"fail_next": -1}, {"response_mode": "xml"}, {"no_such_mode": True}],
)
async def test_bad_mode_is_refused(sim: Any, payload: dict[str, Any]) -> None:
    r = await sim.client.post("/_sim/mode", json=payload)
    assert r.status_code == 422
    assert (await sim.client.get("/_sim/mode")).json()["error_rate"] == 0.0


async def test_reset_forgets_cases_but_never_reuses_ids(sim: Any) -> None:
    old = await sim.create(**{"attribute[issue_id]": "iss-r"})
    await sim.client.post(f"/_sim/advance/{old}")
    old_update = (await sim.client.get("/servicerequestupdates.json")).json()[-1]["update_id"]
    await sim.mode(down=True)
    assert (await sim.client.post("/_sim/reset")).status_code == 200
    assert (await sim.client.get("/_sim/mode")).json()["down"] is False
    assert (await sim.client.get("/requests.json")).json() == []
    assert (await sim.stats())["requests_created"] == 0
    new = await sim.create(**{"attribute[issue_id]": "iss-r"})  # dedupe memory is gone too
    assert new != old
    await sim.client.post(f"/_sim/advance/{new}")
    new_update = (await sim.client.get("/servicerequestupdates.json")).json()[-1]["update_id"]
    assert int(new_update) > int(old_update) and new_update > old_update
