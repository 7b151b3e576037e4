"""Open311 GeoReport v2 wire details: input validation, JSON shapes, dates, errors."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .catalogue import Catalogue, Service
from .store import GridRequest, Update
from .workflow import STAGE_INFO, external_status_code

MAX_DESCRIPTION = 4000
# Tags, comments and doctype declarations; a lone "<" or "a < b" stays allowed.
_HTML = re.compile(r"<\s*(/?[a-zA-Z][^>]*|!--.*?--|![a-zA-Z][^>]*)>", re.DOTALL)
_ATTRIBUTE_KEY = re.compile(r"^attribute\[([^\]]+)\](\[\])?$")


class Open311Error(Exception):
    """Answered as Open311's error list: [{"code": <http status>, "description": ...}]."""

    def __init__(self, code: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description

    def body(self) -> list[dict[str, Any]]:
        return [{"code": self.code, "description": self.description}]


@dataclass(frozen=True)
class NewRequest:
    service: Service
    description: str
    lat: float | None
    long: float | None
    address: str | None
    address_id: str | None
    media_url: str | None
    attributes: dict[str, str]

    @property
    def dedupe_key(self) -> tuple[str, str] | None:
        issue_id = self.attributes.get("issue_id", "").strip()
        if not issue_id:
            return None
        return (issue_id, self.attributes.get("ticket_id", "").strip())


def parse_new_request(form: Iterable[tuple[str, str]], catalogue: Catalogue) -> NewRequest:
    """Validate a create-request form (api_key already checked)."""
    fields: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for key, value in form:
        if not isinstance(value, str):
            raise Open311Error(400, f"{key} must be a text field, not a file upload")
        m = _ATTRIBUTE_KEY.match(key)
        if m:
            code = m.group(1)
            # multivaluelist values arrive as attribute[code][]=a&attribute[code][]=b
            attributes[code] = f"{attributes[code]},{value}" if m.group(2) and code in attributes else value
        else:
            fields[key] = value

    code = fields.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, "service_code is required")
    service = catalogue.get(code)
    if service is None:
        raise Open311Error(404, f"service_code {code!r} not found")

    description = fields.get("description", "")
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description is longer than {MAX_DESCRIPTION} characters")
    if _HTML.search(description):
        raise Open311Error(400, "description must not contain HTML")

    lat, long = _coordinates(fields.get("lat", "").strip(), fields.get("long", "").strip())
    address = fields.get("address_string", "").strip() or None
    address_id = fields.get("address_id", "").strip() or None
    if lat is None and address is None and address_id is None:
        raise Open311Error(400, "a location is required: lat and long, address_string or address_id")

    media_url = fields.get("media_url", "").strip() or None
    if media_url and not re.match(r"^https?://\S+$", media_url):
        raise Open311Error(400, "media_url must be an http(s) URL")

    _check_attributes(service, attributes)
    return NewRequest(service, description, lat, long, address, address_id, media_url, attributes)


def _coordinates(lat_raw: str, long_raw: str) -> tuple[float | None, float | None]:
    if not lat_raw and not long_raw:
        return None, None
    if not lat_raw or not long_raw:
        raise Open311Error(400, "lat and long must be given together")
    try:
        lat, long = float(lat_raw), float(long_raw)
    except ValueError:
        raise Open311Error(400, "lat and long must be decimal degrees") from None
    if not (math.isfinite(lat) and math.isfinite(long) and -90 <= lat <= 90 and -180 <= long <= 180):
        raise Open311Error(400, "lat must be within ±90 and long within ±180")
    return lat, long


def _check_attributes(service: Service, attributes: dict[str, str]) -> None:
    for attr in service.attributes:
        value = attributes.get(attr.code, "").strip()
        if not value:
            if attr.required:
                raise Open311Error(400, f"attribute[{attr.code}] is required for service {service.service_code}")
            continue
        if attr.datatype == "number":
            try:
                float(value)
            except ValueError:
                raise Open311Error(400, f"attribute[{attr.code}] must be a number") from None
        elif attr.datatype == "datetime":
            parse_datetime(value, f"attribute[{attr.code}]")
        elif attr.datatype in ("singlevaluelist", "multivaluelist") and attr.values:
            keys = {k for k, _ in attr.values}
            chosen = value.split(",") if attr.datatype == "multivaluelist" else [value]
            bad = [v for v in chosen if v not in keys]
            if bad:
                raise Open311Error(400, f"attribute[{attr.code}] has no value {bad[0]!r}")


def parse_datetime(raw: str, name: str) -> datetime:
    """ISO 8601; a value without a zone is read as UTC (Open311 asks for one, we forgive)."""
    text = raw.strip().replace(" ", "+") if re.search(r"\d \d{2}:\d{2}$", raw.strip()) else raw.strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be an ISO 8601 date-time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def format_datetime(value: datetime | None, offset: timedelta) -> str | None:
    if value is None:
        return None
    return value.astimezone(timezone(offset)).isoformat(timespec="seconds")


def request_json(r: GridRequest, offset: timedelta, service_notice: str) -> dict[str, Any]:
    info = STAGE_INFO[r.stage]
    return {
        "service_request_id": r.service_request_id,
        "status": info.status,
        "status_notes": r.status_notes or None,
        "service_name": r.service_name,
        "service_code": r.service_code,
        "description": r.description,
        "agency_responsible": r.agency_responsible,
        "service_notice": service_notice or None,
        "requested_datetime": format_datetime(r.requested_at, offset),
        "updated_datetime": format_datetime(r.updated_at, offset),
        "expected_datetime": format_datetime(r.expected_at, offset),
        "address": r.address,
        "address_id": r.address_id,
        "zipcode": None,
        "lat": r.lat,
        "long": r.long,
        "media_url": r.media_url,
        # Simulator extension for humans and tests; the real platform may offer no such field,
        # so the gateway must rely on servicerequestupdates, not on this.
        "extended_attributes": {
            "grid_stage": r.stage.value,
            "grid_stage_name": info.label,
            "external_status_code": external_status_code(r.stage, duplicate=r.duplicate),
        },
    }


def update_json(u: Update, offset: timedelta) -> dict[str, Any]:
    return {
        "update_id": u.update_id,
        "service_request_id": u.service_request_id,
        "status": u.status,
        "updated_datetime": format_datetime(u.updated_at, offset),
        "description": u.description,
        "media_url": u.media_url,
        "external_status_code": u.external_status_code,
    }
