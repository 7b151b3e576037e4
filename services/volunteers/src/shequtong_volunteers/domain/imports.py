"""Bulk import of approved volunteers and of approved organisations with their storefronts: record-by-record
validation and the plan. Pure: the service looks up what exists and writes the plan.

A batch is all or nothing: every error names the record's position (the first is 1), the field and a
stable code, and nothing is written when there is any. A record whose external_ref was imported before is
skipped, so re-sending a batch creates nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shequtong_kit.auth import Lineage
from shequtong_kit.errors import InvalidArgument
from shequtong_volunteers.domain import organisations as org_rules
from shequtong_volunteers.domain import text
from shequtong_volunteers.domain import volunteers as volunteer_rules

MAX_BATCH = 1000
MAX_REF = 64
MAX_ERRORS = 1000
VOLUNTEER = "volunteer"  # ImportRef.kind
STOREFRONT = "storefront"


@dataclass(frozen=True)
class RecordError:
    row: int
    column: str
    code: str
    message: str


class Errors:
    def __init__(self) -> None:
        self.items: list[RecordError] = []
        self.count = 0

    def add(self, row: int, column: str, code: str, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append(RecordError(row, column, code, message))

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass(frozen=True)
class Outcome:
    rows: int
    created: int
    skipped: int
    errors: Errors
    applied: bool


def ensure_batch_size(count: int) -> None:
    if count == 0:
        raise InvalidArgument("a batch has at least one record", code="batch_empty")
    if count > MAX_BATCH:
        raise InvalidArgument(f"a batch has at most {MAX_BATCH} records; split it", code="batch_too_large")


def _ref(row: int, value: str, seen: dict[str, int], errors: Errors) -> str | None:
    ref = (value or "").strip()
    if not ref or len(ref) > MAX_REF:
        errors.add(row, "external_ref", "external_ref_invalid", f"an external_ref of 1 to {MAX_REF} characters")
        return None
    if ref in seen:
        errors.add(row, "external_ref", "external_ref_repeated", f"also on record {seen[ref]}")
        return None
    seen[ref] = row
    return ref


# --- volunteers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawVolunteer:
    external_ref: str
    person_id: str
    neighbourhood_id: str
    team_id: str
    skills: list[str]
    availability: str
    motivation: str


@dataclass(frozen=True)
class VolunteerRow:
    row: int
    external_ref: str
    person_id: str
    neighbourhood_id: str
    team_id: str  # "" = the default team
    application: volunteer_rules.Application


def parse_volunteers(records: list[RawVolunteer], errors: Errors) -> list[VolunteerRow]:
    parsed: list[VolunteerRow] = []
    refs: dict[str, int] = {}
    for number, raw in enumerate(records, start=1):
        ref = _ref(number, raw.external_ref, refs, errors)
        ok = ref is not None
        person = (raw.person_id or "").strip()
        if not person or len(person) > 64:
            errors.add(number, "person_id", "person_required", "the volunteer's person id")
            ok = False
        neighbourhood = (raw.neighbourhood_id or "").strip()
        if not neighbourhood:
            errors.add(number, "neighbourhood_id", "neighbourhood_required", "the neighbourhood's id")
            ok = False
        try:
            application = volunteer_rules.validate_application(raw.skills, raw.availability, raw.motivation)
        except InvalidArgument as exc:
            errors.add(number, exc.code.removesuffix("_invalid"), exc.code, exc.message)
            ok = False
        if ok and ref is not None:
            parsed.append(VolunteerRow(number, ref, person, neighbourhood, raw.team_id.strip(), application))
    return parsed


@dataclass
class VolunteerLookups:
    imported: set[str] = field(default_factory=set)
    neighbourhoods: set[str] = field(default_factory=set)  # known to the region directory
    teams: dict[str, str] = field(default_factory=dict)  # team id -> neighbourhood id
    default_teams: dict[str, str] = field(default_factory=dict)  # neighbourhood id -> team id
    residents: set[tuple[str, str]] = field(default_factory=set)  # (person, neighbourhood), verified (identity)
    active: dict[tuple[str, str], str] = field(default_factory=dict)  # (team, person) -> state


@dataclass
class VolunteerPlan:
    rows: int = 0
    create: list[tuple[VolunteerRow, str]] = field(default_factory=list)  # (row, team id)
    skipped: list[VolunteerRow] = field(default_factory=list)
    errors: Errors = field(default_factory=Errors)


def plan_volunteers(rows: list[VolunteerRow], count: int, found: VolunteerLookups, errors: Errors) -> VolunteerPlan:
    out = VolunteerPlan(rows=count, errors=errors)
    pairs: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.external_ref in found.imported:
            out.skipped.append(r)
            continue
        if r.neighbourhood_id not in found.neighbourhoods:
            errors.add(r.row, "neighbourhood_id", "neighbourhood_not_found", "no such neighbourhood")
            continue
        team = r.team_id or found.default_teams.get(r.neighbourhood_id, "")
        if not team or team not in found.teams:
            errors.add(r.row, "team_id", "team_not_found", "no such team")
            continue
        if found.teams[team] != r.neighbourhood_id:
            errors.add(r.row, "team_id", "team_not_in_neighbourhood", "that team belongs to another neighbourhood")
            continue
        if (r.person_id, r.neighbourhood_id) not in found.residents:
            errors.add(r.row, "person_id", "not_a_resident", "not a verified resident of this neighbourhood")
            continue
        if (team, r.person_id) in pairs:
            earlier = pairs[team, r.person_id]
            errors.add(r.row, "person_id", "volunteer_repeated", f"the same volunteer is on record {earlier}")
            continue
        pairs[(team, r.person_id)] = r.row
        state = found.active.get((team, r.person_id))
        if state == volunteer_rules.APPROVED:
            out.skipped.append(r)
            continue
        if state is not None:
            errors.add(r.row, "person_id", "already_applied", "an application to this team awaits its decision")
            continue
        out.create.append((r, team))
    if errors:
        out.create = []
    errors.items.sort(key=lambda e: e.row)
    return out


# --- storefronts ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawStorefront:
    external_ref: str
    organisation_name: str
    credit_code: str
    district_id: str
    organisation_description: str
    admin_person_ids: list[str]
    name: str
    description: str
    address: str
    neighbourhood_ids: list[str]


@dataclass(frozen=True)
class StorefrontRow:
    row: int
    external_ref: str
    organisation: org_rules.Registration
    district_id: str
    admins: list[str]
    storefront: org_rules.StorefrontDraft
    neighbourhood_ids: list[str]


def parse_storefronts(records: list[RawStorefront], errors: Errors) -> list[StorefrontRow]:
    parsed: list[StorefrontRow] = []
    refs: dict[str, int] = {}
    organisations: dict[str, tuple[int, str, str]] = {}  # credit code -> (row, name, district)
    for number, raw in enumerate(records, start=1):
        ref = _ref(number, raw.external_ref, refs, errors)
        ok = ref is not None
        try:
            registration = org_rules.validate_registration(
                raw.organisation_name, raw.credit_code, raw.organisation_description
            )
        except InvalidArgument as exc:
            errors.add(number, "organisation", exc.code, exc.message)
            ok = False
        try:
            draft = org_rules.validate_storefront(raw.name, raw.description, raw.address)
        except InvalidArgument as exc:
            errors.add(number, "storefront", exc.code, exc.message)
            ok = False
        try:
            admins = text.ids(raw.admin_person_ids, "admin_person_ids", max_items=20)
            served = text.ids(raw.neighbourhood_ids, "neighbourhood_ids")
            if not served:
                raise InvalidArgument("choose the neighbourhoods the storefront serves", code="neighbourhoods_required")
        except InvalidArgument as exc:
            column = "neighbourhood_ids" if "neighbourhood" in exc.code else "admin_person_ids"
            errors.add(number, column, exc.code, exc.message)
            ok = False
        district = (raw.district_id or "").strip()
        if not district:
            errors.add(number, "district_id", "district_required", "the organisation's district")
            ok = False
        if not ok or ref is None:
            continue
        earlier = organisations.get(registration.credit_code)
        if earlier is not None and (earlier[1], earlier[2]) != (registration.name, district):
            errors.add(
                number, "credit_code", "credit_code_conflict", f"record {earlier[0]} names this organisation otherwise"
            )
            continue
        organisations.setdefault(registration.credit_code, (number, registration.name, district))
        parsed.append(StorefrontRow(number, ref, registration, district, admins, draft, served))
    return parsed


@dataclass(frozen=True)
class KnownOrganisation:
    id: str
    district_id: str
    state: str


@dataclass
class StorefrontLookups:
    imported: set[str] = field(default_factory=set)
    organisations: dict[str, KnownOrganisation] = field(default_factory=dict)  # by credit code
    lineages: dict[str, Lineage] = field(default_factory=dict)  # known neighbourhoods
    districts: set[str] = field(default_factory=set)  # districts with at least one known neighbourhood


@dataclass
class StorefrontPlan:
    rows: int = 0
    create: list[StorefrontRow] = field(default_factory=list)
    skipped: list[StorefrontRow] = field(default_factory=list)
    errors: Errors = field(default_factory=Errors)


def plan_storefronts(rows: list[StorefrontRow], count: int, found: StorefrontLookups, errors: Errors) -> StorefrontPlan:
    out = StorefrontPlan(rows=count, errors=errors)
    for r in rows:
        if r.external_ref in found.imported:
            out.skipped.append(r)
            continue
        if r.district_id not in found.districts:
            errors.add(r.row, "district_id", "district_not_found", "no such district")
            continue
        known = found.organisations.get(r.organisation.credit_code)
        if known is not None and known.district_id != r.district_id:
            errors.add(r.row, "credit_code", "credit_code_taken", "registered in another district")
            continue
        if known is not None and known.state != org_rules.APPROVED:
            errors.add(r.row, "credit_code", "organisation_not_approved", f"the organisation is {known.state}")
            continue
        unknown = [n for n in r.neighbourhood_ids if n not in found.lineages]
        if unknown:
            errors.add(r.row, "neighbourhood_ids", "neighbourhood_not_found", "no such neighbourhood")
            continue
        try:
            org_rules.served_neighbourhoods(r.district_id, [found.lineages[n] for n in r.neighbourhood_ids])
        except InvalidArgument as exc:
            errors.add(r.row, "neighbourhood_ids", exc.code, exc.message)
            continue
        out.create.append(r)
    if errors:
        out.create = []
    errors.items.sort(key=lambda e: e.row)
    return out


def credit_codes(rows: list[StorefrontRow]) -> Mapping[str, StorefrontRow]:
    """The first record naming each organisation (its name and description are the ones registered)."""
    first: dict[str, StorefrontRow] = {}
    for r in rows:
        first.setdefault(r.organisation.credit_code, r)
    return first
