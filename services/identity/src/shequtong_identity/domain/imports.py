"""Bulk import of the region tree and of households from CSV: parsing, row-by-row validation and the
plan of what to create. Pure: the service looks up what exists and writes the plan.

Rows are numbered as a spreadsheet numbers them (the first line of the file is row 1, the header too).
Every error is reported with its row and column; the service writes nothing when there is any.
Rows that already exist (same code at the same place; same address in the same neighbourhood), or
repeat an earlier row, are skipped and counted — an import can be run again safely.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shequtong.common.v1 import common_pb2
from shequtong_identity.domain import households as household_rules
from shequtong_identity.domain import regions as region_rules
from shequtong_kit.errors import InvalidArgument

REGION_COLUMNS = ("level", "code", "name", "parent_code", "kind")
HOUSEHOLD_COLUMNS = ("neighbourhood_code", "building", "unit", "room", "village_group", "house_number")
MAX_ROWS = 200_000
MAX_ERRORS = 1000
MAX_CODE = 64
MAX_NAME = 200

RESIDENTIAL = common_pb2.NEIGHBOURHOOD_KIND_RESIDENTIAL
VILLAGE = common_pb2.NEIGHBOURHOOD_KIND_VILLAGE

LEVELS: dict[str, tuple[int, int]] = {
    # name → (level, implied neighbourhood kind or 0)
    "district": (region_rules.DISTRICT, 0),
    "区": (region_rules.DISTRICT, 0),
    "subdistrict": (region_rules.SUBDISTRICT, 0),
    "街镇": (region_rules.SUBDISTRICT, 0),
    "街道": (region_rules.SUBDISTRICT, 0),
    "镇": (region_rules.SUBDISTRICT, 0),
    "neighbourhood": (region_rules.NEIGHBOURHOOD, 0),
    "neighborhood": (region_rules.NEIGHBOURHOOD, 0),
    "居委": (region_rules.NEIGHBOURHOOD, RESIDENTIAL),
    "居委会": (region_rules.NEIGHBOURHOOD, RESIDENTIAL),
    "村": (region_rules.NEIGHBOURHOOD, VILLAGE),
    "村委": (region_rules.NEIGHBOURHOOD, VILLAGE),
}
KINDS: dict[str, int] = {
    "residential": RESIDENTIAL,
    "居委": RESIDENTIAL,
    "居委会": RESIDENTIAL,
    "village": VILLAGE,
    "村": VILLAGE,
}
LEVEL_NAMES: dict[int, str] = {
    region_rules.DISTRICT: "district",
    region_rules.SUBDISTRICT: "subdistrict",
    region_rules.NEIGHBOURHOOD: "neighbourhood",
}


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    code: str
    message: str


class Errors:
    """Collects row errors; keeps the first MAX_ERRORS and counts them all."""

    def __init__(self) -> None:
        self.items: list[RowError] = []
        self.count = 0
        self.data_rows = 0  # every non-blank data row read, valid or not

    def add(self, row: int, column: str, code: str, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append(RowError(row, column, code, message))

    def __bool__(self) -> bool:
        return self.count > 0


def read_rows(data: bytes, columns: tuple[str, ...], errors: Errors) -> list[tuple[int, list[str]]]:
    """(row number, cells padded to len(columns)) of every non-blank data row; a header row is skipped."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        errors.add(0, "", "encoding_invalid", "the file must be UTF-8 text")
        return []
    rows: list[tuple[int, list[str]]] = []
    header_seen = False
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if not header_seen and not rows:
                header_seen = True
                if [c.lower() for c in cells] == list(columns[: len(cells)]) and len(cells) >= 2:
                    continue
            errors.data_rows += 1
            if len(cells) > len(columns):
                errors.add(number, "", "too_many_columns", f"a row has at most {len(columns)} columns")
                continue
            rows.append((number, cells + [""] * (len(columns) - len(cells))))
            if len(rows) > MAX_ROWS:
                errors.add(number, "", "too_many_rows", f"an import has at most {MAX_ROWS} rows; split the file")
                return rows
    except csv.Error as exc:
        errors.add(0, "", "csv_invalid", f"the file is not valid CSV: {exc}")
    if not rows and not errors:
        errors.add(0, "", "empty", "the file has no data rows")
    return rows


# --- regions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionRow:
    row: int
    level: int
    code: str
    name: str
    parent_code: str
    kind: int

    def same_as(self, other: RegionRow) -> bool:
        return (self.level, self.name, self.parent_code, self.kind) == (
            other.level,
            other.name,
            other.parent_code,
            other.kind,
        )


@dataclass(frozen=True)
class ExistingRegion:
    """A region already stored, as the plan needs it."""

    id: str
    level: int
    parent_code: str


@dataclass
class RegionPlan:
    rows: int = 0
    create: list[RegionRow] = field(default_factory=list)  # parents before children
    skipped: int = 0
    errors: Errors = field(default_factory=Errors)


def parse_regions(data: bytes) -> tuple[list[RegionRow], Errors]:
    errors = Errors()
    parsed: list[RegionRow] = []
    for number, (level_text, code, name, parent_code, kind_text) in read_rows(data, REGION_COLUMNS, errors):
        ok = True
        level, implied_kind = LEVELS.get(level_text.lower(), (0, 0))
        if not level:
            errors.add(number, "level", "level_invalid", "level is district, subdistrict or neighbourhood")
            ok = False
        if not code or len(code) > MAX_CODE:
            errors.add(number, "code", "code_invalid", f"a code is required (at most {MAX_CODE} characters)")
            ok = False
        if not name or len(name) > MAX_NAME:
            errors.add(number, "name", "name_invalid", f"a name is required (at most {MAX_NAME} characters)")
            ok = False
        kind = 0
        if level == region_rules.NEIGHBOURHOOD:
            kind = KINDS.get(kind_text.lower(), 0) if kind_text else implied_kind
            if not kind or (implied_kind and kind != implied_kind):
                errors.add(number, "kind", "kind_invalid", "a neighbourhood is residential (居委) or village (村)")
                ok = False
        if level == region_rules.DISTRICT and parent_code:
            errors.add(number, "parent_code", "parent_invalid", "a district has no parent")
            ok = False
        if level in (region_rules.SUBDISTRICT, region_rules.NEIGHBOURHOOD) and not parent_code:
            errors.add(number, "parent_code", "parent_required", "the code of the region above is required")
            ok = False
        if ok:
            parsed.append(RegionRow(number, level, code, name, parent_code, kind))
    return parsed, errors


def codes_to_look_up(rows: Iterable[RegionRow]) -> set[str]:
    codes: set[str] = set()
    for row in rows:
        codes.add(row.code)
        if row.parent_code:
            codes.add(row.parent_code)
    return codes


def plan_regions(data: bytes, existing: Mapping[str, ExistingRegion]) -> RegionPlan:
    """What to create, given the stored regions among `codes_to_look_up(parse_regions(data)[0])`."""
    rows, errors = parse_regions(data)
    plan = RegionPlan(rows=errors.data_rows, errors=errors)
    first: dict[str, RegionRow] = {}
    new: list[RegionRow] = []
    for row in rows:
        earlier = first.get(row.code)
        if earlier is not None:
            if row.same_as(earlier):
                plan.skipped += 1
            else:
                errors.add(row.row, "code", "code_repeated", f"code {row.code} is also on row {earlier.row}")
            continue
        first[row.code] = row
        stored = existing.get(row.code)
        if stored is None:
            new.append(row)
        elif stored.level == row.level and stored.parent_code == row.parent_code:
            plan.skipped += 1
        else:
            where = f"under {stored.parent_code}" if stored.parent_code else "at the top"
            errors.add(
                row.row,
                "code",
                "code_conflict",
                f"code {row.code} exists as a {LEVEL_NAMES.get(stored.level, '?')} {where}",
            )
    for row in new:
        if row.level == region_rules.DISTRICT:
            continue
        expected = region_rules.PARENT_LEVEL[row.level]
        parent_level = first[row.parent_code].level if row.parent_code in first else None
        if parent_level is None and row.parent_code in existing:
            parent_level = existing[row.parent_code].level
        if parent_level is None:
            errors.add(row.row, "parent_code", "parent_not_found", f"no region has the code {row.parent_code}")
        elif parent_level != expected:
            errors.add(
                row.row,
                "parent_code",
                "parent_level_invalid",
                f"the region above a {LEVEL_NAMES[row.level]} is a {LEVEL_NAMES[expected]}",
            )
    if not errors:
        plan.create = sorted(new, key=lambda r: (r.level, r.row))
    errors.items.sort(key=lambda e: e.row)
    return plan


# --- households -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HouseholdRow:
    row: int
    neighbourhood_code: str
    address: household_rules.Address


@dataclass
class HouseholdPlan:
    rows: int = 0
    create: list[tuple[HouseholdRow, str]] = field(default_factory=list)  # (row, neighbourhood id)
    skipped: int = 0
    errors: Errors = field(default_factory=Errors)


def parse_households(data: bytes) -> tuple[list[HouseholdRow], Errors]:
    errors = Errors()
    parsed: list[HouseholdRow] = []
    for number, (code, building, unit, room, group, house) in read_rows(data, HOUSEHOLD_COLUMNS, errors):
        if not code:
            errors.add(number, "neighbourhood_code", "code_invalid", "the neighbourhood's code is required")
            continue
        try:
            address = household_rules.normalize_address(building, unit, room, group, house)
        except InvalidArgument as exc:
            errors.add(number, "address", exc.code, exc.message)
            continue
        parsed.append(HouseholdRow(number, code, address))
    return parsed, errors


def plan_households(
    data: bytes,
    neighbourhoods: Mapping[str, str],
    existing: set[tuple[str, str]],
) -> HouseholdPlan:
    """`neighbourhoods`: code → id of the neighbourhoods named in the file that exist;
    `existing`: (neighbourhood id, address key) of the stored households among them."""
    rows, errors = parse_households(data)
    plan = HouseholdPlan(rows=errors.data_rows, errors=errors)
    seen: set[tuple[str, str]] = set()
    for row in rows:
        neighbourhood_id = neighbourhoods.get(row.neighbourhood_code)
        if neighbourhood_id is None:
            errors.add(
                row.row,
                "neighbourhood_code",
                "neighbourhood_not_found",
                f"no neighbourhood has the code {row.neighbourhood_code}",
            )
            continue
        key = (neighbourhood_id, row.address.key)
        if key in seen or key in existing:
            plan.skipped += 1
            continue
        seen.add(key)
        plan.create.append((row, neighbourhood_id))
    if errors:
        plan.create = []
    errors.items.sort(key=lambda e: e.row)
    return plan


@dataclass(frozen=True)
class Outcome:
    """What an import did (or, for a dry run or invalid rows, would do)."""

    rows: int
    created: int
    skipped: int
    errors: Errors
    applied: bool
