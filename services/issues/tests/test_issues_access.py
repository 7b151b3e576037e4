"""Who sees what, and who may act."""

from __future__ import annotations

import pytest
from shequtong_issues.domain import access
from shequtong_issues.domain.access import ActorRole, IssueFacts, View
from shequtong_issues.domain.states import Level, Transition

from shequtong_kit.auth import Lineage, Principal, parse_roles
from shequtong_kit.errors import NotFound, PermissionDenied

HOME = Lineage("n1", "s1", "d1")
NEIGHBOUR = Lineage("n2", "s1", "d1")
FAR = Lineage("n9", "s9", "d9")


def who(subject: str, *roles: str) -> Principal:
    return Principal(subject=subject, roles=parse_roles(roles))


def facts(public: bool = True, escalated: bool = False, reporter: str = "alice") -> IssueFacts:
    return IssueFacts("n1", reporter, public, escalated, Level.NEIGHBOURHOOD)


ALICE = who("alice", "resident@n:n1")
BOB = who("bob", "resident@n:n1")
CAROL_CADRE = who("carol", "cadre@n:n1", "resident@n:n1")
OTHER_CADRE = who("dan", "cadre@n:n2")
SUB_STAFF = who("erin", "subdistrict_staff@s:s1")
FAR_SUB_STAFF = who("fay", "subdistrict_staff@s:s9")
DISTRICT = who("gus", "district_staff@d:d1")
FAR_DISTRICT = who("hal", "district_staff@d:d9")
OPERATOR = who("svc:ops", "operator@*")
GRID_GATEWAY = who("svc:grid-gateway", "service@*")
GRID_PLATFORM = who("svc:grid-platform", "grid_platform@*")
STRANGER = who("zed", "resident@n:n9")


@pytest.mark.parametrize(
    ("principal", "issue", "expected"),
    [
        (ALICE, facts(public=False), View.REPORTER),
        (BOB, facts(public=True), View.PUBLIC),
        (BOB, facts(public=False), None),
        (CAROL_CADRE, facts(public=False), View.STAFF),
        (OTHER_CADRE, facts(), None),
        (SUB_STAFF, facts(escalated=False), None),
        (SUB_STAFF, facts(escalated=True, public=False), View.STAFF),
        (FAR_SUB_STAFF, facts(escalated=True), None),
        (DISTRICT, facts(public=False), View.STAFF),
        (FAR_DISTRICT, facts(), None),
        (OPERATOR, facts(public=False), View.STAFF),
        (GRID_GATEWAY, facts(public=False), View.STAFF),
        (GRID_PLATFORM, facts(), None),
        (STRANGER, facts(), None),
    ],
)
def test_views(principal: Principal, issue: IssueFacts, expected: View | None) -> None:
    assert access.view_of(principal, issue, HOME) == expected
    if expected is None:
        with pytest.raises(NotFound) as hidden:
            access.require_view(principal, issue, HOME)
        assert hidden.value.code == "issue_not_found"


def test_handling_levels() -> None:
    access.ensure_may_handle(CAROL_CADRE, HOME, Level.NEIGHBOURHOOD, Transition.ACKNOWLEDGE)
    access.ensure_may_handle(SUB_STAFF, HOME, Level.SUBDISTRICT, Transition.DISPATCH)
    access.ensure_may_handle(DISTRICT, HOME, Level.SUBDISTRICT, Transition.RESOLVE)
    with pytest.raises(PermissionDenied) as low:
        access.ensure_may_handle(CAROL_CADRE, HOME, Level.SUBDISTRICT, Transition.DISPATCH)
    assert low.value.code == "level_not_allowed"
    for principal in (ALICE, OTHER_CADRE, FAR_SUB_STAFF, GRID_GATEWAY):
        with pytest.raises(PermissionDenied):
            access.ensure_may_handle(principal, HOME, Level.NEIGHBOURHOOD, Transition.ACKNOWLEDGE)
    with pytest.raises(PermissionDenied):
        access.ensure_may_handle(SUB_STAFF, HOME, Level.GRID, Transition.RESOLVE)


def test_reporting() -> None:
    assert access.ensure_may_report(ALICE, "n1", HOME, False) == "resident"
    assert access.ensure_may_report(CAROL_CADRE, "n1", HOME, True) == "cadre"
    assert access.ensure_may_report(SUB_STAFF, "n1", HOME, False) == "cadre"
    with pytest.raises(PermissionDenied) as behalf:
        access.ensure_may_report(ALICE, "n1", HOME, True)
    assert behalf.value.code == "not_allowed"
    with pytest.raises(PermissionDenied) as outsider:
        access.ensure_may_report(STRANGER, "n1", HOME, False)
    assert outsider.value.code == "not_a_member"
    for principal in (GRID_GATEWAY, OPERATOR):
        with pytest.raises(PermissionDenied):
            access.ensure_may_report(principal, "n1", HOME, False)


def test_notes() -> None:
    access.ensure_may_note(View.STAFF, True)
    access.ensure_may_note(View.REPORTER, False)
    with pytest.raises(PermissionDenied) as internal:
        access.ensure_may_note(View.REPORTER, True)
    assert internal.value.code == "internal_note_forbidden"
    with pytest.raises(PermissionDenied):
        access.ensure_may_note(View.PUBLIC, False)


def test_configuration_from_above() -> None:
    access.ensure_may_configure_district(DISTRICT, "d1")
    access.ensure_may_configure_district(OPERATOR, "d1")
    for principal in (FAR_DISTRICT, SUB_STAFF, CAROL_CADRE):
        with pytest.raises(PermissionDenied):
            access.ensure_may_configure_district(principal, "d1")
    access.ensure_may_set_target(SUB_STAFF, HOME)
    with pytest.raises(PermissionDenied):
        access.ensure_may_set_target(CAROL_CADRE, HOME)
    with pytest.raises(PermissionDenied):
        access.ensure_may_set_target(FAR_SUB_STAFF, HOME)


def test_statistics() -> None:
    access.ensure_may_see_stats(CAROL_CADRE, HOME)
    access.ensure_may_see_stats(SUB_STAFF, NEIGHBOUR)
    for principal in (ALICE, OTHER_CADRE, FAR_SUB_STAFF, FAR_DISTRICT):
        with pytest.raises(PermissionDenied):
            access.ensure_may_see_stats(principal, HOME)


def test_actor_roles() -> None:
    assert access.actor_role(ALICE, HOME, "alice") == ActorRole.REPORTER
    assert access.actor_role(BOB, HOME, "alice") == ActorRole.RESIDENT
    assert access.actor_role(CAROL_CADRE, HOME, "carol") == ActorRole.COMMITTEE
    assert access.actor_role(SUB_STAFF, HOME, None) == ActorRole.SUBDISTRICT
    assert access.actor_role(OPERATOR, HOME, None) == ActorRole.OPERATOR
