"""Volunteer rules: applications, the record's life, and who may decide, remove or see."""

from __future__ import annotations

import pytest
from shequtong_volunteers.domain import text
from shequtong_volunteers.domain import volunteers as rules

from shequtong_kit.auth import Lineage, Principal, parse_roles
from shequtong_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, PermissionDenied

HOME = Lineage("n1", "s1", "d1")


def person(*roles: str, subject: str = "p1") -> Principal:
    return Principal(subject=subject, roles=parse_roles(roles))


def test_an_application_keeps_distinct_trimmed_skills() -> None:
    app = rules.validate_application(["  理发 ", "理发", "First  Aid", "first aid", ""], " 周末 ", "")
    assert app.skills == ["理发", "First Aid"]
    assert app.availability == "周末"


def test_too_many_or_too_long_skills_are_refused() -> None:
    with pytest.raises(InvalidArgument) as err:
        rules.validate_application([f"s{i}" for i in range(21)], "", "")
    assert err.value.code == "skills_invalid"
    with pytest.raises(InvalidArgument):
        rules.validate_application(["x" * 41], "", "")
    with pytest.raises(InvalidArgument) as err:
        rules.validate_application([], "x" * 201, "")
    assert err.value.code == "availability_invalid"


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (rules.PENDING, rules.APPROVED, True),
        (rules.PENDING, rules.REJECTED, True),
        (rules.PENDING, rules.LEFT, True),
        (rules.APPROVED, rules.LEFT, True),
        (rules.APPROVED, rules.REMOVED, True),
        (rules.APPROVED, rules.APPROVED, False),
        (rules.REJECTED, rules.APPROVED, False),
        (rules.PENDING, rules.REMOVED, False),
        (rules.LEFT, rules.LEFT, False),
    ],
)
def test_transitions(current: str, target: str, allowed: bool) -> None:
    if allowed:
        rules.ensure_transition(current, target)
    else:
        with pytest.raises(FailedPrecondition):
            rules.ensure_transition(current, target)


def test_one_active_record_per_team() -> None:
    rules.ensure_not_already(None)
    with pytest.raises(AlreadyExists) as err:
        rules.ensure_not_already(rules.PENDING)
    assert err.value.code == "already_applied"
    with pytest.raises(AlreadyExists) as err:
        rules.ensure_not_already(rules.APPROVED)
    assert err.value.code == "already_a_volunteer"


def test_only_verified_residents_apply() -> None:
    assert rules.ensure_may_apply(person("resident@n:n1"), "n1") == "p1"
    with pytest.raises(PermissionDenied) as err:
        rules.ensure_may_apply(person("resident@n:n2"), "n1")
    assert err.value.code == "not_a_resident"
    with pytest.raises(PermissionDenied) as err:
        rules.ensure_may_apply(Principal(subject="svc:ops", roles=parse_roles(["operator@*"])), "n1")
    assert err.value.code == "person_required"


def test_the_committee_decides_not_residents_nor_other_neighbourhoods() -> None:
    rules.ensure_may_decide(person("cadre@n:n1"), HOME)
    rules.ensure_may_decide(person("secretary@n:n1"), HOME)
    rules.ensure_may_decide(person("district_staff@d:d1"), HOME)
    for roles in (("resident@n:n1",), ("cadre@n:n2",), ("volunteer@n:n1",)):
        with pytest.raises(PermissionDenied) as err:
            rules.ensure_may_decide(person(*roles), HOME)
        assert err.value.code == "not_committee"


def test_a_leader_removes_others_but_not_themselves() -> None:
    rules.ensure_may_remove(person("resident@n:n1"), HOME, True, "p2")
    rules.ensure_may_remove(person("cadre@n:n1"), HOME, False, "p1")
    with pytest.raises(PermissionDenied):
        rules.ensure_may_remove(person("resident@n:n1"), HOME, True, "p1")
    with pytest.raises(PermissionDenied):
        rules.ensure_may_remove(person("resident@n:n1"), HOME, False, "p2")


def test_only_the_volunteer_leaves() -> None:
    rules.ensure_may_leave(person(), "p1")
    with pytest.raises(PermissionDenied) as err:
        rules.ensure_may_leave(person("cadre@n:n1"), "p2")
    assert err.value.code == "not_your_record"


def test_roster_visibility() -> None:
    assert rules.ensure_may_see_team_roster(person("cadre@n:n1"), HOME, False, False) is True
    assert rules.ensure_may_see_team_roster(person("resident@n:n1"), HOME, True, True) is True
    assert rules.ensure_may_see_team_roster(person("resident@n:n1"), HOME, False, True) is False
    with pytest.raises(PermissionDenied) as err:
        rules.ensure_may_see_team_roster(person("resident@n:n1"), HOME, False, False)
    assert err.value.code == "not_team_member"


def test_text_helpers() -> None:
    assert text.ids([" a ", "b", "a"], "ids") == ["a", "b"]
    with pytest.raises(InvalidArgument):
        text.ids(["a", " "], "ids")
    assert text.required("  x ", "name", 3) == "x"
    with pytest.raises(InvalidArgument) as err:
        text.required("abcd", "name", 3)
    assert err.value.code == "name_invalid"
