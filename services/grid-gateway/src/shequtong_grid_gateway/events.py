"""grid-gateway's outgoing events (subjects `grid.ticket.<event>`), written into the caller's
transaction through the outbox."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.events.v1 import grid_events_pb2 as ev
from shequtong_grid_gateway.models import GridUpdate, Ticket
from shequtong_kit.outbox import Outbox
from shequtong_kit.proto import ts

TICKET_SENT = "grid.ticket.sent"
TICKET_STATUS_CHANGED = "grid.ticket.status_changed"
TICKET_FAILED = "grid.ticket.failed"
TICKET_IDENTIFIED = "grid.ticket.identified"


async def ticket_sent(outbox: Outbox, session: AsyncSession, ticket: Ticket) -> None:
    await outbox.add(
        session,
        TICKET_SENT,
        ev.TicketSent(
            ticket_id=ticket.id,
            issue_id=ticket.issue_id,
            dispatch_id=ticket.dispatch_id,
            external_id=ticket.external_id or ticket.token or "",
            sent_at=ts(ticket.sent_at),
            token=ticket.token or "",
            neighbourhood_id=ticket.neighbourhood_id,
            service_code=ticket.service_code,
        ),
    )


async def ticket_identified(outbox: Outbox, session: AsyncSession, ticket: Ticket) -> None:
    await outbox.add(
        session,
        TICKET_IDENTIFIED,
        ev.TicketIdentified(
            ticket_id=ticket.id,
            issue_id=ticket.issue_id,
            dispatch_id=ticket.dispatch_id,
            external_id=ticket.external_id or "",
            token=ticket.token or "",
            identified_at=ts(ticket.updated_at),
            neighbourhood_id=ticket.neighbourhood_id,
        ),
    )


async def ticket_status_changed(
    outbox: Outbox, session: AsyncSession, ticket: Ticket, update: GridUpdate, previous_state: str
) -> None:
    await outbox.add(
        session,
        TICKET_STATUS_CHANGED,
        ev.TicketStatusChanged(
            ticket_id=ticket.id,
            issue_id=ticket.issue_id,
            dispatch_id=ticket.dispatch_id,
            external_id=ticket.external_id or "",
            state=update.state or "",
            grid_update_id=update.update_id,
            description=update.description,
            agency=update.agency or ticket.agency,
            occurred_at=ts(update.updated_at),
            previous_state=previous_state,
            grid_status=update.status,
            external_status_code=update.external_status_code,
            media_url=update.media_url,
            neighbourhood_id=ticket.neighbourhood_id,
        ),
    )


async def ticket_failed(outbox: Outbox, session: AsyncSession, ticket: Ticket, http_status: int = 0) -> None:
    await outbox.add(
        session,
        TICKET_FAILED,
        ev.TicketFailed(
            ticket_id=ticket.id,
            issue_id=ticket.issue_id,
            dispatch_id=ticket.dispatch_id,
            reason=ticket.last_error,
            failed_at=ts(ticket.failed_at),
            code=ticket.failure_code,
            http_status=http_status,
            neighbourhood_id=ticket.neighbourhood_id,
            attempts=ticket.attempts,
        ),
    )
