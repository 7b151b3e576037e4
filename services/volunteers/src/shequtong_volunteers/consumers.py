"""JetStream handlers of volunteers: every event it reacts to, idempotent through the kit's inbox and,
where it matters, through unique constraints (one default team per neighbourhood, one person row)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong_kit import packs, regions
from shequtong_kit.consumer import ConsumerSpec, ReceivedEvent, peeked, route
from shequtong_volunteers.service import VolunteersService

MEMBER_VERIFIED = "identity.membership.verified"
MEMBER_LEFT = "identity.membership.left"
PERSON_UPDATED = "identity.person.updated"
# An import's residents: their verifications, packed (`route` opens it).
RESIDENTS_IMPORTED = packs.RESIDENTS_IMPORTED


def consumer_specs(service: VolunteersService) -> list[ConsumerSpec]:
    async def neighbourhood_created(
        session: AsyncSession, message: identity_ev.NeighbourhoodCreated, event: ReceivedEvent
    ) -> None:
        await regions.record_neighbourhood(session, message, event)
        await service.ensure_default_team(session, message.neighbourhood_id)

    async def member_verified(session: AsyncSession, message: identity_ev.MemberVerified, _: ReceivedEvent) -> None:
        await service.record_person(session, message.person_id, message.display_name)

    async def person_updated(
        session: AsyncSession, message: identity_ev.PersonProfileUpdated, _: ReceivedEvent
    ) -> None:
        await service.record_person(session, message.person_id, message.display_name)

    async def member_left(session: AsyncSession, message: identity_ev.MemberLeft, _: ReceivedEvent) -> None:
        await service.end_memberships(session, message.person_id, message.neighbourhood_id)

    async def prefetch_people(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        kinds = {MEMBER_VERIFIED: identity_ev.MemberVerified, PERSON_UPDATED: identity_ev.PersonProfileUpdated}
        await service.prefetch_people(session, (message.person_id for message in peeked(events, kinds)))

    return [
        ConsumerSpec(
            name="volunteers-regions",
            stream="IDENTITY",
            subjects=[regions.NEIGHBOURHOOD_CREATED],
            handler=route({regions.NEIGHBOURHOOD_CREATED: (identity_ev.NeighbourhoodCreated, neighbourhood_created)}),
        ),
        ConsumerSpec(
            name="volunteers-people",
            stream="IDENTITY",
            subjects=[MEMBER_VERIFIED, MEMBER_LEFT, PERSON_UPDATED, RESIDENTS_IMPORTED],
            handler=route(
                {
                    MEMBER_VERIFIED: (identity_ev.MemberVerified, member_verified),
                    PERSON_UPDATED: (identity_ev.PersonProfileUpdated, person_updated),
                    MEMBER_LEFT: (identity_ev.MemberLeft, member_left),
                }
            ),
            # A bulk import of residents arrives here by the hundred thousand: their people rows are read
            # in one statement per batch and written in one at its commit.
            prefetch=prefetch_people,
            flush_each=False,
        ),
    ]
