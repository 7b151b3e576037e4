"""JetStream handlers of identity: the volunteer badge follows the volunteers service's events.

Idempotent twice over: the kit's inbox skips a redelivered event id, and the volunteer records (keyed by
the volunteers service's volunteer id) plus the unique active grant make a replayed copy change nothing.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import volunteers_events_pb2 as vol_ev
from shequtong_identity.domain import badges
from shequtong_identity.service import IdentityService
from shequtong_kit import packs
from shequtong_kit.consumer import ConsumerSpec, PoisonMessage, ReceivedEvent, route

VOLUNTEER_APPROVED = "volunteers.volunteer.approved"
VOLUNTEER_LEFT = "volunteers.volunteer.left"
# An import's volunteers: their approvals, packed (`route` opens it).
VOLUNTEERS_IMPORTED = packs.VOLUNTEERS_IMPORTED

# The badge events a consumer transaction's handlers took, in order, for its `before_commit`.
_BADGE_EVENTS = "identity.volunteer_badge_events"


def _taken(session: AsyncSession) -> list[badges.VolunteerEvent]:
    taken: list[badges.VolunteerEvent] = session.info.setdefault(_BADGE_EVENTS, [])
    return taken


def consumer_specs(service: IdentityService) -> list[ConsumerSpec]:
    async def approved(session: AsyncSession, message: vol_ev.VolunteerApproved, _event: ReceivedEvent) -> None:
        if not (message.volunteer_id and message.person_id and message.neighbourhood_id):
            raise PoisonMessage("a volunteer approval without volunteer, person or neighbourhood")
        _taken(session).append(
            badges.approval(message.volunteer_id, message.person_id, message.neighbourhood_id, message.team_id)
        )

    async def left(session: AsyncSession, message: vol_ev.VolunteerLeft, _event: ReceivedEvent) -> None:
        if not (message.volunteer_id and message.person_id and message.neighbourhood_id):
            raise PoisonMessage("a volunteer departure without volunteer, person or neighbourhood")
        _taken(session).append(badges.departure(message.volunteer_id, message.person_id, message.neighbourhood_id))

    async def badges_of_the_batch(session: AsyncSession) -> None:
        await service.volunteer_events(session, session.info.pop(_BADGE_EVENTS, None) or [])

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
            # An import of volunteers sends approvals by the hundred thousand: the handlers only take each
            # event, and the transaction's events are decided together before its commit — the badge rule's
            # rows read once, its writes one statement per table (a failure there, a poisoned event's
            # included, sends the batch back one event per transaction, where each runs this alone).
            before_commit=badges_of_the_batch,
            # The batch's events (`Outbox.add`) are written at its commit, runs of grants packed.
            flush_each=False,
        )
    ]
