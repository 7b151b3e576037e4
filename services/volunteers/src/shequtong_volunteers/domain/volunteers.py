"""Volunteer teams and applications: states, transitions, validation, and who may do what."""

from __future__ import annotations

from dataclasses import dataclass

from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.errors import AlreadyExists, FailedPrecondition, PermissionDenied
from shequtong_volunteers.domain import text

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
LEFT = "left"
REMOVED = "removed"

STATES = (PENDING, APPROVED, REJECTED, LEFT, REMOVED)
ACTIVE = frozenset({PENDING, APPROVED})

DEFAULT_TEAM_NAME = "志愿服务队"
DEFAULT_TEAM_DESCRIPTION = "The neighbourhood's volunteer team (志愿服务队)."

# target state -> states it may be reached from
_FROM = {
    APPROVED: {PENDING},
    REJECTED: {PENDING},
    LEFT: {PENDING, APPROVED},
    REMOVED: {APPROVED},
}


@dataclass(frozen=True)
class Application:
    skills: list[str]
    availability: str
    motivation: str


def validate_application(skills: list[str], availability: str, motivation: str) -> Application:
    return Application(
        skills=text.tags(skills, "skills"),
        availability=text.optional(availability, "availability", 200),
        motivation=text.optional(motivation, "motivation", 1000),
    )


def validate_team(name: str, description: str) -> tuple[str, str]:
    return text.required(name, "name", 100, code="team_name_invalid"), text.optional(description, "description", 1000)


def ensure_transition(current: str, target: str) -> None:
    if current not in _FROM.get(target, set()):
        raise FailedPrecondition(
            f"a {current} volunteer cannot become {target}", code=f"volunteer_not_{_expected(target)}", state=current
        )


def _expected(target: str) -> str:
    return "pending" if target in (APPROVED, REJECTED) else "active" if target == LEFT else "approved"


def reason_required(reason: str) -> str:
    return text.required(reason, "reason", 500, code="reason_required")


def ensure_not_already(existing_state: str | None) -> None:
    """A person has at most one pending or approved record per team."""
    if existing_state == PENDING:
        raise AlreadyExists("you have already applied to this team", code="already_applied")
    if existing_state == APPROVED:
        raise AlreadyExists("you are already a volunteer of this team", code="already_a_volunteer")


# --- who may do what --------------------------------------------------------------------------------------


def ensure_may_apply(principal: Principal, neighbourhood_id: str) -> str:
    person = principal.person_id
    if not principal.is_resident(neighbourhood_id):
        raise PermissionDenied("only verified residents of the neighbourhood may apply", code="not_a_resident")
    return person


def ensure_may_decide(principal: Principal, lineage: Lineage) -> str:
    """Approving, rejecting, creating teams and naming leaders: the committee and staff above it."""
    if not principal.oversees(lineage):
        raise PermissionDenied("only the neighbourhood's committee decides this", code="not_committee")
    return principal.subject


def ensure_may_remove(principal: Principal, lineage: Lineage, caller_leads_team: bool, target_person: str) -> str:
    if principal.oversees(lineage):
        return principal.subject
    if caller_leads_team and principal.subject != target_person:
        return principal.subject
    raise PermissionDenied("only the committee or the team's leaders may remove a volunteer", code="not_committee")


def ensure_may_leave(principal: Principal, person_id: str) -> str:
    if principal.subject != person_id:
        raise PermissionDenied("only the volunteer may leave; the committee removes", code="not_your_record")
    return person_id


def ensure_may_see_team_roster(
    principal: Principal, lineage: Lineage, caller_leads: bool, caller_in_team: bool
) -> bool:
    """True: every state is visible; False: only approved members (fellow volunteers)."""
    if principal.oversees(lineage) or caller_leads:
        return True
    if caller_in_team:
        return False
    raise PermissionDenied("the team's roster is for its members and the committee", code="not_team_member")


def ensure_may_see_neighbourhood(principal: Principal, lineage: Lineage) -> None:
    if not (principal.is_member(lineage.neighbourhood_id) or principal.oversees(lineage)):
        raise PermissionDenied("not a member of this neighbourhood", code="not_a_member")
