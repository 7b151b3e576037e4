"""`make run`'s demo data loads through the API into a running system, and loading it again changes nothing."""

from __future__ import annotations

import httpx
from demo_data import DEMO_PASSWORD, PEOPLE, load_demo_data
from shequtong_stack import Stack


def test_demo_data_loads_and_reloads(api: httpx.Client, system: Stack, ops_headers: dict[str, str]) -> None:
    first = load_demo_data(system)
    for person in PEOPLE:
        assert any(person.phone in line for line in first), person.phone
    assert any(DEMO_PASSWORD in line for line in first)

    def session(phone: str) -> dict[str, str]:
        reply = api.post("/v1/auth/login", json={"phone": phone, "password": DEMO_PASSWORD})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    def me(phone: str) -> dict[str, object]:
        return api.get("/v1/me", headers=session(phone)).json()  # type: ignore[no-any-return]

    secretary = me("13900000010")
    n = next(r.split("@n:")[1] for r in secretary["roles"] if r.startswith("secretary@"))  # type: ignore[union-attr]
    on_duty = api.get(f"/v1/neighbourhoods/{n}/on-duty", headers=session("13900000010")).json()
    cadres = {p.phone for p in PEOPLE if p.role == "cadre" and p.neighbourhood == "淞南十村"}
    cadre_ids = {str(me(phone)["person"]["id"]) for phone in cadres}  # type: ignore[index]
    assert on_duty["person_id"] in cadre_ids and on_duty["fallback_to_secretary"] is False
    for person in PEOPLE:
        if person.role in ("resident", "party_member"):
            mine = me(person.phone)
            assert [m["state"] for m in mine["memberships"]] == ["verified"], person.phone  # type: ignore[union-attr]
            badge = any(r.startswith("party_member@") for r in mine["roles"])  # type: ignore[union-attr]
            assert badge == (person.role == "party_member"), person.phone
    district_staff = me("13900000001")
    assert any(r.startswith("district_staff@d:") for r in district_staff["roles"])  # type: ignore[union-attr]
    households = api.get(f"/v1/neighbourhoods/{n}/households", params={"page_size": 100}, headers=ops_headers).json()
    assert len(households["items"]) == 5  # six residents of 淞南十村 in five households

    # Loaded again: nothing new, nothing broken.
    second = load_demo_data(system)
    assert second == first
    again = api.get(f"/v1/neighbourhoods/{n}/households", params={"page_size": 100}, headers=ops_headers).json()
    assert len(again["items"]) == 5
    roster = api.get(f"/v1/neighbourhoods/{n}/roster", headers=session("13900000010")).json()
    assert len(roster["items"]) == 2, "no extra shifts while the first ones cover now"
