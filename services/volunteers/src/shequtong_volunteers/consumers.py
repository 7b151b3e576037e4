"""JetStream handlers of volunteers: every event it reacts to, idempotent through the kit's inbox and,
where it matters, through unique constraints (one default team per neighbourhood, one person row)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong_kit import packs, regions
from shequtong_kit.consumer import ConsumerSpec, ReceivedEvent, opened, route
from shequtong_volunteers.service import VolunteersService

MEMBER_VERIFIED = "identity.membership.verified"
MEMBER_LEFT = "identity.membership.left"
PERSON_UPDATED = "identity.person.updated"
# An import's residents: their verifications, packed (`opened` opens it).
RESIDENTS_IMPORTED = packs.RESIDENTS_IMPORTED
# What the people consumer reads of each event it takes (a pack's items included).
PEOPLE = {
    MEMBER_VERIFIED: identity_ev.MemberVerified,
    PERSON_UPDATED: identity_ev.PersonProfileUpdated,
    MEMBER_LEFT: identity_ev.MemberLeft,
}


def consumer_specs(service: VolunteersService) -> list[ConsumerSpec]:
    async def neighbourhood_created(
        session: AsyncSession, message: identity_ev.NeighbourhoodCreated, event: ReceivedEvent
    ) -> None:
        await regions.record_neighbourhood(session, message, event)
        await service.ensure_default_team(session, message.neighbourhood_id)

    async def people(session: AsyncSession, event: ReceivedEvent) -> None:
        """Display names from verifications and profile updates (an import's residents: a pack of them,
        recorded together), and a resident leaving their neighbourhood's teams."""
        named: list[tuple[str, str]] = []
        for subject, message in opened(event, PEOPLE):
            if subject == MEMBER_LEFT:
                await service.end_memberships(session, message.person_id, message.neighbourhood_id)
            else:
                named.append((message.person_id, message.display_name))
        await service.record_people(session, named)

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
            handler=people,
            # A bulk import of residents arrives here by the hundred thousand: the batch's names are written
            # in one statement at its commit (a pack alone in its batch: in one when its handler returns).
            flush_each=False,
        ),
    ]
