"""JetStream handlers of issues: every event it reacts to, idempotent through the kit's inbox and through
unique constraints of its own (one issue per post, one application per grid update)."""

from __future__ import annotations

from shequtong.events.v1 import boards_events_pb2 as boards_ev
from shequtong.events.v1 import grid_events_pb2 as grid_ev
from shequtong_issues.service import IssuesService
from shequtong_kit import regions
from shequtong_kit.consumer import ConsumerSpec, route

POST_CREATED = "boards.post.created"
TICKET_SENT = "grid.ticket.sent"
TICKET_STATUS_CHANGED = "grid.ticket.status_changed"
TICKET_FAILED = "grid.ticket.failed"


def consumer_specs(service: IssuesService) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            name="issues-regions",
            stream="IDENTITY",
            subjects=[regions.NEIGHBOURHOOD_CREATED],
            handler=route(dict(regions.ROUTES)),
        ),
        ConsumerSpec(
            name="issues-collection",
            stream="BOARDS",
            subjects=[POST_CREATED],
            handler=route({POST_CREATED: (boards_ev.PostCreated, service.collect_post)}),
        ),
        ConsumerSpec(
            name="issues-grid-status",
            stream="GRID",
            subjects=[TICKET_SENT, TICKET_STATUS_CHANGED, TICKET_FAILED],
            handler=route(
                {
                    TICKET_SENT: (grid_ev.TicketSent, service.grid_sent),
                    TICKET_STATUS_CHANGED: (grid_ev.TicketStatusChanged, service.grid_status),
                    TICKET_FAILED: (grid_ev.TicketFailed, service.grid_failed),
                }
            ),
        ),
    ]
