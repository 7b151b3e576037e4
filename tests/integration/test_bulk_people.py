"""Bulk import of people through the real services: an operator imports residents (identity) and makes some
of them volunteers (volunteers, which asks identity who lives where); the committee's registration list and
the volunteer list show them, identity grants the volunteer badge from the volunteers' events, and an
imported resident — who has no password — signs in with an SMS code. Re-sending a batch creates nothing."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from integration.helpers import create_region_tree, eventually
from integration.people import Person, login_with_code, unique_phone, valid_id_number
from shequtong.identity.v1 import identity_pb2, identity_pb2_grpc
from shequtong.volunteers.v1 import volunteers_pb2, volunteers_pb2_grpc
from shequtong_kit.grpc_client import channel


def call(addr: str, stub_type: Any, method: str, request: Any, headers: dict[str, str]) -> Any:
    async def go() -> Any:
        async with channel(addr) as ch:
            stub = stub_type(ch)
            return await getattr(stub, method)(
                request, metadata=(("authorization", headers["Authorization"]),), timeout=30
            )

    return asyncio.run(go())


def test_imported_residents_and_volunteers_show_up_and_sign_in_by_code(
    system: Any, api: httpx.Client, ops_headers: dict[str, str]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    hood = create_region_tree(api, ops_headers, suffix)["residential"]
    people = [
        identity_pb2.ResidentRecord(
            external_ref=f"{suffix}-{i}",
            neighbourhood_id=hood,
            address=identity_pb2.Address(building=f"{i % 2 + 1}号楼", room="101"),
            real_name="李四海",
            phone=unique_phone(),
            id_number=valid_id_number(f"{suffix}-{i}"),
            party_member=i == 0,
        )
        for i in range(4)
    ]
    request = identity_pb2.ImportResidentsRequest(residents=people)
    identity = system.addr("identity")
    reply = call(identity, identity_pb2_grpc.IdentityServiceStub, "ImportResidents", request, ops_headers)
    assert reply.report.applied and reply.report.created == 4, reply.report
    again = call(identity, identity_pb2_grpc.IdentityServiceStub, "ImportResidents", request, ops_headers)
    assert (again.report.created, again.report.skipped) == (0, 4)
    assert [r.person_id for r in again.residents] == [r.person_id for r in reply.residents]

    verified = api.get(
        f"/v1/neighbourhoods/{hood}/registrations", params={"state": "verified"}, headers=ops_headers
    ).json()["items"]
    assert {m["person_id"] for m in verified} == {r.person_id for r in reply.residents}
    assert len({m["household_id"] for m in verified}) == 2

    # Volunteers: the service hears of the neighbourhood from identity's events, then asks identity who lives there.
    volunteers = volunteers_pb2.ImportVolunteersRequest(
        volunteers=[
            volunteers_pb2.VolunteerRecord(
                external_ref=f"{suffix}-v{i}", person_id=r.person_id, neighbourhood_id=hood, skills=["助老"]
            )
            for i, r in enumerate(reply.residents[:2])
        ]
    )

    def import_volunteers() -> Any:
        answer = call(
            system.addr("volunteers"),
            volunteers_pb2_grpc.VolunteersServiceStub,
            "ImportVolunteers",
            volunteers,
            ops_headers,
        )
        return answer if answer.report.applied else None

    made = eventually(import_volunteers, timeout=30, interval=0.5, what="volunteers imported")
    assert made.report.created == 2
    listed = api.get(
        "/v1/volunteers", params={"neighbourhood_id": hood, "state": "approved"}, headers=ops_headers
    ).json()["items"]
    assert {v["person_id"] for v in listed} == {r.person_id for r in reply.residents[:2]}
    assert all(v["display_name"].startswith("李") for v in listed)

    # An imported resident signs in with an SMS code and carries the badges identity granted from the events.
    first = Person(reply.residents[0].person_id, people[0].phone, "", people[0].real_name, people[0].id_number)
    assert api.post("/v1/auth/login", json={"phone": first.phone, "password": "any-password-1"}).status_code == 401

    login_with_code(api, system.workdir, first)

    def badges() -> list[str] | None:
        roles: list[str] = api.get("/v1/me", headers=first.headers).json()["roles"]  # the roles held now
        return roles if f"volunteer@n:{hood}" in roles else None

    roles = eventually(badges, timeout=30, interval=1.0, what="volunteer badge")
    assert {f"resident@n:{hood}", f"party_member@n:{hood}"} <= set(roles)

    # Boards heard of the import from identity's one packed event: the resident's post shows their name and
    # the party-member badge the import confirmed.
    boards = {b["kind"]: b["id"] for b in api.get(f"/v1/neighbourhoods/{hood}/boards", headers=first.headers).json()}
    reply = api.post(
        f"/v1/boards/{boards['neighbourhood_matters']}/posts",
        json={"title": "楼道灯", "body": "二号楼楼道灯不亮"},
        headers=first.headers,
    )
    assert reply.status_code == 201, reply.text
    author = reply.json()["author"]
    assert author["display_name"].startswith("李") and "party_member" in author["badges"], author
