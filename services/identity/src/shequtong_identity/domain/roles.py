"""Scoped roles and who may grant or revoke them. Pure: the caller resolves where a scope sits.

Hierarchy:
- an operator grants anything;
- district staff grant secretary, cadre, party member and responders in neighbourhoods of their district,
  and sub-district staff for sub-districts of their district;
- sub-district staff grant secretary, cadre, party member and responders in their sub-district;
- a secretary grants cadre, party member and responders in their own neighbourhood;
- a cadre confirms party members in their own neighbourhood;
- nobody grants to (or revokes from) themselves. Revoking follows the same rule as granting.
"""

from __future__ import annotations

from dataclasses import dataclass

from shequtong_kit import auth
from shequtong_kit.auth import Principal
from shequtong_kit.errors import InvalidArgument, PermissionDenied

NEIGHBOURHOOD_ROLES = frozenset({auth.PARTY_MEMBER, auth.VOLUNTEER, auth.CADRE, auth.SECRETARY} | auth.RESPONDER_ROLES)
SCOPE_KIND = {
    **dict.fromkeys(NEIGHBOURHOOD_ROLES, "n"),
    auth.SUBDISTRICT_STAFF: "s",
    auth.DISTRICT_STAFF: "d",
    auth.ORG_ADMIN: "o",
    auth.OPERATOR: "*",
}
GRANTABLE = frozenset(SCOPE_KIND)

BY_DISTRICT_STAFF = frozenset({auth.SECRETARY, auth.CADRE, auth.PARTY_MEMBER, auth.SUBDISTRICT_STAFF}) | (
    auth.RESPONDER_ROLES
)
BY_SUBDISTRICT_STAFF = frozenset({auth.SECRETARY, auth.CADRE, auth.PARTY_MEMBER}) | auth.RESPONDER_ROLES
BY_SECRETARY = frozenset({auth.CADRE, auth.PARTY_MEMBER}) | auth.RESPONDER_ROLES
BY_CADRE = frozenset({auth.PARTY_MEMBER})


@dataclass(frozen=True)
class ScopePlace:
    """Where a scope sits in the region tree (ids empty where not applicable)."""

    kind: str  # "n", "s", "d", "o" or "*"
    id: str = ""
    subdistrict_id: str = ""
    district_id: str = ""


def parse_scope(role: str, scope: str) -> tuple[str, str]:
    """Checks the role is grantable and its scope has the right kind; returns (kind, id)."""
    if role not in GRANTABLE:
        raise InvalidArgument("this role cannot be granted", code="role_not_grantable")
    expected = SCOPE_KIND[role]
    if expected == "*":
        if scope != "*":
            raise InvalidArgument("this role has the scope *", code="scope_invalid")
        return "*", ""
    kind, sep, ident = scope.partition(":")
    if kind != expected or not sep or not ident or len(ident) > 64:
        raise InvalidArgument(f"this role needs a scope of the form {expected}:<id>", code="scope_invalid")
    return kind, ident


def ensure_may_grant(actor: Principal, target_person_id: str, role: str, place: ScopePlace) -> None:
    """Raises PermissionDenied unless `actor` may grant (or revoke) `role` at `place` to `target_person_id`."""
    if actor.subject == target_person_id:
        raise PermissionDenied("nobody grants or revokes their own roles", code="self_grant")
    if actor.is_operator:
        return
    if place.kind == "n":
        if role in BY_DISTRICT_STAFF and actor.has(auth.DISTRICT_STAFF, f"d:{place.district_id}"):
            return
        if role in BY_SUBDISTRICT_STAFF and actor.has(auth.SUBDISTRICT_STAFF, f"s:{place.subdistrict_id}"):
            return
        if role in BY_SECRETARY and actor.has(auth.SECRETARY, f"n:{place.id}"):
            return
        if role in BY_CADRE and actor.has(auth.CADRE, f"n:{place.id}"):
            return
    if (
        place.kind == "s"
        and role == auth.SUBDISTRICT_STAFF
        and actor.has(auth.DISTRICT_STAFF, f"d:{place.district_id}")
    ):
        return
    raise PermissionDenied("you may not grant or revoke this role here", code="grant_not_allowed")
