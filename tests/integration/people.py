"""People for journeys: a fresh district with a committee, residents and staff, all signed in.

    from integration.people import new_neighbourhood_with_people
    community = new_neighbourhood_with_people(api, ops_headers)
    api.get(f"/v1/neighbourhoods/{community.neighbourhood_id}/boards", headers=community.resident.headers)

Every person is a dataclass with person_id, phone, password, access/refresh tokens and `headers`.
Phones and ID numbers are unique per call, so modules sharing one running stack never collide.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import httpx

from integration.helpers import create_region_tree

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
PASSWORD = "community-pass-2026"


def valid_id_number(seed: str | int) -> str:
    """A GB 11643-valid ID number derived from `seed` (different seeds give different numbers)."""
    digest = int(hashlib.sha256(str(seed).encode()).hexdigest(), 16)
    region = 110000 + digest % 700000  # first digit 1-7: a plausible region code
    born = date(1940, 1, 1) + timedelta(days=(digest >> 20) % (365 * 60))
    sequence = (digest >> 40) % 1000
    first17 = f"{region:06d}{born:%Y%m%d}{sequence:03d}"
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return first17 + CHECK_CHARS[total % 11]


def with_wrong_check_digit(id_number: str) -> str:
    wrong = next(c for c in "0123456789X" if c != id_number[-1])
    return id_number[:-1] + wrong


def unique_phone() -> str:
    return "1" + "3456789"[uuid.uuid4().int % 7] + f"{uuid.uuid4().int % 10**9:09d}"


def chinese_name(seed: str) -> str:
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return SURNAMES[digest % len(SURNAMES)] + GIVEN[(digest >> 8) % len(GIVEN)] + GIVEN[(digest >> 16) % len(GIVEN)]


@dataclass
class Person:
    person_id: str
    phone: str
    password: str
    real_name: str
    id_number: str
    access_token: str = ""
    refresh_token: str = ""
    membership_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@dataclass
class Community:
    """One fresh district → sub-district → two neighbourhoods, with the people in them."""

    district_id: str
    subdistrict_id: str
    neighbourhood_id: str  # residential; the committee and residents below live here
    other_neighbourhood_id: str  # village, a second committee
    secretary: Person
    cadre: Person  # on duty now (a shift around the current time)
    residents: list[Person]  # verified; residents[-1] is a confirmed party member
    party_member: Person
    other_cadre: Person
    other_resident: Person
    subdistrict_staff: Person
    district_staff: Person
    join_code: str  # an open code of the first neighbourhood (committee-made)
    other_join_code: str
    shift_id: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def resident(self) -> Person:
        return self.residents[0]


def _ok(reply: httpx.Response, status: int = 200) -> dict[str, object]:
    assert reply.status_code == status, f"{reply.request.method} {reply.request.url.path}: {reply.text}"
    return reply.json() if reply.content else {}  # type: ignore[no-any-return]


def login(api: httpx.Client, phone: str, password: str) -> dict[str, str]:
    """POST /v1/auth/login → the token pair (access_token, refresh_token, person_id, ...)."""
    return _ok(api.post("/v1/auth/login", json={"phone": phone, "password": password}))  # type: ignore[return-value]


def sign_in(api: httpx.Client, person: Person) -> Person:
    tokens = login(api, person.phone, person.password)
    person.access_token = tokens["access_token"]
    person.refresh_token = tokens["refresh_token"]
    return person


def create_person(api: httpx.Client, ops_headers: dict[str, str], seed: str | None = None) -> Person:
    """A staff account made by an operator (no neighbourhood), not signed in yet."""
    seed = seed or uuid.uuid4().hex
    person = Person("", unique_phone(), PASSWORD, chinese_name(seed), valid_id_number(seed))
    body = _ok(
        api.post(
            "/v1/people",
            json={
                "real_name": person.real_name,
                "phone": person.phone,
                "id_number": person.id_number,
                "password": person.password,
            },
            headers=ops_headers,
        ),
        201,
    )
    person.person_id = str(body["id"])
    return person


def grant(api: httpx.Client, headers: dict[str, str], person: Person, role: str, scope: str) -> str:
    body = _ok(
        api.post("/v1/roles", json={"person_id": person.person_id, "role": role, "scope": scope}, headers=headers), 201
    )
    return str(body["id"])


def create_join_code(api: httpx.Client, headers: dict[str, str], neighbourhood_id: str, **terms: int) -> str:
    body = _ok(api.post(f"/v1/neighbourhoods/{neighbourhood_id}/join-codes", json=terms, headers=headers), 201)
    return str(body["code"])


def register(
    api: httpx.Client,
    join_code: str,
    *,
    seed: str | None = None,
    party_member: bool = False,
    address: dict[str, str] | None = None,
) -> tuple[Person, httpx.Response]:
    """Registers a newcomer; returns the person (membership_id set when it worked) and the raw reply."""
    seed = seed or uuid.uuid4().hex
    person = Person("", unique_phone(), PASSWORD, chinese_name(seed), valid_id_number(seed))
    reply = api.post(
        "/v1/registrations",
        json={
            "join_code": join_code,
            "real_name": person.real_name,
            "phone": person.phone,
            "id_number": person.id_number,
            "password": person.password,
            "address": address or {"building": f"{seed[:4]}号楼", "unit": "1", "room": "101"},
            "party_member": party_member,
        },
    )
    if reply.status_code == 201:
        person.person_id = reply.json()["person_id"]
        person.membership_id = reply.json()["id"]
    return person, reply


def register_and_verify(
    api: httpx.Client,
    join_code: str,
    reviewer_headers: dict[str, str],
    *,
    party_member: bool = False,
    signed_in: bool = True,
) -> Person:
    """A newcomer registers with `join_code`, the reviewer (the neighbourhood's committee) verifies them
    (confirming a claimed party membership), and they sign in: the token carries resident@n:."""
    person, reply = register(api, join_code, party_member=party_member)
    _ok(reply, 201)
    _ok(
        api.post(
            f"/v1/memberships/{person.membership_id}/verify",
            json={"confirm_party_member": party_member},
            headers=reviewer_headers,
        )
    )
    return sign_in(api, person) if signed_in else person


def new_neighbourhood_with_people(api: httpx.Client, ops_headers: dict[str, str]) -> Community:
    """A fresh district/sub-district/two neighbourhoods with district staff, sub-district staff, a secretary,
    an on-duty cadre, two residents and a party member in the first; a cadre and a resident in the second."""
    suffix = uuid.uuid4().hex[:8]
    tree = create_region_tree(api, ops_headers, suffix)
    n1, n2 = tree["residential"], tree["village"]
    district_staff = create_person(api, ops_headers)
    subdistrict_staff = create_person(api, ops_headers)
    secretary = create_person(api, ops_headers)
    cadre = create_person(api, ops_headers)
    other_cadre = create_person(api, ops_headers)

    grant(api, ops_headers, district_staff, "district_staff", f"d:{tree['district']}")
    grant(api, ops_headers, subdistrict_staff, "subdistrict_staff", f"s:{tree['subdistrict']}")
    sign_in(api, district_staff)
    grant(api, district_staff.headers, secretary, "secretary", f"n:{n1}")
    sign_in(api, subdistrict_staff)
    grant(api, subdistrict_staff.headers, other_cadre, "cadre", f"n:{n2}")
    sign_in(api, secretary)
    grant(api, secretary.headers, cadre, "cadre", f"n:{n1}")
    now = datetime.now(UTC)
    shift = _ok(
        api.post(
            f"/v1/neighbourhoods/{n1}/roster",
            json={
                "person_id": cadre.person_id,
                "starts_at": (now - timedelta(hours=12)).isoformat(),
                "ends_at": (now + timedelta(hours=48)).isoformat(),
            },
            headers=secretary.headers,
        ),
        201,
    )
    sign_in(api, cadre)
    sign_in(api, other_cadre)

    code = create_join_code(api, secretary.headers, n1)
    other_code = create_join_code(api, other_cadre.headers, n2)
    residents = [register_and_verify(api, code, cadre.headers) for _ in range(2)]
    party_member = register_and_verify(api, code, cadre.headers, party_member=True)
    other_resident = register_and_verify(api, other_code, other_cadre.headers)
    return Community(
        district_id=tree["district"],
        subdistrict_id=tree["subdistrict"],
        neighbourhood_id=n1,
        other_neighbourhood_id=n2,
        secretary=secretary,
        cadre=cadre,
        residents=[*residents, party_member],
        party_member=party_member,
        other_cadre=other_cadre,
        other_resident=other_resident,
        subdistrict_staff=subdistrict_staff,
        district_staff=district_staff,
        join_code=code,
        other_join_code=other_code,
        shift_id=str(shift["id"]),
    )


def sms_code(workdir: object, phone: str) -> str | None:
    """The last one-time code identity's development SMS sink wrote for `phone` (SMS_OUTBOX_FILE), if any."""
    import json
    from pathlib import Path

    path = Path(str(workdir)) / "sms-outbox.jsonl"
    if not path.exists():
        return None
    found = None
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("to") == phone:
            found = str(entry["code"])
    return found


def login_with_code(api: httpx.Client, workdir: object, person: Person) -> Person:
    """Signs `person` in by phone + SMS code (reads the code from the development sink)."""
    _ok(api.post("/v1/auth/login-code", json={"phone": person.phone}), 202)
    code = sms_code(workdir, person.phone)
    assert code, "no code written to the development SMS sink"
    tokens = _ok(api.post("/v1/auth/login-with-code", json={"phone": person.phone, "code": code}))
    person.access_token = str(tokens["access_token"])
    person.refresh_token = str(tokens["refresh_token"])
    return person
