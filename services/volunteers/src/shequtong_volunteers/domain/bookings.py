"""Storefront bookings: who may book, the booking's states, ratings and the storefront's figures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from shequtong_kit.auth import Principal
from shequtong_kit.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from shequtong_volunteers.domain import text

REQUESTED = "requested"
ACCEPTED = "accepted"
DECLINED = "declined"
FULFILLED = "fulfilled"
CANCELLED = "cancelled"

STATES = (REQUESTED, ACCEPTED, DECLINED, FULFILLED, CANCELLED)
HOLDS_PLACE = frozenset({REQUESTED, ACCEPTED})

_FROM = {
    ACCEPTED: {REQUESTED},
    DECLINED: {REQUESTED, ACCEPTED},
    FULFILLED: {REQUESTED, ACCEPTED},
    CANCELLED: {REQUESTED, ACCEPTED},
}


def ensure_transition(current: str, target: str) -> None:
    if current not in _FROM[target]:
        raise FailedPrecondition(
            f"a {current} booking cannot become {target}", code="booking_state_invalid", state=current
        )


def choose_neighbourhood(principal: Principal, eligible: list[str], requested: str) -> str:
    """The resident's neighbourhood the booking is made from: it must be one the offering serves."""
    if principal.is_service:
        raise PermissionDenied("a person is required for this action", code="person_required")
    if requested:
        if requested not in eligible:
            raise PermissionDenied("this storefront does not serve that neighbourhood", code="neighbourhood_not_served")
        if not principal.is_resident(requested):
            raise PermissionDenied("only verified residents may book", code="not_a_resident")
        return requested
    for neighbourhood_id in eligible:
        if principal.is_resident(neighbourhood_id):
            return neighbourhood_id
    raise PermissionDenied("this storefront does not serve your neighbourhood", code="neighbourhood_not_served")


def ensure_slot_bookable(booked_count: int, capacity: int, starts_at: datetime, now: datetime) -> None:
    """Called under the slot's row lock: the place is taken only if one is free."""
    if now >= starts_at:
        raise FailedPrecondition("this slot has already started", code="slot_started")
    if booked_count >= capacity:
        raise FailedPrecondition("this slot is fully booked", code="slot_full")


def note(value: str) -> str:
    return text.optional(value, "note", 500)


def decline_reason(value: str) -> str:
    return text.required(value, "reason", 500, code="reason_required")


def validate_rating(state: str, already_rated: bool, rating: int, comment: str) -> str:
    if state != FULFILLED:
        raise FailedPrecondition("only a fulfilled booking can be rated", code="booking_not_fulfilled")
    if already_rated:
        raise FailedPrecondition("this booking was already rated", code="already_rated")
    if not 1 <= rating <= 5:
        raise InvalidArgument("a rating is 1 to 5 stars", code="rating_invalid")
    return text.optional(comment, "comment", 500)


@dataclass(frozen=True)
class Stats:
    rating_count: int
    average_rating: float
    fulfilled_count: int
    declined_count: int
    fulfilment_rate: float
    booking_count: int


def stats(counts: Mapping[str, int], rating_sum: int, rating_count: int) -> Stats:
    """Fulfilment rate = fulfilled / (fulfilled + declined): of the bookings the organisation decided the
    outcome of, how many it delivered. Residents' own cancellations do not count against it."""
    fulfilled = counts.get(FULFILLED, 0)
    declined = counts.get(DECLINED, 0)
    decided = fulfilled + declined
    return Stats(
        rating_count=rating_count,
        average_rating=round(rating_sum / rating_count, 2) if rating_count else 0.0,
        fulfilled_count=fulfilled,
        declined_count=declined,
        fulfilment_rate=round(fulfilled / decided, 4) if decided else 0.0,
        booking_count=sum(counts.values()),
    )
