"""Who sees what of an issue and who may act on it. Pure: the principal, the issue's facts, its lineage.

- the reporter sees their own issue in full (public timeline entries);
- residents (members) of the same neighbourhood see public issues, reporters masked;
- the neighbourhood's committee sees all of its neighbourhood's issues (internal notes too);
- sub-district staff see the issues escalated to them, and their neighbourhoods' statistics;
- district staff and operators see their district / everything; our own services read everything;
- nobody sees another district's issues.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from shequtong_issues.domain.states import Level, Transition
from shequtong_kit.auth import DISTRICT_STAFF, SERVICE, SUBDISTRICT_STAFF, Lineage, Principal
from shequtong_kit.errors import NotFound, PermissionDenied


class View(IntEnum):
    """How much of an issue a viewer gets (ordered: more is more)."""

    PUBLIC = 1  # masked: no reporter, no household, no internal entries
    REPORTER = 2  # everything of their own issue except internal entries
    STAFF = 3  # everything


class ActorRole(StrEnum):
    REPORTER = "reporter"
    RESIDENT = "resident"
    COMMITTEE = "committee"
    SUBDISTRICT = "subdistrict"
    DISTRICT = "district"
    OPERATOR = "operator"
    SERVICE = "service"
    GRID = "grid"
    SYSTEM = "system"


RANK = {Level.NEIGHBOURHOOD: 1, Level.SUBDISTRICT: 2}
STAFF_RANK = {"neighbourhood": 1, "subdistrict": 2, "district": 3}


@dataclass(frozen=True)
class IssueFacts:
    neighbourhood_id: str
    reporter_id: str | None
    public: bool
    escalated: bool
    level: Level


def is_our_service(principal: Principal) -> bool:
    return principal.is_service and principal.has(SERVICE, "*")


def view_of(principal: Principal, issue: IssueFacts, lineage: Lineage) -> View | None:
    """The view `principal` gets of `issue`, or None when it must not know the issue exists."""
    if principal.is_operator or is_our_service(principal):
        return View.STAFF
    if principal.has(DISTRICT_STAFF, f"d:{lineage.district_id}"):
        return View.STAFF
    if principal.is_committee(issue.neighbourhood_id):
        return View.STAFF
    if issue.escalated and principal.has(SUBDISTRICT_STAFF, f"s:{lineage.subdistrict_id}"):
        return View.STAFF
    if issue.reporter_id and principal.subject == issue.reporter_id:
        return View.REPORTER
    if issue.public and principal.is_member(issue.neighbourhood_id):
        return View.PUBLIC
    return None


def require_view(principal: Principal, issue: IssueFacts, lineage: Lineage) -> View:
    view = view_of(principal, issue, lineage)
    if view is None:
        # Not "forbidden": someone outside must not learn that the issue exists.
        raise NotFound("no such issue", code="issue_not_found")
    return view


def staff_rank(principal: Principal, lineage: Lineage) -> int:
    if principal.is_operator:
        return STAFF_RANK["district"]
    scope = principal.staff_scope_of(lineage)
    return STAFF_RANK.get(scope or "", 0)


def actor_role(principal: Principal, lineage: Lineage, reporter_id: str | None) -> ActorRole:
    if principal.is_operator:
        return ActorRole.OPERATOR
    if principal.is_service:
        return ActorRole.SERVICE
    scope = principal.staff_scope_of(lineage)
    if scope == "neighbourhood":
        return ActorRole.COMMITTEE
    if scope == "subdistrict":
        return ActorRole.SUBDISTRICT
    if scope == "district":
        return ActorRole.DISTRICT
    if reporter_id and principal.subject == reporter_id:
        return ActorRole.REPORTER
    return ActorRole.RESIDENT


def ensure_may_handle(principal: Principal, lineage: Lineage, level: Level, transition: Transition) -> None:
    """Staff at the level now responsible, or above it, handle the issue; the grid level takes no staff steps."""
    if principal.is_service:
        raise PermissionDenied("services do not handle issues by hand", code="not_allowed")
    rank = staff_rank(principal, lineage)
    if rank == 0:
        raise PermissionDenied("only the committee or staff above it handle issues", code="not_allowed")
    needed = RANK.get(level)
    if needed is None:
        raise PermissionDenied("the grid platform is handling this issue", code="not_allowed")
    if rank < needed:
        raise PermissionDenied(
            f"the issue sits at the {level.value} level; {transition.value} is for its staff",
            code="level_not_allowed",
        )


def ensure_may_report(principal: Principal, neighbourhood_id: str, lineage: Lineage, on_behalf: bool) -> str:
    """Returns the source of the report: "resident" (a member) or "cadre" (committee or staff above)."""
    if principal.is_service:
        raise PermissionDenied("a person reports issues", code="person_required")
    if staff_rank(principal, lineage) > 0 and not principal.is_operator:
        return "cadre"
    if on_behalf:
        raise PermissionDenied("only cadres report on someone's behalf", code="not_allowed")
    if principal.is_member(neighbourhood_id):
        return "resident"
    if principal.is_operator:
        raise PermissionDenied("operators do not report issues", code="person_required")
    raise PermissionDenied("only residents of the neighbourhood report its issues", code="not_a_member")


def ensure_may_note(view: View, internal: bool) -> None:
    if view == View.STAFF:
        return
    if view == View.REPORTER:
        if internal:
            raise PermissionDenied("internal notes are for staff", code="internal_note_forbidden")
        return
    raise PermissionDenied("only the reporter and staff add to an issue", code="not_allowed")


def ensure_may_configure_district(principal: Principal, district_id: str) -> None:
    if principal.is_operator or principal.has(DISTRICT_STAFF, f"d:{district_id}"):
        return
    raise PermissionDenied("only the district's staff manage its issue categories", code="not_allowed")


def ensure_may_set_target(principal: Principal, lineage: Lineage) -> None:
    """Targets are set from above: a neighbourhood does not relax its own clock."""
    if staff_rank(principal, lineage) >= STAFF_RANK["subdistrict"]:
        return
    raise PermissionDenied("sub-district or district staff set a neighbourhood's targets", code="not_allowed")


def ensure_may_see_stats(principal: Principal, lineage: Lineage) -> None:
    if principal.is_committee(lineage.neighbourhood_id) or staff_rank(principal, lineage) > 0:
        return
    if is_our_service(principal):
        return
    raise PermissionDenied("statistics are for the committee and staff above it", code="not_allowed")
