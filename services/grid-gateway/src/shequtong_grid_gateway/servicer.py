"""gRPC ⇄ domain translation for grid-gateway (the operators' view)."""

from __future__ import annotations

import grpc
from sqlalchemy.ext.asyncio import AsyncSession

from shequtong.common.v1 import common_pb2
from shequtong.gridgateway.v1 import gridgateway_pb2 as pb
from shequtong.gridgateway.v1 import gridgateway_pb2_grpc
from shequtong_grid_gateway.models import DeliveryAttempt, GridUpdate, Ticket
from shequtong_grid_gateway.service import CatalogueView, GridService
from shequtong_kit import auth
from shequtong_kit.errors import InvalidArgument
from shequtong_kit.grpc_server import metadata_value
from shequtong_kit.idempotency import IDEMPOTENCY_METADATA, run_once
from shequtong_kit.pagination import decode_cursor, encode_cursor, page_size
from shequtong_kit.proto import ts


def ticket_to_proto(t: Ticket) -> pb.Ticket:
    return pb.Ticket(
        id=t.id,
        issue_id=t.issue_id,
        external_id=t.external_id or "",
        state=t.state,
        created_at=ts(t.created_at),
        dispatch_id=t.dispatch_id,
        neighbourhood_id=t.neighbourhood_id,
        district_id=t.district_id or "",
        category_code=t.category_code,
        service_code=t.service_code,
        token=t.token or "",
        platform=t.platform,
        attempts=t.attempts,
        next_attempt_at=ts(t.next_attempt_at),
        last_error=t.last_error,
        failure_code=t.failure_code,
        sent_at=ts(t.sent_at),
        updated_at=ts(t.updated_at),
        last_update_id=t.last_update_id or "",
        last_update_at=ts(t.last_update_at),
        agency=t.agency,
        expected_at=ts(t.expected_at),
        description=t.description,
        address=t.address,
    )


def attempt_to_proto(a: DeliveryAttempt) -> pb.DeliveryAttempt:
    return pb.DeliveryAttempt(
        number=a.number,
        started_at=ts(a.started_at),
        duration_ms=a.duration_ms,
        outcome=a.outcome,
        http_status=a.http_status,
        error=a.error,
        external_id=a.external_id,
        token=a.token,
    )


def update_to_proto(u: GridUpdate) -> pb.GridUpdate:
    return pb.GridUpdate(
        update_id=u.update_id,
        service_request_id=u.service_request_id,
        status=u.status,
        external_status_code=u.external_status_code,
        state=u.state or "",
        description=u.description,
        media_url=u.media_url,
        updated_at=ts(u.updated_at),
        received_at=ts(u.received_at),
        source=u.source,
        outcome=u.outcome,
    )


def catalogue_to_proto(view: CatalogueView) -> pb.GetCatalogueResponse:
    return pb.GetCatalogueResponse(
        district_id=view.district_id,
        source=view.source.source if view.source else "none",
        loaded_at=ts(view.source.loaded_at) if view.source else None,
        services=[
            pb.Service(
                service_code=s.service_code,
                service_name=s.service_name,
                group=s.group_name,
                description=s.description,
                keywords=s.keywords,
                type=s.type,
            )
            for s in view.services
        ],
        categories=[
            pb.CategoryMapping(category_code=m.category_code, service_code=m.service_code) for m in view.categories
        ],
    )


class GridGatewayServicer(gridgateway_pb2_grpc.GridGatewayServiceServicer):
    def __init__(self, service: GridService) -> None:
        self.service = service

    async def GetTicket(self, request: pb.GetTicketRequest, context: grpc.aio.ServicerContext) -> pb.GetTicketResponse:
        detail = await self.service.get_ticket(auth.current(), request.id)
        return pb.GetTicketResponse(
            ticket=ticket_to_proto(detail.ticket),
            attempts=[attempt_to_proto(a) for a in detail.attempts],
            updates=[update_to_proto(u) for u in detail.updates],
            attempt_count=detail.attempt_count,
        )

    async def ListTickets(
        self, request: pb.ListTicketsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTicketsResponse:
        principal = auth.current()
        limit = page_size(request.page.page_size)
        cursor = decode_cursor(request.page.cursor)
        if cursor is not None and (len(cursor) != 1 or not isinstance(cursor[0], str)):
            raise InvalidArgument("cursor is not one we issued", code="cursor_invalid")
        found = await self.service.list_tickets(
            principal,
            state=request.state,
            district_id=request.district_id,
            issue_id=request.issue_id,
            dispatch_id=request.dispatch_id,
            after=cursor[0] if cursor else None,
            limit=limit + 1,
        )
        more = len(found) > limit
        found = found[:limit]
        return pb.ListTicketsResponse(
            tickets=[ticket_to_proto(t) for t in found],
            page=common_pb2.PageInfo(next_cursor=encode_cursor(found[-1].id) if more else "", has_more=more),
        )

    async def RetryTicket(
        self, request: pb.RetryTicketRequest, context: grpc.aio.ServicerContext
    ) -> pb.RetryTicketResponse:
        principal = auth.current()

        async def work(session: AsyncSession) -> pb.RetryTicketResponse:
            ticket = await self.service.retry_ticket(session, principal, request.id)
            return pb.RetryTicketResponse(ticket=ticket_to_proto(ticket))

        reply: pb.RetryTicketResponse = await run_once(
            self.service.sessions,
            metadata_value(context, IDEMPOTENCY_METADATA),
            f"RetryTicket:{principal.subject}",
            request,
            pb.RetryTicketResponse,
            work,
            self.service.clock,
        )
        return reply

    async def GetCircuits(
        self, request: pb.GetCircuitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCircuitsResponse:
        views = await self.service.circuits(auth.current())
        return pb.GetCircuitsResponse(
            circuits=[
                pb.Circuit(
                    platform=v.breaker.platform,
                    state=v.breaker.state,
                    consecutive_failures=v.breaker.consecutive_failures,
                    opened_at=ts(v.breaker.opened_at),
                    retry_at=ts(v.breaker.retry_at),
                    last_error=v.breaker.last_error,
                    instance=self.service.instance,
                    pending_tickets=v.pending,
                    oldest_pending_at=ts(v.oldest_pending_at),
                    failed_tickets=v.failed,
                )
                for v in views
            ]
        )

    async def GetCatalogue(
        self, request: pb.GetCatalogueRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCatalogueResponse:
        return catalogue_to_proto(await self.service.get_catalogue(auth.current(), request.district_id.strip()))

    async def ReloadCatalogue(
        self, request: pb.ReloadCatalogueRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReloadCatalogueResponse:
        views = await self.service.reload_catalogue(auth.current())
        return pb.ReloadCatalogueResponse(catalogues=[catalogue_to_proto(v) for v in views])
