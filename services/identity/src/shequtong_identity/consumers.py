"""JetStream handlers of identity: the volunteer badge follows the volunteers service's events.

Idempotent twice over: the kit's inbox skips a redelivered event id, and the volunteer records (keyed by
the volunteers service's volunteer id) plus the unique active grant make a replayed copy change nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import volunteers_events_pb2 as vol_ev
from shequtong_identity.service import IdentityService
from shequtong_kit import packs
from shequtong_kit.consumer import ConsumerSpec, PoisonMessage, ReceivedEvent, peeked, route

VOLUNTEER_APPROVED = "volunteers.volunteer.approved"
VOLUNTEER_LEFT = "volunteers.volunteer.left"
# An import's volunteers: their approvals, packed (`route` opens it).
VOLUNTEERS_IMPORTED = packs.VOLUNTEERS_IMPORTED


def consumer_specs(service: IdentityService) -> list[ConsumerSpec]:
    async def approved(session: AsyncSession, message: vol_ev.VolunteerApproved, _event: ReceivedEvent) -> None:
        if not (message.volunteer_id and message.person_id and message.neighbourhood_id):
            raise PoisonMessage("a volunteer approval without volunteer, person or neighbourhood")
        await service.volunteer_approved(
            session, message.volunteer_id, message.person_id, message.neighbourhood_id, message.team_id
        )

    async def left(session: AsyncSession, message: vol_ev.VolunteerLeft, _event: ReceivedEvent) -> None:
        if not (message.volunteer_id and message.person_id and message.neighbourhood_id):
            raise PoisonMessage("a volunteer departure without volunteer, person or neighbourhood")
        await service.volunteer_left(session, message.volunteer_id, message.person_id, message.neighbourhood_id)

    async def badge_batch(session: AsyncSession, events: Sequence[ReceivedEvent]) -> None:
        kinds = {VOLUNTEER_APPROVED: vol_ev.VolunteerApproved, VOLUNTEER_LEFT: vol_ev.VolunteerLeft}
        messages = peeked(events, kinds)
        await service.volunteer_badge_batch(
            session,
            [m.volunteer_id for m in messages],
            [m.person_id for m in messages],
            [m.neighbourhood_id for m in messages],
        )

    return [
        ConsumerSpec(
            name="identity-volunteer-badges",
            stream="VOLUNTEERS",
            subjects=[VOLUNTEER_APPROVED, VOLUNTEER_LEFT, VOLUNTEERS_IMPORTED],
            handler=route(
                {
                    VOLUNTEER_APPROVED: (vol_ev.VolunteerApproved, approved),
                    VOLUNTEER_LEFT: (vol_ev.VolunteerLeft, left),
                }
            ),
            # An import of volunteers sends approvals by the hundred thousand: the badge rule's rows are
            # read once per batch and its writes flushed at the commit.
            prefetch=badge_batch,
            flush_each=False,
        )
    ]
