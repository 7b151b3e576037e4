"""Board policies: who reads, posts, comments, answers and moderates — as data, checked here.

A policy names *audiences*. What audiences a caller belongs to follows from their token roles and where
the board sits (a neighbourhood's lineage, or a district for district-wide boards); no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shequtong_kit import auth
from shequtong_kit.auth import Lineage, Principal
from shequtong_kit.errors import InvalidArgument

ANYONE = "anyone"
MEMBER = "member"
RESIDENT = "resident"
COMMITTEE = "committee"
SECRETARY = "secretary"
STAFF = "staff"
DISTRICT_STAFF = "district_staff"

# Neighbourhood-scoped roles that are audiences of their own.
ROLE_AUDIENCES: tuple[str, ...] = (
    auth.PARTY_MEMBER,
    auth.VOLUNTEER,
    auth.POLICE,
    auth.DOCTOR,
    auth.LAWYER,
    auth.PROPERTY_MANAGER,
    auth.OWNERS_COMMITTEE,
)

AUDIENCES: frozenset[str] = frozenset(
    {ANYONE, MEMBER, RESIDENT, COMMITTEE, SECRETARY, STAFF, DISTRICT_STAFF, *ROLE_AUDIENCES}
)
# Audiences too broad to moderate or give official answers.
NOT_FOR_OFFICE: frozenset[str] = frozenset({ANYONE, MEMBER, RESIDENT, auth.PARTY_MEMBER, auth.VOLUNTEER})

ACTIONS = ("read", "post", "comment", "answer", "moderate")


@dataclass(frozen=True)
class Policy:
    read: frozenset[str]
    post: frozenset[str]
    comment: frozenset[str]
    answer: frozenset[str]
    moderate: frozenset[str]

    @classmethod
    def of(cls, **actions: Iterable[str]) -> Policy:
        return cls(**{action: frozenset(actions.get(action, ())) for action in ACTIONS})

    def to_dict(self) -> dict[str, list[str]]:
        return {action: sorted(getattr(self, action)) for action in ACTIONS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        return validate_policy({action: list(data.get(action) or ()) for action in ACTIONS})


def validate_policy(actions: Mapping[str, Iterable[str]]) -> Policy:
    """A policy from untrusted input: known audiences only, everyone who may act may also read."""
    cleaned: dict[str, frozenset[str]] = {}
    for action in ACTIONS:
        values = frozenset(str(v).strip() for v in actions.get(action, ()) if str(v).strip())
        unknown = values - AUDIENCES
        if unknown:
            raise InvalidArgument(
                f"unknown audience in {action}: {', '.join(sorted(unknown))}",
                code="policy_audience_unknown",
                action=action,
            )
        cleaned[action] = values
    if not cleaned["read"]:
        raise InvalidArgument("a board must be readable by someone", code="policy_read_empty")
    if not cleaned["moderate"]:
        raise InvalidArgument("a board needs moderators", code="policy_moderate_empty")
    for action in ("answer", "moderate"):
        broad = cleaned[action] & NOT_FOR_OFFICE
        if broad:
            raise InvalidArgument(
                f"{action} must name an office, not {', '.join(sorted(broad))}",
                code="policy_office_too_broad",
                action=action,
            )
    return Policy(**cleaned)


def neighbourhood_audiences(principal: Principal, lineage: Lineage) -> frozenset[str]:
    """What the caller is with respect to a neighbourhood's board."""
    n = f"n:{lineage.neighbourhood_id}"
    found = {ANYONE}
    if principal.is_member(lineage.neighbourhood_id):
        found.add(MEMBER)
    if principal.is_resident(lineage.neighbourhood_id):
        found.add(RESIDENT)
    if principal.is_committee(lineage.neighbourhood_id):
        found.add(COMMITTEE)
    if principal.has(auth.SECRETARY, n):
        found.add(SECRETARY)
    found.update(role for role in ROLE_AUDIENCES if principal.has(role, n))
    if (
        principal.has(auth.SUBDISTRICT_STAFF, f"s:{lineage.subdistrict_id}")
        or principal.has(auth.DISTRICT_STAFF, f"d:{lineage.district_id}")
        or principal.is_operator
        or principal.has(auth.SERVICE, "*")
    ):
        found.add(STAFF)
    if principal.has(auth.DISTRICT_STAFF, f"d:{lineage.district_id}") or principal.is_operator:
        found.add(DISTRICT_STAFF)
    return frozenset(found)


def district_audiences(
    principal: Principal,
    district_id: str,
    member_lineages: Iterable[Lineage],
    district_subdistricts: Iterable[str] = (),
) -> frozenset[str]:
    """What the caller is with respect to a district-wide board: a member (resident, party member ...)
    of any neighbourhood of the district counts; a neighbourhood committee does not moderate it."""
    found = {ANYONE}
    for lineage in member_lineages:
        if lineage.district_id != district_id:
            continue
        n = f"n:{lineage.neighbourhood_id}"
        if principal.is_member(lineage.neighbourhood_id):
            found.add(MEMBER)
        if principal.is_resident(lineage.neighbourhood_id):
            found.add(RESIDENT)
        found.update(role for role in ROLE_AUDIENCES if principal.has(role, n))
    if principal.has(auth.DISTRICT_STAFF, f"d:{district_id}") or principal.is_operator:
        found.update({STAFF, DISTRICT_STAFF})
    elif principal.has(auth.SERVICE, "*") or any(
        principal.has(auth.SUBDISTRICT_STAFF, f"s:{s}") for s in district_subdistricts
    ):
        found.add(STAFF)
    return frozenset(found)


@dataclass(frozen=True)
class Permissions:
    can_read: bool
    can_post: bool
    can_comment: bool
    can_answer: bool
    can_moderate: bool


def permissions(policy: Policy, audiences: frozenset[str]) -> Permissions:
    """Acting requires reading; moderators and responders may always comment."""
    can_read = bool(policy.read & audiences) or bool(policy.moderate & audiences)
    can_moderate = bool(policy.moderate & audiences)
    can_answer = can_read and bool(policy.answer & audiences)
    return Permissions(
        can_read=can_read,
        can_post=can_read and bool(policy.post & audiences),
        can_comment=can_read and (bool(policy.comment & audiences) or can_answer or can_moderate),
        can_answer=can_answer,
        can_moderate=can_moderate,
    )
