"""Demo data for `make run`: the reference district (宝山区), its sub-districts and the
neighbourhoods the reference article names, and the people who run and live in three of them —
all loaded through the public API (so every rule applies: registration, review, the role hierarchy).
Safe to run again: what exists is found, not duplicated.

Every demo account signs in with its phone and the shared, clearly fake password DEMO_PASSWORD
(or with an SMS code: the embedded stack writes codes to var/sms-outbox.jsonl).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from shequtong_stack import OPERATOR_CLIENT, Stack

CSV = Path(__file__).parent / "demo" / "baoshan-subdistricts.csv"
VILLAGES = {"罗泾镇": ["塘湾村", "海星村"], "罗店镇": ["天平村"]}
DEMO_PASSWORD = "demo-pass-2026"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def demo_id_number(serial: int) -> str:
    """A made-up ID number with a valid GB 11643 check digit (region 310113, born 1950-1999)."""
    first17 = f"310113{1950 + serial % 50}{serial % 12 + 1:02d}{serial % 28 + 1:02d}{serial % 1000:03d}"
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return first17 + "10X98765432"[total % 11]


@dataclass(frozen=True)
class DemoPerson:
    phone: str
    name: str
    # "district_staff", "subdistrict_staff", "secretary", "cadre", "resident", "party_member"
    role: str
    neighbourhood: str = ""  # the neighbourhood's name (residents, committee)
    address: tuple[str, ...] = ()  # (building, unit, room) or (village group, house number)

    @property
    def id_number(self) -> str:
        return demo_id_number(int(self.phone[-4:]) + 7)


# Phones are 1390000xxxx: made up, never sent to (the embedded SMS sender writes to a local file).
PEOPLE = [
    DemoPerson("13900000001", "周海峰", "district_staff"),
    DemoPerson("13900000002", "孙丽华", "subdistrict_staff"),
    DemoPerson("13900000010", "王建国", "secretary", "淞南十村"),
    DemoPerson("13900000011", "李秀英", "cadre", "淞南十村"),
    DemoPerson("13900000012", "张伟", "cadre", "淞南十村"),
    DemoPerson("13900000101", "陈静", "resident", "淞南十村", ("12号楼", "1", "101")),
    DemoPerson("13900000102", "刘洋", "resident", "淞南十村", ("12号楼", "1", "101")),
    DemoPerson("13900000103", "黄敏", "party_member", "淞南十村", ("12号楼", "2", "302")),
    DemoPerson("13900000104", "赵磊", "resident", "淞南十村", ("15号楼", "1", "502")),
    DemoPerson("13900000105", "吴桂英", "party_member", "淞南十村", ("18号楼", "3", "201")),
    DemoPerson("13900000106", "徐强", "resident", "淞南十村", ("18号楼", "3", "202")),
    DemoPerson("13900000020", "马晓东", "secretary", "美兰湖郡园"),
    DemoPerson("13900000021", "朱琳", "cadre", "美兰湖郡园"),
    DemoPerson("13900000201", "胡杰", "resident", "美兰湖郡园", ("7号楼", "1", "1101")),
    DemoPerson("13900000202", "郭芳", "party_member", "美兰湖郡园", ("7号楼", "2", "801")),
    DemoPerson("13900000203", "何涛", "resident", "美兰湖郡园", ("9号楼", "1", "302")),
    DemoPerson("13900000030", "高明", "secretary", "塘湾村"),
    DemoPerson("13900000031", "林秀霞", "cadre", "塘湾村"),
    DemoPerson("13900000301", "罗平", "resident", "塘湾村", ("3组", "18号")),
    DemoPerson("13900000302", "梁桂兰", "party_member", "塘湾村", ("3组", "21号")),
    DemoPerson("13900000303", "宋刚", "resident", "塘湾村", ("5组", "6号")),
]


def _rows() -> list[dict[str, str]]:
    lines = [line for line in CSV.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines, fieldnames=["level", "name", "kind", "parent", "note"]))


class Loader:
    def __init__(self, api: httpx.Client, headers: dict[str, str]) -> None:
        self.api = api
        self.headers = headers
        self.by_code: dict[str, str] = {}

    def region(self, level: str, code: str, name: str, parent: str | None, kind: str | None = None) -> str:
        body = {"level": level, "code": code, "name": name, "parent_id": parent, "kind": kind}
        reply = self.api.post("/v1/regions", json=body, headers={**self.headers, "Idempotency-Key": f"demo-{code}"})
        if reply.status_code == 201:
            return str(reply.json()["id"])
        if reply.status_code == 409:
            return self.find(code, parent)
        raise RuntimeError(f"creating {name}: {reply.status_code} {reply.text}")

    def find(self, code: str, parent: str | None) -> str:
        cursor = None
        while True:
            params = {
                "parent_id": parent or "",
                "level": "district" if not parent else None,
                "page_size": 100,
                "cursor": cursor,
            }
            reply = self.api.get("/v1/regions", params={k: v for k, v in params.items() if v}, headers=self.headers)
            reply.raise_for_status()
            page = reply.json()
            for item in page["items"]:
                if item["code"] == code:
                    return str(item["id"])
            cursor = page["next_cursor"]
            if not cursor:
                raise RuntimeError(f"region {code} exists but was not found")


class People:
    """Demo people through the API: staff accounts by the operator, residents by registration + review."""

    def __init__(self, api: httpx.Client, ops: dict[str, str]) -> None:
        self.api = api
        self.ops = ops
        self.ids: dict[str, str] = {}
        self.tokens: dict[str, dict[str, str]] = {}

    def headers(self, person: DemoPerson) -> dict[str, str]:
        if person.phone not in self.tokens:
            reply = self.api.post("/v1/auth/login", json={"phone": person.phone, "password": DEMO_PASSWORD})
            if reply.status_code != 200:
                raise RuntimeError(f"demo login {person.phone}: {reply.status_code} {reply.text}")
            self.ids[person.phone] = str(reply.json()["person_id"])
            self.tokens[person.phone] = {"Authorization": f"Bearer {reply.json()['access_token']}"}
        return self.tokens[person.phone]

    def staff(self, person: DemoPerson) -> str:
        body = {
            "real_name": person.name,
            "phone": person.phone,
            "id_number": person.id_number,
            "password": DEMO_PASSWORD,
        }
        reply = self.api.post("/v1/people", json=body, headers=self.ops)
        if reply.status_code == 201:
            self.ids[person.phone] = str(reply.json()["id"])
        elif reply.status_code == 409:  # there from an earlier run
            self.headers(person)
        else:
            raise RuntimeError(f"creating {person.phone}: {reply.status_code} {reply.text}")
        return self.ids[person.phone]

    def grant(self, granter: dict[str, str], person: DemoPerson, role: str, scope: str) -> None:
        body = {"person_id": self.ids[person.phone], "role": role, "scope": scope, "reason": "演示数据"}
        reply = self.api.post("/v1/roles", json=body, headers=granter)
        if reply.status_code not in (201, 409):
            raise RuntimeError(f"granting {role} to {person.phone}: {reply.status_code} {reply.text}")

    def shift_covering_now(self, neighbourhood_id: str, secretary: DemoPerson, cadre: DemoPerson, hours: int) -> None:
        now = datetime.now(UTC)
        headers = self.headers(secretary)
        listed = self.api.get(
            f"/v1/neighbourhoods/{neighbourhood_id}/roster", params={"page_size": 100}, headers=headers
        )
        listed.raise_for_status()
        for shift in listed.json()["items"]:
            starts, ends = datetime.fromisoformat(shift["starts_at"]), datetime.fromisoformat(shift["ends_at"])
            if shift["person_id"] == self.ids[cadre.phone] and starts <= now < ends:
                return
        body = {
            "person_id": self.ids[cadre.phone],
            "starts_at": (now - timedelta(hours=hours)).isoformat(),
            "ends_at": (now + timedelta(days=7) - timedelta(hours=hours + 1)).isoformat(),
        }
        self.api.post(f"/v1/neighbourhoods/{neighbourhood_id}/roster", json=body, headers=headers).raise_for_status()

    def resident(self, person: DemoPerson, join_code: str, reviewer: dict[str, str]) -> None:
        if len(person.address) == 3:
            address = dict(zip(("building", "unit", "room"), person.address, strict=True))
        else:
            address = dict(zip(("village_group", "house_number"), person.address, strict=True))
        party = person.role == "party_member"
        body = {
            "join_code": join_code,
            "real_name": person.name,
            "phone": person.phone,
            "id_number": person.id_number,
            "password": DEMO_PASSWORD,
            "address": address,
            "party_member": party,
        }
        reply = self.api.post("/v1/registrations", json=body)
        if reply.status_code == 201:
            membership = reply.json()
        elif reply.status_code == 409 and reply.json().get("code") in ("phone_taken", "id_number_taken"):
            me = self.api.get("/v1/me", headers=self.headers(person)).json()
            membership = me["memberships"][0]
        else:
            raise RuntimeError(f"registering {person.phone}: {reply.status_code} {reply.text}")
        self.ids[person.phone] = str(membership["person_id"])
        if membership["state"] == "pending":
            verify = self.api.post(
                f"/v1/memberships/{membership['id']}/verify", json={"confirm_party_member": party}, headers=reviewer
            )
            verify.raise_for_status()
        elif party:
            self.api.post(f"/v1/memberships/{membership['id']}/confirm-party-member", headers=reviewer)


def load_people(
    api: httpx.Client, ops: dict[str, str], district: str, subdistricts: dict[str, str], neighbourhoods: dict[str, str]
) -> list[str]:
    people = People(api, ops)
    by_role = {p.role: p for p in reversed(PEOPLE)}
    district_staff, subdistrict_staff = by_role["district_staff"], by_role["subdistrict_staff"]
    people.staff(district_staff)
    people.grant(ops, district_staff, "district_staff", f"d:{district}")
    people.staff(subdistrict_staff)
    people.grant(ops, subdistrict_staff, "subdistrict_staff", f"s:{subdistricts['淞南镇']}")
    for name in ("淞南十村", "美兰湖郡园", "塘湾村"):
        n = neighbourhoods[name]
        here = [p for p in PEOPLE if p.neighbourhood == name]
        secretary = next(p for p in here if p.role == "secretary")
        cadres = [p for p in here if p.role == "cadre"]
        people.staff(secretary)
        people.grant(people.headers(district_staff), secretary, "secretary", f"n:{n}")
        for index, cadre in enumerate(cadres):
            people.staff(cadre)
            people.grant(people.headers(secretary), cadre, "cadre", f"n:{n}")
            people.shift_covering_now(n, secretary, cadre, hours=12 + 6 * index)
        residents = [p for p in here if p.role in ("resident", "party_member")]
        code = api.post(
            f"/v1/neighbourhoods/{n}/join-codes", json={"ttl_seconds": 7 * 24 * 3600}, headers=people.headers(secretary)
        )
        code.raise_for_status()
        for person in residents:
            people.resident(person, code.json()["code"], people.headers(cadres[0]))
    lines = [f"Demo logins (password for all: {DEMO_PASSWORD}; or an SMS code from var/sms-outbox.jsonl):"]
    labels = {
        "district_staff": "district staff 宝山区",
        "subdistrict_staff": "sub-district staff 淞南镇",
        "secretary": "secretary",
        "cadre": "cadre (on duty)",
        "resident": "resident",
        "party_member": "resident, party member",
    }
    for person in PEOPLE:
        where = f" of {person.neighbourhood}" if person.neighbourhood else ""
        lines.append(f"  {person.phone}  {person.name:<4}  {labels[person.role]}{where}")
    return lines


def load_demo_data(stack: Stack) -> list[str]:
    with httpx.Client(base_url=stack.gateway_url, timeout=20) as api:
        token = api.post(
            "/v1/auth/service-token",
            json={
                "client_id": OPERATOR_CLIENT,
                "client_secret": stack.secrets.service_secrets[OPERATOR_CLIENT],
            },
        ).json()["access_token"]
        loader = Loader(api, {"Authorization": f"Bearer {token}"})
        rows = _rows()
        district = loader.region("district", "310113", "宝山区", None)
        subdistricts: dict[str, str] = {}
        for index, row in enumerate(r for r in rows if r["level"] == "subdistrict"):
            subdistricts[row["name"]] = loader.region("subdistrict", f"310113{index + 1:03d}", row["name"], district)
        neighbourhoods: dict[str, str] = {}
        counter = 0
        for row in rows:
            if row["level"] != "neighbourhood":
                continue
            counter += 1
            neighbourhoods[row["name"]] = loader.region(
                "neighbourhood", f"310113N{counter:03d}", row["name"], subdistricts[row["parent"]], "residential"
            )
        for town, villages in VILLAGES.items():
            for village in villages:
                counter += 1
                neighbourhoods[village] = loader.region(
                    "neighbourhood", f"310113N{counter:03d}", village, subdistricts[town], "village"
                )
        logins = load_people(api, loader.headers, district, subdistricts, neighbourhoods)
    return [
        f"District 宝山区 with {len(subdistricts)} sub-districts and {len(neighbourhoods)} neighbourhoods loaded.",
        f"Operator client: {OPERATOR_CLIENT} / {stack.secrets.service_secrets[OPERATOR_CLIENT]} "
        "(POST /v1/auth/service-token) — secrets in var/secrets.json",
        *logins,
    ]
