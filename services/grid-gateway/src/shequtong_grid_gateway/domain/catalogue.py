"""The grid's service catalogue (Open311 services) and our category → service-code mapping,
per district. Loaded from a file or the platform's services.json, never hard-coded. Pure.

File format (GRID_CATALOGUE_FILE), JSON:

    {"default":   {"services": [<Open311 service>, ...], "categories": {"<our category>": "<service_code>"}},
     "districts": {"<district id>": {"services": [...], "categories": {...}}}}

A district without its own entry uses "default". A file without "services" for an entry (only
"categories") takes the services from the platform's services.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shequtong_grid_gateway.domain.tickets import SERVICE_CODE_UNKNOWN

DEFAULT_KEY = ""


@dataclass(frozen=True)
class CatalogueService:
    service_code: str
    service_name: str
    group: str = ""
    description: str = ""
    keywords: str = ""
    type: str = ""


@dataclass(frozen=True)
class CatalogueSpec:
    """One district's entry of the catalogue file; services None means 'ask the platform'."""

    services: tuple[CatalogueService, ...] | None
    categories: Mapping[str, str] = field(default_factory=dict)


class CatalogueError(ValueError):
    pass


def _text(item: Mapping[str, Any], key: str, limit: int) -> str:
    value = item.get(key)
    return "" if value is None else str(value).strip()[:limit]


def parse_services(items: object) -> tuple[CatalogueService, ...]:
    """Open311 `services.json` (or the file's list): service_code and service_name required."""
    if not isinstance(items, list):
        raise CatalogueError("a service list must be a JSON array")
    seen: dict[str, CatalogueService] = {}
    for item in items:
        if not isinstance(item, dict):
            raise CatalogueError("each service must be an object")
        code = _text(item, "service_code", 64)
        name = _text(item, "service_name", 200)
        if not code or not name:
            raise CatalogueError("every service needs service_code and service_name")
        seen[code] = CatalogueService(
            service_code=code,
            service_name=name,
            group=_text(item, "group", 200),
            description=_text(item, "description", 1000),
            keywords=_text(item, "keywords", 500),
            type=_text(item, "type", 20),
        )
    return tuple(seen.values())


def _spec(entry: object) -> CatalogueSpec:
    if not isinstance(entry, dict):
        raise CatalogueError("a catalogue entry must be an object")
    categories = entry.get("categories", {})
    if not isinstance(categories, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k.strip() and v.strip() for k, v in categories.items()
    ):
        raise CatalogueError("categories must map category codes to service codes")
    services = parse_services(entry["services"]) if "services" in entry else None
    return CatalogueSpec(services, {k.strip(): v.strip() for k, v in categories.items()})


def parse_catalogue_file(text: str) -> dict[str, CatalogueSpec]:
    """District key ('' for the default) → its entry. A bare list is the default services."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"the catalogue file is not JSON: {exc.msg}") from None
    if isinstance(data, list):
        return {DEFAULT_KEY: CatalogueSpec(parse_services(data))}
    if not isinstance(data, dict):
        raise CatalogueError("the catalogue file must be an object or a list of services")
    specs: dict[str, CatalogueSpec] = {}
    if "default" in data:
        specs[DEFAULT_KEY] = _spec(data["default"])
    districts = data.get("districts", {})
    if not isinstance(districts, dict):
        raise CatalogueError("districts must be an object keyed by district id")
    for key, entry in districts.items():
        if not isinstance(key, str) or not key.strip():
            raise CatalogueError("district keys must be district ids")
        specs[key.strip()] = _spec(entry)
    return specs


def resolve_service_code(
    requested: str, category_code: str, known_codes: set[str] | None, categories: Mapping[str, str]
) -> str:
    """The service code to file under: the one the issues service chose, else our mapping of
    the category, else the category itself when it is a grid code. Checked against the
    district's catalogue when one is loaded. Raises ValueError(SERVICE_CODE_UNKNOWN)."""
    category = (category_code or "").strip()
    code = (requested or "").strip() or categories.get(category, "")
    if not code and known_codes is not None and category in known_codes:
        code = category
    if not code or len(code) > 64 or (known_codes is not None and code not in known_codes):
        raise ValueError(SERVICE_CODE_UNKNOWN)
    return code
