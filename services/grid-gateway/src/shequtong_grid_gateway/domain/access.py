"""Who may look at and act on grid tickets: platform operators everywhere, district staff in
their own districts, our own services read-only. Pure."""

from __future__ import annotations

from shequtong_kit.auth import DISTRICT_STAFF, SERVICE, Principal
from shequtong_kit.errors import NotFound, PermissionDenied


def staff_districts(principal: Principal) -> set[str]:
    return {scope[2:] for scope in principal.scopes_of(DISTRICT_STAFF) if scope.startswith("d:")}


def visible_districts(principal: Principal) -> set[str] | None:
    """The districts whose tickets the principal may read; None means every district."""
    if principal.is_operator or principal.has(SERVICE, "*"):
        return None
    districts = staff_districts(principal)
    if not districts:
        raise PermissionDenied("grid tickets are for operators and district staff", code="grid_staff_only")
    return districts


def ensure_may_view(principal: Principal, district_id: str | None) -> None:
    """Staff of another district learn nothing, not even that the ticket exists."""
    allowed = visible_districts(principal)
    if allowed is None:
        return
    if not district_id or district_id not in allowed:
        raise NotFound("no such ticket", code="ticket_not_found")


def ensure_may_act(principal: Principal, district_id: str | None) -> None:
    """Changing a ticket (retry) is for people: operators, or staff of its district."""
    if principal.is_operator:
        return
    if principal.is_service or not staff_districts(principal):
        raise PermissionDenied("only operators and district staff may retry tickets", code="grid_staff_only")
    if not district_id or district_id not in staff_districts(principal):
        raise NotFound("no such ticket", code="ticket_not_found")


def ensure_may_filter_district(principal: Principal, district_id: str) -> set[str] | None:
    """The district filter a list runs with (None: all); a district outside one's own is refused."""
    allowed = visible_districts(principal)
    if not district_id:
        return allowed
    if allowed is not None and district_id not in allowed:
        raise PermissionDenied("not a district you oversee", code="not_your_district")
    return {district_id}


def ensure_operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise PermissionDenied("only platform operators may do this", code="operator_only")
