"""Social organisations and charity storefronts through the gateway: the district's approval gate,
offerings and slots, concurrent bookings of the last place, who may book, the organisation's decisions
and the residents' ratings."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from integration.people import Community, Person, create_person, new_neighbourhood_with_people, sign_in

CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code() -> str:
    """A fresh unified social credit code (GB 32100) with a correct check character."""
    body = "5231" + "".join(CREDIT_ALPHABET[b % 31] for b in uuid.uuid4().bytes[:13])
    total = sum(CREDIT_ALPHABET.index(ch) * w for ch, w in zip(body, CREDIT_WEIGHTS, strict=True))
    return body + CREDIT_ALPHABET[(31 - total % 31) % 31]


class As:
    def __init__(self, api: httpx.Client, person: Person) -> None:
        self.api, self.person = api, person

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.api.get(path, params=params, headers=self.person.headers)

    def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return self.api.post(path, json=body or {}, headers=self.person.headers)


def ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url.path}: {reply.text}"
    return reply.json()


def problem(reply: httpx.Response, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    assert reply.json()["code"] == code, reply.text


@dataclass
class Charity:
    community: Community
    founder: As
    organisation: dict[str, Any]
    storefront: dict[str, Any]


@pytest.fixture(scope="module")
def community(api: httpx.Client, ops_headers: dict[str, str]) -> Community:
    return new_neighbourhood_with_people(api, ops_headers)


@pytest.fixture(scope="module")
def founder(api: httpx.Client, ops_headers: dict[str, str]) -> As:
    return As(api, sign_in(api, create_person(api, ops_headers)))


def register(founder: As, c: Community) -> dict[str, Any]:
    body = {
        "name": f"阳光社工服务社 {uuid.uuid4().hex[:4]}",
        "credit_code": credit_code(),
        "district_id": c.district_id,
    }
    return ok(founder.post("/v1/organisations", body), 201)  # type: ignore[no-any-return]


def test_an_organisation_that_is_not_approved_cannot_open_a_storefront(
    api: httpx.Client, community: Community, founder: As
) -> None:
    c = community
    org = register(founder, c)
    assert org["state"] == "pending" and org["admin_person_ids"] == [founder.person.person_id]
    storefront = {"name": "阳光便民服务点", "neighbourhood_ids": [c.neighbourhood_id]}
    problem(founder.post(f"/v1/organisations/{org['id']}/storefronts", storefront), 409, "organisation_not_approved")
    assert ok(founder.get("/v1/storefronts", organisation_id=org["id"]))["items"] == [], "nothing was opened"

    problem(As(api, c.cadre).post(f"/v1/organisations/{org['id']}/approve"), 403, "not_district_staff")
    problem(
        As(api, c.resident).get("/v1/organisations", district_id=c.district_id, state="pending"),
        403,
        "not_district_staff",
    )
    staff = As(api, c.district_staff)
    pending = ok(staff.get("/v1/organisations", district_id=c.district_id, state="pending"))["items"]
    assert org["id"] in {o["id"] for o in pending}

    rejected = register(founder, c)
    problem(staff.post(f"/v1/organisations/{rejected['id']}/reject", {"reason": ""}), 400, "reason_required")
    assert ok(staff.post(f"/v1/organisations/{rejected['id']}/reject", {"reason": "材料不全"}))["state"] == "rejected"
    problem(
        founder.post(f"/v1/organisations/{rejected['id']}/storefronts", storefront), 409, "organisation_not_approved"
    )

    approved = ok(staff.post(f"/v1/organisations/{org['id']}/approve"))
    assert approved["state"] == "approved" and approved["decided_by"] == c.district_staff.person_id
    problem(staff.post(f"/v1/organisations/{org['id']}/approve"), 409, "organisation_not_pending")
    problem(As(api, c.resident).post(f"/v1/organisations/{org['id']}/storefronts", storefront), 403, "not_org_admin")
    far = {"name": "跨区", "neighbourhood_ids": [c.neighbourhood_id, "not-a-neighbourhood"]}
    problem(founder.post(f"/v1/organisations/{org['id']}/storefronts", far), 404, "neighbourhood_not_found")
    opened = ok(founder.post(f"/v1/organisations/{org['id']}/storefronts", storefront), 201)
    assert opened["state"] == "open" and opened["neighbourhood_ids"] == [c.neighbourhood_id]
    listed = ok(As(api, c.resident).get("/v1/storefronts", neighbourhood_id=c.neighbourhood_id))["items"]
    assert opened["id"] in {s["id"] for s in listed}
    duplicate = {"name": "重复", "credit_code": approved["credit_code"], "district_id": c.district_id}
    problem(founder.post("/v1/organisations", duplicate), 409, "credit_code_taken")


@pytest.fixture(scope="module")
def charity(api: httpx.Client, community: Community, founder: As) -> Charity:
    c = community
    org = register(founder, c)
    ok(As(api, c.district_staff).post(f"/v1/organisations/{org['id']}/approve"))
    storefront = ok(
        founder.post(
            f"/v1/organisations/{org['id']}/storefronts",
            {"name": "家电维修点", "address": "淞南路100号", "neighbourhood_ids": [c.neighbourhood_id]},
        ),
        201,
    )
    return Charity(c, founder, org, storefront)


def new_slot(charity: Charity, capacity: int, price_cents: int = 0) -> tuple[dict[str, Any], dict[str, Any]]:
    founder = charity.founder
    offering = ok(
        founder.post(
            f"/v1/storefronts/{charity.storefront['id']}/offerings",
            {"title": "老人理发", "category": "haircut", "price_cents": price_cents, "eligibility_note": "60岁以上"},
        ),
        201,
    )
    starts = datetime.now(UTC) + timedelta(days=1)
    slot = ok(
        founder.post(
            f"/v1/offerings/{offering['id']}/slots",
            {
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(minutes=30)).isoformat(),
                "capacity": capacity,
            },
        ),
        201,
    )
    return offering, slot


def test_two_residents_booking_a_one_place_slot_at_once(api: httpx.Client, charity: Charity) -> None:
    c = charity.community
    offering, slot = new_slot(charity, capacity=1)
    first, second = c.residents[0], c.residents[1]

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(api.base_url), timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"/v1/offerings/{offering['id']}/bookings", json={"slot_id": slot["id"]}, headers=p.headers
                    )
                    for p in (first, second)
                )
            )

    replies = asyncio.run(both())
    assert sorted(r.status_code for r in replies) == [201, 409], [r.text for r in replies]
    refused = next(r for r in replies if r.status_code == 409)
    problem(refused, 409, "slot_full")
    assert "fully booked" in refused.json()["detail"]
    slots = ok(As(api, first).get(f"/v1/offerings/{offering['id']}/slots"))["items"]
    assert [(s["booked_count"], s["places_left"]) for s in slots] == [(1, 0)]
    booked = ok(charity.founder.get("/v1/bookings", storefront_id=charity.storefront["id"]))["items"]
    assert [b["slot_id"] for b in booked if b["offering_id"] == offering["id"]] == [slot["id"]]


def test_a_resident_of_another_neighbourhood_cannot_book(api: httpx.Client, charity: Charity) -> None:
    c = charity.community
    offering, slot = new_slot(charity, capacity=3)
    outsider = As(api, c.other_resident)
    assert c.other_neighbourhood_id not in charity.storefront["neighbourhood_ids"]
    problem(
        outsider.post(f"/v1/offerings/{offering['id']}/bookings", {"slot_id": slot["id"]}),
        403,
        "neighbourhood_not_served",
    )
    problem(
        outsider.post(
            f"/v1/offerings/{offering['id']}/bookings",
            {"slot_id": slot["id"], "neighbourhood_id": c.other_neighbourhood_id},
        ),
        403,
        "neighbourhood_not_served",
    )
    slots = ok(outsider.get(f"/v1/offerings/{offering['id']}/slots"))["items"]
    assert slots[0]["booked_count"] == 0, "a refused booking takes no place"


def test_the_organisation_decides_and_residents_rate(api: httpx.Client, charity: Charity) -> None:
    c = charity.community
    founder, resident, neighbour = charity.founder, As(api, c.residents[0]), As(api, c.residents[2])
    offering, slot = new_slot(charity, capacity=2, price_cents=1500)

    booking = ok(
        resident.post(f"/v1/offerings/{offering['id']}/bookings", {"slot_id": slot["id"], "note": "上门"}), 201
    )
    assert (booking["state"], booking["price_cents"], booking["offering_title"]) == ("requested", 1500, "老人理发")
    problem(resident.post(f"/v1/offerings/{offering['id']}/bookings", {"slot_id": slot["id"]}), 409, "already_booked")
    problem(resident.post(f"/v1/bookings/{booking['id']}/accept"), 403, "not_org_admin")
    assert ok(founder.post(f"/v1/bookings/{booking['id']}/accept"))["state"] == "accepted"
    problem(resident.post(f"/v1/bookings/{booking['id']}/rating", {"rating": 5}), 409, "booking_not_fulfilled")
    assert ok(founder.post(f"/v1/bookings/{booking['id']}/fulfil"))["state"] == "fulfilled"
    problem(neighbour.post(f"/v1/bookings/{booking['id']}/rating", {"rating": 1}), 403, "not_your_booking")
    rated = ok(resident.post(f"/v1/bookings/{booking['id']}/rating", {"rating": 5, "comment": "师傅很耐心"}))
    assert (rated["rating"], rated["rating_comment"]) == (5, "师傅很耐心")
    problem(resident.post(f"/v1/bookings/{booking['id']}/rating", {"rating": 4}), 409, "already_rated")

    request = ok(neighbour.post(f"/v1/offerings/{offering['id']}/bookings", {"note": "冰箱不制冷"}), 201)
    assert request["slot_id"] is None
    problem(founder.post(f"/v1/bookings/{request['id']}/decline", {"reason": ""}), 422, "validation_failed")
    declined = ok(founder.post(f"/v1/bookings/{request['id']}/decline", {"reason": "配件缺货"}))
    assert (declined["state"], declined["reason"]) == ("declined", "配件缺货")

    stats = ok(neighbour.get(f"/v1/storefronts/{charity.storefront['id']}"))["stats"]
    assert (stats["rating_count"], stats["average_rating"]) == (1, 5.0)
    assert (stats["fulfilled_count"], stats["declined_count"], stats["fulfilment_rate"]) == (1, 1, 0.5)

    mine = ok(resident.get("/v1/bookings", mine="true"))["items"]
    assert booking["id"] in {b["id"] for b in mine} and request["id"] not in {b["id"] for b in mine}
    problem(resident.get("/v1/bookings", storefront_id=charity.storefront["id"]), 403, "not_org_admin")

    issue_id = str(uuid.uuid4())
    link = ok(
        founder.post("/v1/mutual-aid-links", {"issue_id": issue_id, "target": "booking", "target_id": booking["id"]}),
        201,
    )
    assert (link["organisation_id"], link["neighbourhood_id"]) == (charity.organisation["id"], c.neighbourhood_id)


def test_cancelling_a_booking_frees_the_place(api: httpx.Client, charity: Charity) -> None:
    c = charity.community
    offering, slot = new_slot(charity, capacity=1)
    first, second = As(api, c.residents[0]), As(api, c.residents[1])
    booking = ok(first.post(f"/v1/offerings/{offering['id']}/bookings", {"slot_id": slot["id"]}), 201)
    problem(second.post(f"/v1/offerings/{offering['id']}/bookings", {"slot_id": slot["id"]}), 409, "slot_full")
    problem(second.post(f"/v1/bookings/{booking['id']}/cancel"), 403, "not_your_booking")
    assert ok(first.post(f"/v1/bookings/{booking['id']}/cancel"))["state"] == "cancelled"
    assert (
        ok(second.post(f"/v1/offerings/{offering['id']}/bookings", {"slot_id": slot["id"]}), 201)["state"]
        == "requested"
    )
