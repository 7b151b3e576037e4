"""Who may see which figures and prompts. Pure: decisions from the principal and the place's lineage.

* A neighbourhood's committee (secretary, cadres) sees its full figures and its prompts.
* Sub-district staff see every neighbourhood of their sub-district and the sub-district's prompts.
* District staff see everything in their district; operators and our own services see everything.
* A member of a neighbourhood (a verified resident, or anyone holding a role there) sees that
  neighbourhood's public figures only, and no prompts.
"""

from __future__ import annotations

from dataclasses import dataclass

from shequtong_kit.auth import DISTRICT_STAFF, OPERATOR, SERVICE, SUBDISTRICT_STAFF, Lineage, Principal
from shequtong_kit.errors import PermissionDenied

PUBLIC = "public"
FULL = "full"


def portrait_visibility(principal: Principal, lineage: Lineage) -> str:
    if principal.oversees(lineage):
        return FULL
    if principal.is_member(lineage.neighbourhood_id):
        return PUBLIC
    raise PermissionDenied("you may only see the figures of your own neighbourhood", code="portrait_forbidden")


def _everything(principal: Principal) -> bool:
    return principal.has(OPERATOR) or principal.has(SERVICE)


def ensure_may_compare(principal: Principal, district_id: str, subdistrict_id: str, subdistrict_district: str) -> None:
    """District scope: the district's staff. Sub-district scope: its staff or its district's staff."""
    if _everything(principal):
        return
    if district_id and principal.has(DISTRICT_STAFF, f"d:{district_id}"):
        return
    if subdistrict_id and (
        principal.has(SUBDISTRICT_STAFF, f"s:{subdistrict_id}")
        or (subdistrict_district and principal.has(DISTRICT_STAFF, f"d:{subdistrict_district}"))
    ):
        return
    raise PermissionDenied("comparisons are for the staff of the sub-district or district", code="comparison_forbidden")


def ensure_may_export_scope(
    principal: Principal, lineage: Lineage | None, district_id: str, subdistrict_id: str
) -> None:
    """A neighbourhood's export: whoever oversees it. Wider scopes: as comparisons."""
    if lineage is not None:
        if not principal.oversees(lineage):
            raise PermissionDenied("you may not export this neighbourhood's figures", code="export_forbidden")
        return
    ensure_may_compare(principal, district_id, subdistrict_id, "")


@dataclass(frozen=True)
class PromptScope:
    """What prompts a principal may see: all, or those of these places."""

    everything: bool
    neighbourhoods: frozenset[str]  # as committee: neighbourhood-level prompts there
    subdistricts: frozenset[str]  # as staff: every prompt in the sub-district
    districts: frozenset[str]  # as staff: every prompt in the district

    @property
    def empty(self) -> bool:
        return not (self.everything or self.neighbourhoods or self.subdistricts or self.districts)


def prompt_scope(principal: Principal) -> PromptScope:
    return PromptScope(
        everything=_everything(principal),
        neighbourhoods=frozenset(principal.neighbourhoods("cadre", "secretary")),
        subdistricts=frozenset(s[2:] for s in principal.scopes_of(SUBDISTRICT_STAFF) if s.startswith("s:")),
        districts=frozenset(s[2:] for s in principal.scopes_of(DISTRICT_STAFF) if s.startswith("d:")),
    )


def may_handle_prompt(
    principal: Principal, level: str, neighbourhood_id: str, subdistrict_id: str, district_id: str
) -> bool:
    scope = prompt_scope(principal)
    return (
        scope.everything
        or (level == "neighbourhood" and neighbourhood_id in scope.neighbourhoods)
        or subdistrict_id in scope.subdistricts
        or district_id in scope.districts
    )


def ensure_may_run_detection(principal: Principal) -> None:
    if not _everything(principal):
        raise PermissionDenied("only operators run detection on demand", code="operator_required")


def ensure_operator(principal: Principal) -> None:
    if not principal.has(OPERATOR):
        raise PermissionDenied("only operators may rebuild the projections", code="operator_required")
