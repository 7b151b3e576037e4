"""Organisation and storefront rules: the credit code, who decides, served neighbourhoods, offerings, slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_volunteers.domain import organisations as rules

from shequtong_kit.auth import Lineage, Principal, parse_roles
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def person(*roles: str, subject: str = "p1") -> Principal:
    return Principal(subject=subject, roles=parse_roles(roles))


def test_a_published_credit_code_is_accepted() -> None:
    # The example printed in GB 32100-2015 guidance; lower case and spaces are tolerated.
    assert rules.normalise_credit_code(" 91350100m000100y43 ") == "91350100M000100Y43"


@pytest.mark.parametrize("code", ["91350100M000100Y44", "91350100M000100Y4", "91350100M000100I43", ""])
def test_bad_credit_codes_are_refused(code: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        rules.normalise_credit_code(code)
    assert err.value.code == "credit_code_invalid"


def test_the_check_character_covers_every_position() -> None:
    base = "91350100M000100Y4"
    for index in range(17):
        changed = base[:index] + ("1" if base[index] != "1" else "2") + base[index + 1 :]
        assert rules.credit_code_check_char(changed) != "3", f"a change at {index} went unnoticed"


def test_only_the_districts_staff_or_an_operator_decide() -> None:
    assert rules.ensure_may_decide(person("district_staff@d:d1"), "d1") == "p1"
    rules.ensure_may_decide(person("operator@*"), "d1")
    for roles in (("district_staff@d:d2",), ("subdistrict_staff@s:s1",), ("cadre@n:n1",)):
        with pytest.raises(PermissionDenied) as err:
            rules.ensure_may_decide(person(*roles), "d1")
        assert err.value.code == "not_district_staff"


def test_pending_and_approved_states() -> None:
    rules.ensure_pending(rules.PENDING)
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_pending(rules.APPROVED)
    assert err.value.code == "organisation_not_pending"
    rules.ensure_approved(rules.APPROVED)
    for state in (rules.PENDING, rules.REJECTED):
        with pytest.raises(FailedPrecondition) as err:
            rules.ensure_approved(state)
        assert err.value.code == "organisation_not_approved"


def test_administrators_are_the_registrant_or_holders_of_the_org_admin_role() -> None:
    assert rules.is_admin(person(subject="p1"), "o1", {"p1"})
    assert rules.is_admin(person("org_admin@o:o1", subject="p2"), "o1", {"p1"})
    assert not rules.is_admin(person("org_admin@o:o2", subject="p2"), "o1", {"p1"})
    with pytest.raises(PermissionDenied) as err:
        rules.ensure_admin(person(subject="p3"), "o1", {"p1"})
    assert err.value.code == "not_org_admin"


def test_a_storefront_serves_neighbourhoods_of_its_district_only() -> None:
    inside = [Lineage("n1", "s1", "d1"), Lineage("n2", "s2", "d1")]
    assert rules.served_neighbourhoods("d1", inside) == ["n1", "n2"]
    with pytest.raises(InvalidArgument) as err:
        rules.served_neighbourhoods("d1", [*inside, Lineage("n3", "s3", "d2")])
    assert err.value.code == "neighbourhood_outside_district"
    with pytest.raises(InvalidArgument) as err:
        rules.served_neighbourhoods("d1", [])
    assert err.value.code == "neighbourhoods_required"


def test_offerings_are_free_or_priced_and_limited_to_served_neighbourhoods() -> None:
    offering = rules.validate_offering(" 理发 ", "", "haircut", 0, ["n1"], "60岁以上", ["n1", "n2"])
    assert (offering.title, offering.price_cents, offering.neighbourhood_ids) == ("理发", 0, ["n1"])
    with pytest.raises(InvalidArgument) as err:
        rules.validate_offering("修理", "", "", -1, [], "", ["n1"])
    assert err.value.code == "price_invalid"
    with pytest.raises(InvalidArgument) as err:
        rules.validate_offering("修理", "", "", 500, ["n3"], "", ["n1"])
    assert err.value.code == "neighbourhood_not_served"


def test_eligible_neighbourhoods() -> None:
    assert rules.eligible_neighbourhoods([], ["n1", "n2"]) == ["n1", "n2"]
    assert rules.eligible_neighbourhoods(["n2"], ["n1", "n2"]) == ["n2"]


@pytest.mark.parametrize(
    ("start", "end", "capacity", "code"),
    [
        (NOW + timedelta(hours=1), NOW + timedelta(hours=1), 1, "slot_time_invalid"),
        (NOW + timedelta(hours=1), NOW + timedelta(days=2), 1, "slot_time_invalid"),
        (NOW - timedelta(hours=1), NOW + timedelta(hours=1), 1, "slot_in_past"),
        (NOW + timedelta(hours=1), NOW + timedelta(hours=2), 0, "capacity_invalid"),
    ],
)
def test_bad_slots_are_refused(start: datetime, end: datetime, capacity: int, code: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        rules.validate_slot(start, end, capacity, NOW)
    assert err.value.code == code


def test_a_good_slot_passes() -> None:
    rules.validate_slot(NOW + timedelta(hours=1), NOW + timedelta(hours=2), 3, NOW)
