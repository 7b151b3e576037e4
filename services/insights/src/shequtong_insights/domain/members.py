"""What insights keeps about each membership, and how identity's events change it. Pure.

A membership's events can arrive in any order (a replay, a redelivery, an import's pack): joined and
verified keep the earliest time seen, left and rejected the latest. The row is made by the first event
about it, with that event's neighbourhood and person. The household is the verification's when it names
one (identity verified it), else the one already known, else the join's.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from shequtong_insights.domain.facts import _earliest, _latest


class MemberFacts(NamedTuple):
    """One membership's row (the fields are the columns of `ins_members`). A tuple: an import makes one per
    event of each resident it packs, so it is built as cheaply as Python allows."""

    membership_id: str
    neighbourhood_id: str
    person_id: str
    household_id: str = ""
    joined_at: datetime | None = None
    verified_at: datetime | None = None
    left_at: datetime | None = None
    rejected_at: datetime | None = None


def known(facts: MemberFacts | None, membership_id: str, neighbourhood_id: str, person_id: str) -> MemberFacts:
    """The facts so far, or a new membership's (no household, no times yet)."""
    return facts if facts is not None else MemberFacts(membership_id, neighbourhood_id, person_id)


def joined(facts: MemberFacts, *, household_id: str, at: datetime) -> MemberFacts:
    # The tuple is built whole, not by `_replace` (a third of the cost of a resident's join here).
    membership_id, neighbourhood_id, person_id, known_household, joined_at, verified_at, left_at, rejected_at = facts
    return MemberFacts(
        membership_id,
        neighbourhood_id,
        person_id,
        known_household or household_id,
        _earliest(joined_at, at),
        verified_at,
        left_at,
        rejected_at,
    )


def verified(facts: MemberFacts, *, household_id: str, at: datetime) -> MemberFacts:
    membership_id, neighbourhood_id, person_id, known_household, joined_at, verified_at, left_at, rejected_at = facts
    return MemberFacts(
        membership_id,
        neighbourhood_id,
        person_id,
        household_id or known_household,
        joined_at,
        _earliest(verified_at, at),
        left_at,
        rejected_at,
    )


def left(facts: MemberFacts, *, at: datetime) -> MemberFacts:
    return facts._replace(left_at=_latest(facts.left_at, at))


def rejected(facts: MemberFacts, *, at: datetime) -> MemberFacts:
    return facts._replace(rejected_at=_latest(facts.rejected_at, at))
