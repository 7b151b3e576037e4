"""JetStream handlers of grid-gateway: every event it reacts to, idempotent through the kit's
inbox and, for dispatch requests, the unique dispatch_id of tickets."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import identity_events_pb2 as identity_ev
from shequtong.events.v1 import issues_events_pb2 as issues_ev
from shequtong_grid_gateway.service import GridService
from shequtong_kit import regions
from shequtong_kit.consumer import ConsumerSpec, ReceivedEvent, route

DISPATCH_REQUESTED = "issues.issue.dispatch_requested"


def consumer_specs(service: GridService) -> list[ConsumerSpec]:
    async def neighbourhood_created(
        session: AsyncSession, message: identity_ev.NeighbourhoodCreated, _event: ReceivedEvent
    ) -> None:
        await service.neighbourhood_known(session, message)

    async def dispatch_requested(
        session: AsyncSession, message: issues_ev.IssueDispatchRequested, _event: ReceivedEvent
    ) -> None:
        await service.accept_dispatch(session, message)

    return [
        ConsumerSpec(
            name="grid-gateway-regions",
            stream="IDENTITY",
            subjects=[regions.NEIGHBOURHOOD_CREATED],
            handler=route({regions.NEIGHBOURHOOD_CREATED: (identity_ev.NeighbourhoodCreated, neighbourhood_created)}),
        ),
        ConsumerSpec(
            name="grid-gateway-dispatches",
            stream="ISSUES",
            subjects=[DISPATCH_REQUESTED],
            handler=route({DISPATCH_REQUESTED: (issues_ev.IssueDispatchRequested, dispatch_requested)}),
            max_ack_pending=500,
        ),
    ]
