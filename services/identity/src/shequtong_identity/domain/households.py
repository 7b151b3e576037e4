"""Household addresses inside a neighbourhood: building/unit/room, or village group/house number."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from shequtong_kit.errors import InvalidArgument

MAX_PART = 40


@dataclass(frozen=True)
class Address:
    building: str = ""
    unit: str = ""
    room: str = ""
    village_group: str = ""
    house_number: str = ""

    @property
    def key(self) -> str:
        """The uniqueness key inside a neighbourhood (case- and width-insensitive)."""
        parts = (self.building, self.unit, self.room, self.village_group, self.house_number)
        return "|".join(unicodedata.normalize("NFKC", p).casefold() for p in parts)


def _clean(value: str) -> str:
    cleaned = unicodedata.normalize("NFKC", (value or "").strip())
    if len(cleaned) > MAX_PART:
        raise InvalidArgument(f"an address part has at most {MAX_PART} characters", code="address_invalid")
    return cleaned


def normalize_address(
    building: str = "", unit: str = "", room: str = "", village_group: str = "", house_number: str = ""
) -> Address:
    address = Address(_clean(building), _clean(unit), _clean(room), _clean(village_group), _clean(house_number))
    urban = bool(address.building and address.room)
    rural = bool(address.village_group and address.house_number)
    if urban == rural or (urban and (address.village_group or address.house_number)):
        raise InvalidArgument(
            "an address is building (+ unit) + room, or village group + house number",
            code="address_invalid",
        )
    return address
