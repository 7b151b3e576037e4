"""Booking rules: who may book, the booking's life, ratings and the storefront's figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shequtong_volunteers.domain import bookings as rules

from shequtong_kit.auth import Principal, parse_roles
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def person(*roles: str) -> Principal:
    return Principal(subject="p1", roles=parse_roles(roles))


def test_a_resident_of_a_served_neighbourhood_books_through_it() -> None:
    assert rules.choose_neighbourhood(person("resident@n:n2"), ["n1", "n2"], "") == "n2"
    assert rules.choose_neighbourhood(person("resident@n:n1", "resident@n:n2"), ["n1", "n2"], "n2") == "n2"


@pytest.mark.parametrize(
    ("roles", "requested", "code"),
    [
        (("resident@n:n3",), "", "neighbourhood_not_served"),
        (("resident@n:n3",), "n3", "neighbourhood_not_served"),
        (("cadre@n:n1",), "n1", "not_a_resident"),
        ((), "", "neighbourhood_not_served"),
    ],
)
def test_others_cannot_book(roles: tuple[str, ...], requested: str, code: str) -> None:
    with pytest.raises(PermissionDenied) as err:
        rules.choose_neighbourhood(person(*roles), ["n1", "n2"], requested)
    assert err.value.code == code


def test_machine_clients_cannot_book() -> None:
    with pytest.raises(PermissionDenied) as err:
        rules.choose_neighbourhood(Principal(subject="svc:x", roles=parse_roles(["service@*"])), ["n1"], "")
    assert err.value.code == "person_required"


def test_a_full_or_started_slot_is_not_bookable() -> None:
    rules.ensure_slot_bookable(0, 1, NOW + timedelta(hours=1), NOW)
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_slot_bookable(1, 1, NOW + timedelta(hours=1), NOW)
    assert err.value.code == "slot_full"
    with pytest.raises(FailedPrecondition) as err:
        rules.ensure_slot_bookable(0, 1, NOW, NOW)
    assert err.value.code == "slot_started"


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (rules.REQUESTED, rules.ACCEPTED, True),
        (rules.REQUESTED, rules.FULFILLED, True),
        (rules.ACCEPTED, rules.FULFILLED, True),
        (rules.ACCEPTED, rules.DECLINED, True),
        (rules.ACCEPTED, rules.CANCELLED, True),
        (rules.ACCEPTED, rules.ACCEPTED, False),
        (rules.DECLINED, rules.ACCEPTED, False),
        (rules.FULFILLED, rules.CANCELLED, False),
        (rules.CANCELLED, rules.FULFILLED, False),
    ],
)
def test_transitions(current: str, target: str, allowed: bool) -> None:
    if allowed:
        rules.ensure_transition(current, target)
    else:
        with pytest.raises(FailedPrecondition) as err:
            rules.ensure_transition(current, target)
        assert err.value.code == "booking_state_invalid"


def test_ratings() -> None:
    assert rules.validate_rating(rules.FULFILLED, False, 5, " 很好 ") == "很好"
    with pytest.raises(FailedPrecondition) as err:
        rules.validate_rating(rules.ACCEPTED, False, 5, "")
    assert err.value.code == "booking_not_fulfilled"
    with pytest.raises(FailedPrecondition) as err:
        rules.validate_rating(rules.FULFILLED, True, 5, "")
    assert err.value.code == "already_rated"
    for bad in (0, 6):
        with pytest.raises(InvalidArgument) as err:
            rules.validate_rating(rules.FULFILLED, False, bad, "")
        assert err.value.code == "rating_invalid"


def test_storefront_figures() -> None:
    stats = rules.stats({rules.FULFILLED: 3, rules.DECLINED: 1, rules.CANCELLED: 2, rules.REQUESTED: 1}, 14, 3)
    assert stats.fulfilment_rate == 0.75
    assert stats.average_rating == 4.67
    assert stats.booking_count == 7
    empty = rules.stats({}, 0, 0)
    assert (empty.fulfilment_rate, empty.average_rating, empty.rating_count) == (0.0, 0.0, 0)
