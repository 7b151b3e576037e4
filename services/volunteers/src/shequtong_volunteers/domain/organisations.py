"""Social organisations (社会组织) and their storefronts, offerings and slots: validation and permissions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shequtong_kit.auth import DISTRICT_STAFF, ORG_ADMIN, Lineage, Principal
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from shequtong_volunteers.domain import text

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"

OPEN = "open"
CLOSED = "closed"

# 统一社会信用代码 (GB 32100-2015): 18 characters over this alphabet, the last one a check character.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

MAX_PRICE_CENTS = 100_000_000
MAX_SLOT_CAPACITY = 1000
MAX_SLOT_LENGTH = timedelta(days=1)


def credit_code_check_char(first17: str) -> str:
    total = sum(CREDIT_CODE_ALPHABET.index(c) * w for c, w in zip(first17, CREDIT_CODE_WEIGHTS, strict=True))
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def normalise_credit_code(code: str) -> str:
    cleaned = code.strip().upper()
    if len(cleaned) != 18 or any(c not in CREDIT_CODE_ALPHABET for c in cleaned):
        raise InvalidArgument("a unified social credit code has 18 characters", code="credit_code_invalid")
    if credit_code_check_char(cleaned[:17]) != cleaned[17]:
        raise InvalidArgument("the credit code's check character is wrong", code="credit_code_invalid")
    return cleaned


@dataclass(frozen=True)
class Registration:
    name: str
    credit_code: str
    description: str


def validate_registration(name: str, credit_code: str, description: str) -> Registration:
    return Registration(
        name=text.required(name, "name", 200, code="organisation_name_invalid"),
        credit_code=normalise_credit_code(credit_code),
        description=text.optional(description, "description", 2000),
    )


def ensure_may_decide(principal: Principal, district_id: str) -> str:
    if not (principal.has(DISTRICT_STAFF, f"d:{district_id}") or principal.is_operator):
        raise PermissionDenied("only the district's staff approve social organisations", code="not_district_staff")
    return principal.subject


def ensure_pending(state: str) -> None:
    if state != PENDING:
        raise FailedPrecondition(f"the organisation is already {state}", code="organisation_not_pending", state=state)


def is_admin(principal: Principal, organisation_id: str, admin_ids: set[str]) -> bool:
    """Whoever registered it (kept here), or anyone identity made org_admin@o:<organisation>."""
    return principal.has(ORG_ADMIN, f"o:{organisation_id}") or principal.subject in admin_ids


def ensure_admin(principal: Principal, organisation_id: str, admin_ids: set[str]) -> str:
    if not is_admin(principal, organisation_id, admin_ids):
        raise PermissionDenied("only the organisation's administrators may do this", code="not_org_admin")
    return principal.subject


def ensure_approved(state: str) -> None:
    if state != APPROVED:
        raise FailedPrecondition(
            "the organisation must be approved by the district first", code="organisation_not_approved", state=state
        )


def may_see_unapproved(principal: Principal, district_id: str, is_org_admin: bool) -> bool:
    return is_org_admin or principal.has(DISTRICT_STAFF, f"d:{district_id}") or principal.is_operator


# --- storefronts, offerings, slots ------------------------------------------------------------------------


@dataclass(frozen=True)
class StorefrontDraft:
    name: str
    description: str
    address: str


def validate_storefront(name: str, description: str, address: str) -> StorefrontDraft:
    return StorefrontDraft(
        name=text.required(name, "name", 200, code="storefront_name_invalid"),
        description=text.optional(description, "description", 2000),
        address=text.optional(address, "address", 300),
    )


def served_neighbourhoods(district_id: str, requested: list[Lineage]) -> list[str]:
    if not requested:
        raise InvalidArgument("choose the neighbourhoods the storefront serves", code="neighbourhoods_required")
    for lineage in requested:
        if lineage.district_id != district_id:
            raise InvalidArgument(
                "a storefront serves neighbourhoods of its organisation's district",
                code="neighbourhood_outside_district",
            )
    return [lineage.neighbourhood_id for lineage in requested]


def ensure_storefront_open(state: str) -> None:
    if state != OPEN:
        raise FailedPrecondition("the storefront is closed", code="storefront_closed")


@dataclass(frozen=True)
class OfferingDraft:
    title: str
    description: str
    category: str
    price_cents: int
    neighbourhood_ids: list[str]
    eligibility_note: str


def validate_offering(
    title: str,
    description: str,
    category: str,
    price_cents: int,
    neighbourhood_ids: list[str],
    eligibility_note: str,
    served: list[str],
) -> OfferingDraft:
    if not 0 <= price_cents <= MAX_PRICE_CENTS:
        raise InvalidArgument("price_cents is 0 (free) or a positive amount", code="price_invalid")
    chosen = text.ids(neighbourhood_ids, "neighbourhood_ids")
    outside = [n for n in chosen if n not in served]
    if outside:
        raise InvalidArgument(
            "an offering may only be limited to neighbourhoods its storefront serves", code="neighbourhood_not_served"
        )
    return OfferingDraft(
        title=text.required(title, "title", 200),
        description=text.optional(description, "description", 2000),
        category=text.optional(category, "category", 64),
        price_cents=price_cents,
        neighbourhood_ids=chosen,
        eligibility_note=text.optional(eligibility_note, "eligibility_note", 500),
    )


def eligible_neighbourhoods(offering_neighbourhoods: list[str], served: list[str]) -> list[str]:
    return [n for n in served if n in offering_neighbourhoods] if offering_neighbourhoods else list(served)


def validate_slot(starts_at: datetime | None, ends_at: datetime | None, capacity: int, now: datetime) -> None:
    if starts_at is None or ends_at is None or ends_at <= starts_at:
        raise InvalidArgument("a slot has a start and a later end", code="slot_time_invalid")
    if ends_at - starts_at > MAX_SLOT_LENGTH:
        raise InvalidArgument("a slot lasts at most one day", code="slot_time_invalid")
    if starts_at <= now:
        raise InvalidArgument("slots are offered before they start", code="slot_in_past")
    if not 1 <= capacity <= MAX_SLOT_CAPACITY:
        raise InvalidArgument(f"capacity is between 1 and {MAX_SLOT_CAPACITY}", code="capacity_invalid")
