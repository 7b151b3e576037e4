"""Identity's outgoing events (subjects `identity.<aggregate>.<event>`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as ev
from shequtong_identity.models import Household, Membership, Region, RoleGrant
from shequtong_kit.outbox import Outbox

NEIGHBOURHOOD_CREATED = "identity.neighbourhood.created"
HOUSEHOLD_CREATED = "identity.household.created"
MEMBER_JOINED = "identity.membership.joined"
MEMBER_VERIFIED = "identity.membership.verified"
MEMBER_REJECTED = "identity.membership.rejected"
MEMBER_LEFT = "identity.membership.left"
ROLE_GRANTED = "identity.role.granted"
ROLE_REVOKED = "identity.role.revoked"


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
