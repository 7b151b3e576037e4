"""Board policies and the catalogue (pure)."""

from __future__ import annotations

import pytest
from shequtong_boards.domain import catalogue
from shequtong_boards.domain.policy import (
    ANYONE,
    COMMITTEE,
    DISTRICT_STAFF,
    MEMBER,
    RESIDENT,
    SECRETARY,
    STAFF,
    Policy,
    district_audiences,
    neighbourhood_audiences,
    permissions,
    validate_policy,
)

from shequtong_kit.auth import Lineage, Principal, parse_roles
from shequtong_kit.errors import InvalidArgument

HOME = Lineage("n1", "s1", "d1")
ELSEWHERE = Lineage("n2", "s2", "d2")


def who(*roles: str, subject: str = "p1") -> Principal:
    return Principal(subject=subject, roles=parse_roles(roles))


def perms(kind: str, principal: Principal, lineage: Lineage = HOME) -> object:
    return permissions(catalogue.DEFAULTS[kind].policy, neighbourhood_audiences(principal, lineage))


def test_audiences_follow_token_roles_in_that_neighbourhood_only() -> None:
    resident = who("resident@n:n1", "party_member@n:n1")
    assert neighbourhood_audiences(resident, HOME) == {ANYONE, MEMBER, RESIDENT, "party_member"}
    assert neighbourhood_audiences(resident, ELSEWHERE) == {ANYONE}
    secretary = who("secretary@n:n1")
    assert {COMMITTEE, SECRETARY, MEMBER} <= neighbourhood_audiences(secretary, HOME)
    assert STAFF in neighbourhood_audiences(who("subdistrict_staff@s:s1"), HOME)
    assert STAFF not in neighbourhood_audiences(who("subdistrict_staff@s:s9"), HOME)
    assert {STAFF, DISTRICT_STAFF} <= neighbourhood_audiences(who("district_staff@d:d1"), HOME)
    assert {STAFF, DISTRICT_STAFF} <= neighbourhood_audiences(Principal("svc:ops", parse_roles(["operator@*"])), HOME)


def test_resident_cannot_post_announcements_or_party_building_but_comments() -> None:
    resident = who("resident@n:n1")
    for kind in ("announcements", "party_building"):
        allowed = perms(kind, resident)
        assert allowed.can_read and not allowed.can_post and allowed.can_comment and not allowed.can_moderate
    assert perms("neighbourhood_matters", resident).can_post


def test_party_building_is_the_secretary_alone() -> None:
    assert perms("party_building", who("secretary@n:n1")).can_post
    assert perms("party_building", who("secretary@n:n1")).can_moderate
    cadre = perms("party_building", who("cadre@n:n1"))
    assert not cadre.can_post and not cadre.can_moderate
    staff = perms("party_building", who("district_staff@d:d1"))
    assert staff.can_read and not staff.can_post and not staff.can_moderate


def test_outsiders_read_nothing_of_a_neighbourhood() -> None:
    outsider = who("resident@n:n2", "cadre@n:n2")
    for kind in catalogue.DEFAULTS:
        if catalogue.DEFAULTS[kind].scope == catalogue.NEIGHBOURHOOD:
            assert not perms(kind, outsider).can_read, kind


def test_responders_answer_on_their_own_window_only() -> None:
    police = who("police@n:n1")
    assert perms("police_line", police).can_answer
    assert not perms("family_doctor", police).can_answer
    assert perms("family_doctor", who("doctor@n:n1")).can_answer
    assert not perms("police_line", who("resident@n:n1")).can_answer


def test_acting_requires_reading() -> None:
    policy = Policy.of(read=[COMMITTEE], post=[ANYONE], comment=[ANYONE], moderate=[COMMITTEE])
    outsider = permissions(policy, frozenset({ANYONE, MEMBER}))
    assert not outsider.can_read and not outsider.can_post and not outsider.can_comment


def test_policy_validation_refuses_unknown_and_too_broad_offices() -> None:
    with pytest.raises(InvalidArgument) as unknown:
        validate_policy({"read": ["member", "everyone"], "moderate": ["committee"]})
    assert unknown.value.code == "policy_audience_unknown"
    with pytest.raises(InvalidArgument) as broad:
        validate_policy({"read": ["member"], "moderate": ["resident"]})
    assert broad.value.code == "policy_office_too_broad"
    with pytest.raises(InvalidArgument) as empty:
        validate_policy({"read": [], "moderate": ["committee"]})
    assert empty.value.code == "policy_read_empty"
    ok = validate_policy({"read": ["anyone"], "post": ["resident"], "moderate": ["committee", "staff"]})
    assert ok.read == {ANYONE} and ok.answer == frozenset()


def test_policy_round_trips_through_storage() -> None:
    policy = catalogue.DEFAULTS["police_line"].policy
    assert Policy.from_dict(policy.to_dict()) == policy


def test_district_audiences_count_membership_anywhere_in_the_district() -> None:
    resident = who("resident@n:n1")
    assert RESIDENT in district_audiences(resident, "d1", [HOME])
    assert district_audiences(resident, "d2", [HOME]) == {ANYONE}
    cadre = who("cadre@n:n1")
    assert DISTRICT_STAFF not in district_audiences(cadre, "d1", [HOME])
    assert DISTRICT_STAFF in district_audiences(who("district_staff@d:d1"), "d1", [])
    assert STAFF in district_audiences(who("subdistrict_staff@s:s1"), "d1", [], ["s1"])
    assert STAFF not in district_audiences(who("subdistrict_staff@s:s1"), "d1", [], ["s7"])


def test_catalogue_has_the_ten_neighbourhood_boards_and_district_boards() -> None:
    kinds = catalogue.neighbourhood_kinds(catalogue.DEFAULT_CATALOGUE)
    assert [k.name for k in kinds] == [
        "社区公告",
        "党建园地",
        "议事厅",
        "居务公开",
        "物业之窗",
        "业委连线",
        "警民直通车",
        "家庭医生",
        "公共法律服务",
        "身边事",
    ]
    district = [k for k in catalogue.DEFAULT_CATALOGUE if k.scope == catalogue.DISTRICT]
    assert {k.key for k in district} == {"district_survey", "district_news"}
    assert all(k.policy.post == {DISTRICT_STAFF} for k in district)


def test_district_overrides_change_and_extend_the_catalogue() -> None:
    strict = Policy.of(read=[MEMBER], post=[COMMITTEE], moderate=[COMMITTEE])
    overrides = {
        "neighbourhood_matters": catalogue.BoardKind("neighbourhood_matters", "身边事儿", policy=strict, position=100),
        "waste_sorting": catalogue.BoardKind("waste_sorting", "垃圾分类", policy=strict, position=150),
    }
    merged = {k.key: k for k in catalogue.effective_catalogue(overrides)}
    assert merged["neighbourhood_matters"].name == "身边事儿"
    assert merged["waste_sorting"].policy == strict
    assert merged["announcements"] == catalogue.DEFAULTS["announcements"]
    assert catalogue.effective_entry("waste_sorting", overrides) is overrides["waste_sorting"]
    assert catalogue.effective_entry("nope", overrides) is None


def test_catalogue_entries_are_validated() -> None:
    policy = Policy.of(read=[MEMBER], moderate=[COMMITTEE])
    with pytest.raises(InvalidArgument) as bad_key:
        catalogue.validate_entry("Waste Sorting", "垃圾分类", "neighbourhood", policy)
    assert bad_key.value.code == "board_kind_invalid"
    with pytest.raises(InvalidArgument) as fixed:
        catalogue.validate_entry("announcements", "公告", "district", policy)
    assert fixed.value.code == "board_scope_fixed"
    with pytest.raises(InvalidArgument) as scope:
        catalogue.validate_entry("waste_sorting", "垃圾分类", "", policy)
    assert scope.value.code == "board_scope_invalid"
    entry = catalogue.validate_entry("announcements", " 通知公告 ", "", policy)
    assert (entry.name, entry.scope, entry.position) == ("通知公告", "neighbourhood", 10)
