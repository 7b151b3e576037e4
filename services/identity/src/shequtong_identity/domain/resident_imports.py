"""Bulk import of verified residents (ImportResidents): record-by-record validation and the plan. Pure:
the service looks up what exists (`Lookups`) and writes the plan.

A batch is all or nothing: every error is reported with the record's position (the first is 1) and the
field, and nothing is written when there is any. A record whose external_ref was imported before is
skipped (re-sending a batch creates nothing twice). A person is found again by ID number (the same phone
is then required) so an imported resident of a second neighbourhood is one person with two memberships.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shequtong_identity.domain import households as household_rules
from shequtong_identity.domain import people
from shequtong_identity.domain.idnumber import normalize_id_number
from shequtong_identity.domain.imports import Errors
from shequtong_kit.errors import InvalidArgument

MAX_BATCH = 1000
MAX_REF = 64


@dataclass(frozen=True)
class RawResident:
    external_ref: str
    neighbourhood_id: str
    neighbourhood_code: str
    household_id: str
    address: tuple[str, str, str, str, str] | None  # building, unit, room, village_group, house_number
    real_name: str
    phone: str
    id_number: str
    party_member: bool


@dataclass(frozen=True)
class Resident:
    """A record that passed its own checks (normalised)."""

    row: int
    external_ref: str
    neighbourhood_id: str
    neighbourhood_code: str
    household_id: str
    address: household_rules.Address | None
    real_name: str
    display_name: str
    phone: str
    id_number: str
    party_member: bool


def ensure_batch_size(count: int) -> None:
    if count == 0:
        raise InvalidArgument("a batch has at least one record", code="batch_empty")
    if count > MAX_BATCH:
        raise InvalidArgument(f"a batch has at most {MAX_BATCH} records; split it", code="batch_too_large")


def parse(records: list[RawResident], errors: Errors) -> list[Resident]:
    """Each record checked on its own, then against the others of the batch."""
    parsed: list[Resident] = []
    refs: dict[str, int] = {}
    phones: dict[str, int] = {}
    ids: dict[str, int] = {}
    for number, raw in enumerate(records, start=1):
        errors.data_rows += 1
        ok = True
        ref = (raw.external_ref or "").strip()
        if not ref or len(ref) > MAX_REF:
            errors.add(number, "external_ref", "external_ref_invalid", f"an external_ref of 1 to {MAX_REF} characters")
            ok = False
        elif ref in refs:
            errors.add(number, "external_ref", "external_ref_repeated", f"also on record {refs[ref]}")
            ok = False
        else:
            refs[ref] = number
        if not (raw.neighbourhood_id or raw.neighbourhood_code):
            errors.add(number, "neighbourhood_id", "neighbourhood_required", "the neighbourhood's id or code")
            ok = False
        address = None
        if not raw.household_id:
            try:
                address = household_rules.normalize_address(*(raw.address or ("", "", "", "", "")))
            except InvalidArgument as exc:
                errors.add(number, "address", exc.code, exc.message)
                ok = False
        values: dict[str, str] = {}
        for column, check, value in (
            ("real_name", people.normalize_real_name, raw.real_name),
            ("phone", people.normalize_phone, raw.phone),
            ("id_number", normalize_id_number, raw.id_number),
        ):
            try:
                values[column] = check(value)
            except InvalidArgument as exc:
                errors.add(number, column, exc.code, exc.message)
                ok = False
        phone, id_number = values.get("phone", ""), values.get("id_number", "")
        if phone and phone in phones:
            errors.add(number, "phone", "phone_repeated", f"the same phone is on record {phones[phone]}")
            ok = False
        elif phone:
            phones[phone] = number
        if id_number and id_number in ids:
            errors.add(number, "id_number", "id_number_repeated", f"the same ID number is on record {ids[id_number]}")
            ok = False
        elif id_number:
            ids[id_number] = number
        if ok:
            parsed.append(
                Resident(
                    row=number,
                    external_ref=ref,
                    neighbourhood_id=raw.neighbourhood_id.strip(),
                    neighbourhood_code=raw.neighbourhood_code.strip(),
                    household_id=raw.household_id.strip(),
                    address=address,
                    real_name=values["real_name"],
                    display_name=people.display_name(values["real_name"]),
                    phone=phone,
                    id_number=id_number,
                    party_member=raw.party_member,
                )
            )
    return parsed


@dataclass(frozen=True)
class KnownPerson:
    id: str
    phone: str


@dataclass
class Lookups:
    """What exists, as the plan needs it."""

    imported: set[str] = field(default_factory=set)  # external_refs imported before
    neighbourhood_ids: set[str] = field(default_factory=set)
    neighbourhood_codes: dict[str, str] = field(default_factory=dict)  # code -> id
    households: dict[str, str] = field(default_factory=dict)  # household id -> neighbourhood id
    by_id_hmac: dict[str, KnownPerson] = field(default_factory=dict)
    by_phone: dict[str, str] = field(default_factory=dict)  # phone -> person id
    memberships: set[tuple[str, str]] = field(default_factory=set)  # (person id, neighbourhood id), active


@dataclass(frozen=True)
class Planned:
    resident: Resident
    neighbourhood_id: str
    id_hmac: str
    person_id: str  # "" = a new person


@dataclass
class Plan:
    rows: int = 0
    create: list[Planned] = field(default_factory=list)
    skipped: list[Resident] = field(default_factory=list)
    errors: Errors = field(default_factory=Errors)


def plan(residents: list[Resident], hmacs: Mapping[str, str], found: Lookups, errors: Errors) -> Plan:
    """`hmacs`: ID number -> its HMAC (the service holds the key)."""
    out = Plan(rows=errors.data_rows, errors=errors)
    for r in residents:
        if r.external_ref in found.imported:
            out.skipped.append(r)
            continue
        if r.neighbourhood_id:
            neighbourhood_id = r.neighbourhood_id if r.neighbourhood_id in found.neighbourhood_ids else ""
        else:
            neighbourhood_id = found.neighbourhood_codes.get(r.neighbourhood_code, "")
        if not neighbourhood_id:
            column = "neighbourhood_id" if r.neighbourhood_id else "neighbourhood_code"
            errors.add(r.row, column, "neighbourhood_not_found", "no such neighbourhood")
            continue
        if r.household_id and found.households.get(r.household_id) != neighbourhood_id:
            errors.add(r.row, "household_id", "household_not_found", "no such household in this neighbourhood")
            continue
        id_hmac = hmacs[r.id_number]
        known = found.by_id_hmac.get(id_hmac)
        person_id = ""
        if known is not None:
            if known.phone != r.phone:
                errors.add(r.row, "id_number", "id_number_taken", "this ID number is registered with another phone")
                continue
            if (known.id, neighbourhood_id) in found.memberships:
                errors.add(r.row, "neighbourhood_id", "already_a_member", "this person already belongs here")
                continue
            person_id = known.id
        elif r.phone in found.by_phone:
            errors.add(r.row, "phone", "phone_taken", "this mobile number is registered to another person")
            continue
        out.create.append(Planned(r, neighbourhood_id, id_hmac, person_id))
    if errors:
        out.create = []
    errors.items.sort(key=lambda e: e.row)
    return out
