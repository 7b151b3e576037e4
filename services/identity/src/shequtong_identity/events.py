"""Identity's outgoing events (subjects `identity.<aggregate>.<event>`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_identity.models import Household, Membership, Region, RoleGrant
from shequtong_kit import packs
from shequtong_kit.outbox import Outbox, packed
from shequtong_kit.proto import ts

NEIGHBOURHOOD_CREATED = "identity.neighbourhood.created"
HOUSEHOLD_CREATED = "identity.household.created"
MEMBER_JOINED = "identity.membership.joined"
MEMBER_VERIFIED = "identity.membership.verified"
MEMBER_REJECTED = "identity.membership.rejected"
MEMBER_LEFT = "identity.membership.left"
ROLE_GRANTED = "identity.role.granted"
ROLE_REVOKED = "identity.role.revoked"
PERSON_UPDATED = "identity.person.updated"
SESSION_REVOKED = "identity.session.revoked"
# Residents an import wrote: for each, the events above the per-person path publishes, packed together
# (kit `outbox.packed`; consumers open it with kit `packs`).
RESIDENTS_IMPORTED = packs.RESIDENTS_IMPORTED


async def neighbourhood_created(outbox: Outbox, session: AsyncSession, region: Region) -> None:
    await outbox.add(
        session,
        NEIGHBOURHOOD_CREATED,
        ev.NeighbourhoodCreated(
            neighbourhood_id=region.id,
            code=region.code,
            name=region.name,
            kind=region.kind,  # type: ignore[arg-type]
            subdistrict_id=region.subdistrict_id or "",
            district_id=region.district_id or "",
        ),
    )


async def household_created(outbox: Outbox, session: AsyncSession, household: Household) -> None:
    await outbox.add(
        session,
        HOUSEHOLD_CREATED,
        ev.HouseholdCreated(
            household_id=household.id,
            neighbourhood_id=household.neighbourhood_id,
            building=household.building,
            unit=household.unit,
            room=household.room,
            village_group=household.village_group,
            house_number=household.house_number,
        ),
    )


async def member_joined(outbox: Outbox, session: AsyncSession, membership: Membership) -> None:
    await outbox.add(
        session,
        MEMBER_JOINED,
        ev.MemberJoined(
            person_id=membership.person_id,
            neighbourhood_id=membership.neighbourhood_id,
            household_id=membership.household_id,
            membership_id=membership.id,
        ),
    )


async def member_verified(outbox: Outbox, session: AsyncSession, membership: Membership, display_name: str) -> None:
    await outbox.add(
        session,
        MEMBER_VERIFIED,
        ev.MemberVerified(
            person_id=membership.person_id,
            neighbourhood_id=membership.neighbourhood_id,
            household_id=membership.household_id,
            membership_id=membership.id,
            display_name=display_name,
            verified_by=membership.reviewed_by,
        ),
    )


async def member_rejected(outbox: Outbox, session: AsyncSession, membership: Membership) -> None:
    await outbox.add(
        session,
        MEMBER_REJECTED,
        ev.MemberRejected(
            person_id=membership.person_id,
            neighbourhood_id=membership.neighbourhood_id,
            membership_id=membership.id,
            reason=membership.reason,
            rejected_by=membership.reviewed_by,
        ),
    )


async def member_left(outbox: Outbox, session: AsyncSession, membership: Membership) -> None:
    await outbox.add(
        session,
        MEMBER_LEFT,
        ev.MemberLeft(
            person_id=membership.person_id,
            neighbourhood_id=membership.neighbourhood_id,
            membership_id=membership.id,
        ),
    )


async def role_granted(outbox: Outbox, session: AsyncSession, grant: RoleGrant, display_name: str) -> None:
    await outbox.add(
        session,
        ROLE_GRANTED,
        ev.RoleGranted(
            person_id=grant.person_id,
            role=grant.role,
            scope=grant.scope,
            granted_by=grant.granted_by,
            display_name=display_name,
        ),
    )


async def role_revoked(outbox: Outbox, session: AsyncSession, grant: RoleGrant) -> None:
    await outbox.add(
        session,
        ROLE_REVOKED,
        ev.RoleRevoked(person_id=grant.person_id, role=grant.role, scope=grant.scope, revoked_by=grant.revoked_by),
    )


def granted(person_id: str, role: str, scope: str, granted_by: str, display_name: str) -> tuple[str, Message]:
    """`identity.role.granted` from plain values (a batch's grants are rows, not ORM objects)."""
    message = ev.RoleGranted(
        person_id=person_id, role=role, scope=scope, granted_by=granted_by, display_name=display_name
    )
    return ROLE_GRANTED, message


def revoked(person_id: str, role: str, scope: str, revoked_by: str) -> tuple[str, Message]:
    """`identity.role.revoked` from plain values."""
    return ROLE_REVOKED, ev.RoleRevoked(person_id=person_id, role=role, scope=scope, revoked_by=revoked_by)


async def person_updated(
    outbox: Outbox,
    session: AsyncSession,
    person_id: str,
    display_name: str,
    changed: Sequence[str],
    updated_by: str,
    *,
    membership: Membership | None = None,
    previous_household_id: str = "",
    reason: str = "",
) -> None:
    await outbox.add(
        session,
        PERSON_UPDATED,
        ev.PersonProfileUpdated(
            person_id=person_id,
            display_name=display_name,
            changed=list(changed),
            updated_by=updated_by,
            membership_id=membership.id if membership else "",
            neighbourhood_id=membership.neighbourhood_id if membership else "",
            household_id=membership.household_id if membership else "",
            previous_household_id=previous_household_id,
            reason=reason,
        ),
    )


async def session_revoked(
    outbox: Outbox, session: AsyncSession, session_id: str, person_id: str, at: datetime, reason: str
) -> None:
    await outbox.add(
        session,
        SESSION_REVOKED,
        ev.SessionRevoked(session_id=session_id, person_id=person_id, revoked_at=ts(at), reason=reason),
    )


def imported_resident(
    membership: dict[str, Any],
    display_name: str,
    household: dict[str, Any] | None,
    grant: dict[str, Any] | None,
) -> ev.ImportedResident:
    """The events the per-person path publishes for one resident (household, registration, verification,
    party-member badge), as one item of `identity.membership.imported`: consumers apply it as those events,
    so they cannot tell an imported resident from another."""
    ids = {
        "person_id": membership["person_id"],
        "neighbourhood_id": membership["neighbourhood_id"],
        "household_id": membership["household_id"],
        "membership_id": membership["id"],
    }
    item = ev.ImportedResident(
        joined=ev.MemberJoined(**ids),
        verified=ev.MemberVerified(**ids, display_name=display_name, verified_by=membership["reviewed_by"]),
    )
    if household is not None:
        item.household.CopyFrom(
            ev.HouseholdCreated(
                household_id=household["id"],
                neighbourhood_id=household["neighbourhood_id"],
                building=household["building"],
                unit=household["unit"],
                room=household["room"],
                village_group=household["village_group"],
                house_number=household["house_number"],
            )
        )
    if grant is not None:
        item.party_member.CopyFrom(
            ev.RoleGranted(
                person_id=grant["person_id"],
                role=grant["role"],
                scope=grant["scope"],
                granted_by=grant["granted_by"],
                display_name=display_name,
            )
        )
    return item


def residents_imported_messages(items: Sequence[ev.ImportedResident]) -> list[tuple[str, Message]]:
    return [(RESIDENTS_IMPORTED, ev.ResidentsImported(residents=chunk)) for chunk in packed(items)]
