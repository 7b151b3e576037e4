"""The category catalogue: resident-facing categories, each mapped to the grid platform's service code.

The catalogue is data (per district; the default one is seeded by a migration from the reference notes).
This module validates entries and picks a category for a post that arrives without one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shequtong_issues.domain.sla import validate_hours
from shequtong_kit.errors import InvalidArgument

OTHER = "other"
CODE = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
GRID_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    grid_service_code: str
    grid_service_name: str
    response_hours: float
    resolution_hours: float
    keywords: tuple[str, ...] = field(default_factory=tuple)
    active: bool = True
    sort_order: int = 0

    @property
    def dispatchable(self) -> bool:
        return bool(self.grid_service_code)


def validate_category(category: Category) -> Category:
    code = category.code.strip()
    if not CODE.match(code):
        raise InvalidArgument(
            "a category code is 2-48 characters: lower-case letters, digits, underscores", code="category_code_invalid"
        )
    name = category.name.strip()
    if not name or len(name) > 60:
        raise InvalidArgument("a category needs a name (at most 60 characters)", code="category_name_invalid")
    grid = category.grid_service_code.strip()
    if grid and not GRID_CODE.match(grid):
        raise InvalidArgument("the grid service code is not valid", code="grid_service_code_invalid")
    keywords = tuple(dict.fromkeys(k.strip() for k in category.keywords if k.strip()))
    if len(keywords) > 30 or any(len(k) > 30 for k in keywords):
        raise InvalidArgument("at most 30 keywords of at most 30 characters", code="category_keywords_invalid")
    return Category(
        code=code,
        name=name,
        grid_service_code=grid,
        grid_service_name=category.grid_service_name.strip()[:60],
        response_hours=validate_hours(category.response_hours, "response_hours_invalid"),
        resolution_hours=validate_hours(category.resolution_hours, "resolution_hours_invalid"),
        keywords=keywords,
        active=category.active,
        sort_order=category.sort_order,
    )


def find(categories: Iterable[Category], code: str) -> Category | None:
    return next((c for c in categories if c.code == code), None)


def require_active(categories: Sequence[Category], code: str) -> Category:
    found = find(categories, code)
    if found is None or not found.active:
        raise InvalidArgument("no such category in this district's catalogue", code="category_unknown")
    return found


def guess(categories: Sequence[Category], text: str) -> str:
    """The active category whose keywords (or name) occur most in `text`; "other" when none does."""
    best, best_hits = OTHER, 0
    for category in categories:
        if not category.active or category.code == OTHER:
            continue
        hits = sum(1 for word in (category.name, *category.keywords) if word and word in text)
        if hits > best_hits:
            best, best_hits = category.code, hits
    if best == OTHER and find(categories, OTHER) is None:
        active = [c for c in categories if c.active]
        return active[-1].code if active else OTHER
    return best
