"""Personal data (PIPL): ID numbers never stored in clear (read identity's database directly), ID numbers
and phone numbers never in any service's log or in an error message, phones masked for roles that may
not see them."""

from __future__ import annotations

import re
import sqlite3

import httpx
from integration.people import Person, register, valid_id_number, with_wrong_check_digit
from shequtong_stack import Stack

from security.world import World


def people_of(world: World) -> list[Person]:
    out: list[Person] = []
    for c in (world.a, world.b):
        out += [
            c.secretary,
            c.cadre,
            *c.residents,
            c.other_cadre,
            c.other_resident,
            c.subdistrict_staff,
            c.district_staff,
        ]
    if world.pending:
        out.append(world.pending)
    return out


def all_text_cells(url: str) -> list[str]:
    """Every value of every column of every table, as text."""
    cells: list[str] = []
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("///", 1)[1]) as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the catalogue
                    cells += [v.decode(errors="replace") if isinstance(v, bytes) else str(v) for v in row]
        return cells
    import psycopg

    with psycopg.connect(url.replace("postgresql+asyncpg://", "postgresql://")) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # noqa: S608 - names from the catalogue
                cells += [
                    bytes(v).decode(errors="replace") if isinstance(v, bytes | memoryview) else str(v) for v in row
                ]
    return cells


def test_id_numbers_are_never_stored_in_clear(system: Stack, world: World) -> None:
    cells = all_text_cells(system.database_urls["identity"])
    assert len(cells) > 100, "the identity database looks empty: wrong database?"
    blob = "\n".join(cells)
    people = people_of(world)
    for person in people:
        assert person.id_number not in blob, f"an ID number is stored in clear (person {person.person_id})"
        assert person.id_number[:17] not in blob  # nor without its check digit
    # other services hold no ID number at all
    for name, url in system.database_urls.items():
        if name == "identity":
            continue
        other = "\n".join(all_text_cells(url))
        assert not any(p.id_number in other for p in people), f"{name} stores an ID number"


def test_bad_input_errors_do_not_echo_personal_data(api: httpx.Client, world: World) -> None:
    _, _reply = register(api, world.a.join_code)  # fine
    bad_id = with_wrong_check_digit(valid_id_number("pii-echo"))
    refused = api.post(
        "/v1/registrations",
        json={
            "join_code": world.a.join_code,
            "real_name": "赵六",
            "phone": "13711112222",
            "id_number": bad_id,
            "password": "a-long-enough-password",
            "address": {"building": "1号楼", "unit": "1", "room": "101"},
        },
    )
    assert 400 <= refused.status_code < 500, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json") and refused.json()["code"]
    assert bad_id not in refused.text and bad_id[:17] not in refused.text
    assert "13711112222" not in refused.text
    taken = world.a.resident
    dup = api.post("/v1/auth/login", json={"phone": taken.phone, "password": "wrong-password-x"})
    assert taken.phone not in dup.text


def test_no_id_number_or_phone_in_any_log(system: Stack, world: World) -> None:
    logs = system.logs()
    assert logs, "no service logs"
    blob = "\n".join(logs.values())
    for person in people_of(world):
        assert person.id_number not in blob, f"an ID number is in a log (person {person.person_id})"
        assert person.phone not in blob, f"a phone number is in a log (person {person.person_id})"


def test_phones_are_masked_for_roles_that_may_not_see_them(api: httpx.Client, world: World) -> None:
    a = world.a
    path = f"/v1/neighbourhoods/{a.neighbourhood_id}/registrations"
    committee = api.get(path, params={"state": "pending"}, headers=a.cadre.headers)
    assert committee.status_code == 200, committee.text
    assert world.pending is not None and world.pending.phone in committee.text  # the committee may see it
    staff = api.get(path, params={"state": "pending"}, headers=a.subdistrict_staff.headers)
    if staff.status_code == 200:
        phones = [m["phone"] for m in staff.json()["items"]]
        assert phones and all(re.fullmatch(r"\d{3}\*{4}\d{4}", p) for p in phones), phones
        assert world.pending.phone not in staff.text
    else:
        assert staff.status_code in (403, 404), staff.text
    me = api.get("/v1/me", headers=a.resident.headers)
    assert me.status_code == 200 and a.resident.id_number not in me.text
