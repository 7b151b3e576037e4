import pytest
from shequtong_identity.domain.roles import ScopePlace, ensure_may_grant, parse_scope

from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.errors import InvalidArgument, PermissionDenied

N1 = ScopePlace("n", "n1", "s1", "d1")
N_OTHER_SUB = ScopePlace("n", "n9", "s2", "d1")
N_OTHER_DISTRICT = ScopePlace("n", "n8", "s8", "d8")
S1 = ScopePlace("s", "s1", "s1", "d1")
D1 = ScopePlace("d", "d1", "", "d1")


def who(*roles: str, subject: str = "actor") -> Principal:
    return Principal(subject=subject, roles=parse_roles(roles))


def allowed(actor: Principal, role: str, place: ScopePlace, target: str = "target") -> bool:
    try:
        ensure_may_grant(actor, target, role, place)
        return True
    except PermissionDenied:
        return False


def test_operator_grants_anything_but_not_to_itself() -> None:
    op = who("operator@*")
    assert allowed(op, "district_staff", D1)
    assert allowed(op, "operator", ScopePlace("*"))
    assert not allowed(op, "cadre", N1, target="actor")


def test_district_staff_within_their_district() -> None:
    ds = who("district_staff@d:d1")
    for role in ("secretary", "cadre", "police", "doctor", "lawyer", "property_manager", "owners_committee"):
        assert allowed(ds, role, N1)
        assert allowed(ds, role, N_OTHER_SUB)
        assert not allowed(ds, role, N_OTHER_DISTRICT)
    assert allowed(ds, "subdistrict_staff", S1)
    assert not allowed(ds, "subdistrict_staff", ScopePlace("s", "s8", "s8", "d8"))
    assert not allowed(ds, "district_staff", D1)
    assert not allowed(ds, "operator", ScopePlace("*"))


def test_subdistrict_staff_within_their_subdistrict() -> None:
    ss = who("subdistrict_staff@s:s1")
    assert allowed(ss, "secretary", N1)
    assert allowed(ss, "cadre", N1)
    assert allowed(ss, "police", N1)
    assert not allowed(ss, "secretary", N_OTHER_SUB)
    assert not allowed(ss, "subdistrict_staff", S1)


def test_secretary_grants_cadres_and_responders_in_their_own_neighbourhood() -> None:
    sec = who("secretary@n:n1")
    assert allowed(sec, "cadre", N1)
    assert allowed(sec, "doctor", N1)
    assert allowed(sec, "party_member", N1)
    assert not allowed(sec, "secretary", N1)
    assert not allowed(sec, "cadre", N_OTHER_SUB)
    assert not allowed(sec, "subdistrict_staff", S1)


def test_cadre_only_confirms_party_members_and_residents_grant_nothing() -> None:
    cadre = who("cadre@n:n1")
    assert allowed(cadre, "party_member", N1)
    assert not allowed(cadre, "cadre", N1)
    assert not allowed(cadre, "police", N1)
    resident = who("resident@n:n1")
    assert not allowed(resident, "party_member", N1)


def test_nobody_grants_to_themselves() -> None:
    ds = who("district_staff@d:d1", subject="p1")
    with pytest.raises(PermissionDenied) as err:
        ensure_may_grant(ds, "p1", "secretary", N1)
    assert err.value.code == "self_grant"


def test_scopes_must_match_the_role() -> None:
    assert parse_scope("cadre", "n:abc") == ("n", "abc")
    assert parse_scope("operator", "*") == ("*", "")
    assert parse_scope("org_admin", "o:org1") == ("o", "org1")
    for role, scope in (("cadre", "s:abc"), ("district_staff", "n:abc"), ("operator", "n:x"), ("cadre", "n:")):
        with pytest.raises(InvalidArgument) as err:
            parse_scope(role, scope)
        assert err.value.code == "scope_invalid"
    with pytest.raises(InvalidArgument) as err:
        parse_scope("resident", "n:abc")
    assert err.value.code == "role_not_grantable"
