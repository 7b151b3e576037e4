"""Who sees and changes personal data; the volunteer badge; join-code usability; key entries."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from shequtong_identity.domain import badges, personal
from shequtong_identity.domain.joincodes import usable
from shequtong_identity.domain.memberships import LEFT, PENDING, REJECTED, VERIFIED
from shequtong_identity.domain.roles import ScopePlace
from shequtong_identity.domain.tokens import jwks_json, load_signing_keys, new_key_entry

from shequtong_kit import auth
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied

N, OTHER_N, S, D = "n1", "n2", "s1", "d1"


def who(subject: str, *roles: str) -> auth.Principal:
    return auth.Principal(subject=subject, roles=auth.parse_roles(roles))


CADRE = who("cadre", f"cadre@n:{N}")
SECRETARY = who("sec", f"secretary@n:{N}")
OTHER_CADRE = who("other", f"cadre@n:{OTHER_N}")
RESIDENT = who("res", f"resident@n:{N}")
SUB_STAFF = who("sub", f"subdistrict_staff@s:{S}")
DISTRICT_STAFF = who("dist", f"district_staff@d:{D}")
OPERATOR = who("op", "operator@*")
SERVICE = who("svc:issues", "service@*")


def test_reasons_are_required_and_bounded() -> None:
    assert personal.required_reason("  核实户籍  ") == "核实户籍"
    for bad, code in (("", "reason_required"), ("   ", "reason_required"), ("x" * 501, "reason_too_long")):
        with pytest.raises(InvalidArgument) as err:
            personal.required_reason(bad)
        assert err.value.code == code


def test_only_the_committee_where_the_person_registered_sees_the_id_number() -> None:
    personal.ensure_may_reveal(CADRE, N, registered_there=True)
    personal.ensure_may_reveal(SECRETARY, N, registered_there=True)
    for actor in (OTHER_CADRE, RESIDENT, SUB_STAFF, DISTRICT_STAFF, OPERATOR, SERVICE):
        with pytest.raises(PermissionDenied) as err:
            personal.ensure_may_reveal(actor, N, registered_there=True)
        assert err.value.code == "not_committee"
    with pytest.raises(NotFound) as missing:
        personal.ensure_may_reveal(CADRE, N, registered_there=False)
    assert missing.value.code == "person_not_found"


def test_the_audit_of_reveals_is_for_the_staff_above() -> None:
    neighbourhood = ScopePlace("n", N, S, D)
    subdistrict = ScopePlace("s", S, S, D)
    district = ScopePlace("d", D, "", D)
    for actor, places in (
        (DISTRICT_STAFF, (neighbourhood, subdistrict, district)),
        (SUB_STAFF, (neighbourhood, subdistrict)),
        (OPERATOR, (neighbourhood, subdistrict, district)),
    ):
        for place in places:
            personal.ensure_may_list_reveals(actor, place, "")
    for actor, place in ((SUB_STAFF, district), (CADRE, neighbourhood), (RESIDENT, neighbourhood)):
        with pytest.raises(PermissionDenied):
            personal.ensure_may_list_reveals(actor, place, "")
    other_district = who("x", "district_staff@d:elsewhere")
    with pytest.raises(PermissionDenied):
        personal.ensure_may_list_reveals(other_district, neighbourhood, "")
    # Anyone may see who looked at their own number; someone else's needs a region and oversight.
    personal.ensure_may_list_reveals(RESIDENT, None, "res")
    with pytest.raises(InvalidArgument):
        personal.ensure_may_list_reveals(RESIDENT, None, "someone-else")


def test_a_real_name_is_corrected_by_the_committee_not_by_the_person() -> None:
    personal.ensure_may_correct_name(CADRE, "res", {N})
    personal.ensure_may_correct_name(OPERATOR, "res", set())
    with pytest.raises(PermissionDenied) as err:
        personal.ensure_may_correct_name(RESIDENT, "res", {N})
    assert err.value.code == "self_update"
    with pytest.raises(PermissionDenied) as other:
        personal.ensure_may_correct_name(OTHER_CADRE, "res", {N})
    assert other.value.code == "not_committee"


def test_moving_house_is_for_the_member_or_the_committee_while_active() -> None:
    personal.ensure_may_move(RESIDENT, "res", N, VERIFIED)
    personal.ensure_may_move(RESIDENT, "res", N, PENDING)
    personal.ensure_may_move(CADRE, "res", N, VERIFIED)
    with pytest.raises(NotFound):
        personal.ensure_may_move(OTHER_CADRE, "res", N, VERIFIED)
    for state in (LEFT, REJECTED):
        with pytest.raises(FailedPrecondition):
            personal.ensure_may_move(RESIDENT, "res", N, state)


@pytest.mark.parametrize(
    ("active", "holds", "change"),
    [(1, False, badges.GRANT), (2, True, None), (0, True, badges.REVOKE), (0, False, None)],
)
def test_the_volunteer_badge_follows_the_active_records(active: int, holds: bool, change: str | None) -> None:
    assert badges.badge_change(active, holds) == change


def test_join_code_usability() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    later = now + timedelta(days=1)
    assert usable(False, later, 0, 1, now)
    assert not usable(True, later, 0, 1, now)
    assert not usable(False, now, 0, 1, now)
    assert not usable(False, later, 1, 1, now)


def test_a_new_key_entry_loads_and_is_published_next_to_the_old_one() -> None:
    old, new = new_key_entry("old-1"), new_key_entry("new-2")
    keys = load_signing_keys(json.dumps([new, old]))
    assert [k.kid for k in keys] == ["new-2", "old-1"]
    assert [k["kid"] for k in json.loads(jwks_json(keys))["keys"]] == ["new-2", "old-1"]
    with pytest.raises(ValueError):
        load_signing_keys(json.dumps([new, new]))
    with pytest.raises(ValueError):
        new_key_entry("")
