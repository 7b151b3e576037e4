"""JetStream handlers of boards: every event it reacts to, idempotent through the kit's inbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong_boards.service import BoardsService
from shequtong_kit import regions
from shequtong_kit.consumer import ConsumerSpec, ReceivedEvent, route


def consumer_specs(service: BoardsService) -> list[ConsumerSpec]:
    async def neighbourhood_created(
        session: AsyncSession, message: identity_ev.NeighbourhoodCreated, event: ReceivedEvent
    ) -> None:
        await regions.record_neighbourhood(session, message, event)
        await service.open_boards_for(session, message.neighbourhood_id)

    return [
        ConsumerSpec(
            name="boards-neighbourhoods",
            stream="IDENTITY",
            subjects=[regions.NEIGHBOURHOOD_CREATED],
            handler=route({regions.NEIGHBOURHOOD_CREATED: (identity_ev.NeighbourhoodCreated, neighbourhood_created)}),
        )
    ]
