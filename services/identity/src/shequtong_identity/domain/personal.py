"""Who may see and change personal data. Pure.

- The full ID number: only to the cadres and secretary of a neighbourhood the person registered with
  (pending, verified, rejected or since left), with a reason; every reveal is audited. Not to operators,
  not to staff above, not to services.
- The audit of reveals: to the staff above the neighbourhood (sub-district, district), operators, and the
  person whose number it is.
- A real name is corrected by the committee of a neighbourhood the person belongs to, or an operator —
  never by the person (it was verified against the ID card).
- Moving house: the member themself or the neighbourhood's committee, for an active membership.
"""

from __future__ import annotations

from shequtong_identity.domain.memberships import ACTIVE
from shequtong_identity.domain.roles import ScopePlace
from shequtong_kit import auth
from shequtong_kit.auth import Principal
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

MAX_REASON = 500


def required_reason(reason: str) -> str:
    cleaned = (reason or "").strip()
    if not cleaned:
        raise InvalidArgument("a reason is required", code="reason_required")
    if len(cleaned) > MAX_REASON:
        raise InvalidArgument(f"a reason has at most {MAX_REASON} characters", code="reason_too_long")
    return cleaned


def ensure_may_reveal(actor: Principal, neighbourhood_id: str, registered_there: bool) -> None:
    if actor.is_service or not actor.is_committee(neighbourhood_id):
        raise PermissionDenied(
            "only the neighbourhood's cadres and secretary may see a full ID number", code="not_committee"
        )
    if not registered_there:
        raise NotFound("nobody with this id registered with this neighbourhood", code="person_not_found")


def ensure_may_list_reveals(actor: Principal, place: ScopePlace | None, person_id: str) -> None:
    """`place` is the region asked about (None: no region, only `person_id`)."""
    if person_id and person_id == actor.subject:
        return
    if place is None:
        raise InvalidArgument("give a region (or your own person id)", code="region_required")
    if actor.is_operator:
        return
    if place.kind in ("n", "s", "d") and actor.has(auth.DISTRICT_STAFF, f"d:{place.district_id}"):
        return
    if place.kind in ("n", "s") and actor.has(auth.SUBDISTRICT_STAFF, f"s:{place.subdistrict_id}"):
        return
    raise PermissionDenied("the audit of reveals is for the staff above the neighbourhood", code="not_staff")


def ensure_may_correct_name(actor: Principal, person_id: str, member_of: set[str]) -> None:
    if actor.subject == person_id:
        raise PermissionDenied(
            "your real name was verified with your ID card; ask your committee to correct it", code="self_update"
        )
    if actor.is_operator:
        return
    if not any(actor.is_committee(n) for n in member_of):
        raise PermissionDenied("only the committee of one of the person's neighbourhoods may", code="not_committee")


def ensure_may_move(actor: Principal, member_person_id: str, neighbourhood_id: str, state: int) -> None:
    if actor.subject != member_person_id and not actor.is_committee(neighbourhood_id):
        raise NotFound("no such membership of yours", code="membership_not_found")
    if state not in ACTIVE:
        raise FailedPrecondition("this membership is not active", code="membership_not_active")
