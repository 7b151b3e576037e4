"""What a report, a note and a verdict must look like. Pure validation with stable error codes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from shequtong_kit.errors import InvalidArgument

MAX_PHOTOS = 9
MAX_DESCRIPTION = 2000
MAX_TITLE = 100
MAX_NOTE = 2000
MAX_REASON = 500
MAX_COMMENT = 500
URL = re.compile(r"^https?://[^\s<>\"']{1,490}$")
# A reference to uploaded media (as boards keeps them, e.g. "uploads/2026/lamp.jpg").
MEDIA_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~/-]{0,489}$")


def is_photo(value: str) -> bool:
    value = value.strip()
    return bool(URL.match(value) or (MEDIA_REF.match(value) and ".." not in value and "//" not in value))


def absolute(value: str, media_base_url: str) -> str:
    """A photo as a link others can follow: media references resolved against the media base."""
    if URL.match(value) or not media_base_url:
        return value
    return media_base_url.rstrip("/") + "/" + value


@dataclass(frozen=True)
class Location:
    household_id: str = ""
    building: str = ""
    address: str = ""
    lat: float | None = None
    lon: float | None = None

    @property
    def empty(self) -> bool:
        return not (self.household_id or self.building or self.address or self.lat is not None)


def clean_text(value: str, limit: int, code: str, what: str, required: bool = True) -> str:
    text = value.strip()
    if required and not text:
        raise InvalidArgument(f"{what} is required", code=code)
    if len(text) > limit:
        raise InvalidArgument(f"{what} is limited to {limit} characters", code=code)
    if any(ord(ch) < 32 and ch not in "\n\t" for ch in text):
        raise InvalidArgument(f"{what} contains control characters", code=code)
    return text


def clean_photos(urls: Sequence[str]) -> list[str]:
    if len(urls) > MAX_PHOTOS:
        raise InvalidArgument(f"at most {MAX_PHOTOS} photos", code="photos_invalid")
    cleaned = []
    for url in urls:
        if not is_photo(url):
            raise InvalidArgument("photos are http(s) links or uploaded media references", code="photos_invalid")
        cleaned.append(url.strip())
    return cleaned


def clean_location(location: Location, required: bool) -> Location:
    if location.lat is not None or location.lon is not None:
        if location.lat is None or location.lon is None:
            raise InvalidArgument("a point needs both lat and lon", code="location_invalid")
        if not (-90 <= location.lat <= 90 and -180 <= location.lon <= 180) or (location.lat, location.lon) == (0, 0):
            raise InvalidArgument("the point is not on the map", code="location_invalid")
    for value, limit in ((location.household_id, 36), (location.building, 100), (location.address, 200)):
        if len(value.strip()) > limit:
            raise InvalidArgument("a location field is too long", code="location_invalid")
    cleaned = Location(
        household_id=location.household_id.strip(),
        building=location.building.strip(),
        address=location.address.strip(),
        lat=location.lat,
        lon=location.lon,
    )
    if required and cleaned.empty:
        raise InvalidArgument(
            "say where: a household, a building, an address or a point on the map", code="location_required"
        )
    return cleaned


def clean_reason(reason: str) -> str:
    return clean_text(reason, MAX_REASON, "reason_required", "a reason")


def clean_note(text: str, photos: Sequence[str]) -> tuple[str, list[str]]:
    cleaned_photos = clean_photos(photos)
    note = clean_text(text, MAX_NOTE, "note_invalid", "a note", required=not cleaned_photos)
    return note, cleaned_photos
