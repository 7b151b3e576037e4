"""The grid bridge, operators' view: tickets dispatched to the district grid platform (派单),
their delivery attempts and the grid's updates, retries, the circuit breaker and the catalogue.
For platform operators and district staff; grid-gateway checks who asks itself."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import Path, Query
from pydantic import BaseModel, Field

from shequtong.common.v1 import common_pb2
from shequtong.gridgateway.v1 import gridgateway_pb2 as pb
from shequtong_api_gateway.deps import SignedIn
from shequtong_api_gateway.routing import gateway_router
from shequtong_kit.proto import from_ts

router = gateway_router(prefix="/v1/grid", tags=["grid"])

TicketState = Literal[
    "pending",
    "sent",
    "accepted",
    "dispatched",
    "handled",
    "closed",
    "rejected",
    "returned",
    "deferred",
    "reopened",
    "failed",
]
TicketId = Path(min_length=1, max_length=36, description="The ticket's id")


class TicketOut(BaseModel):
    id: str = Field(examples=["0193b0c2-7d1e-7c3a-9f00-5a1b2c3d4e5f"])
    issue_id: str
    dispatch_id: str = Field(description="One per issue and escalation")
    neighbourhood_id: str
    district_id: str | None
    state: TicketState = Field(examples=["dispatched"])
    external_id: str | None = Field(description="The grid's service_request_id", examples=["G3FA9C1-000001"])
    token: str | None = Field(description="The grid's token, when it answered with one")
    platform: str
    service_code: str = Field(examples=["01-02"])
    category_code: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    failure_code: str | None = Field(examples=["platform_rejected"])
    sent_at: datetime | None
    last_update_id: str | None
    last_update_at: datetime | None
    agency: str | None = Field(description="Department the grid dispatched it to", examples=["区市容环境事务所"])
    expected_at: datetime | None
    address: str | None
    description: str
    created_at: datetime | None
    updated_at: datetime | None


class AttemptOut(BaseModel):
    number: int
    started_at: datetime | None
    duration_ms: int
    outcome: Literal["sent", "retry", "failed"]
    http_status: int | None
    error: str | None
    external_id: str | None
    token: str | None


class UpdateOut(BaseModel):
    update_id: str
    service_request_id: str
    status: str = Field(examples=["open"])
    external_status_code: str | None = Field(examples=["ACTION_SCHEDULED"])
    state: str | None = Field(description="The ticket state it maps to", examples=["dispatched"])
    description: str
    media_url: str | None
    updated_at: datetime | None
    received_at: datetime | None
    source: Literal["webhook", "poll"]
    outcome: Literal["applied", "stale", "noted", "orphan"]


class TicketDetailOut(TicketOut):
    delivery_attempts: list[AttemptOut]
    attempt_count: int
    updates: list[UpdateOut]


class TicketPage(BaseModel):
    items: list[TicketOut]
    next_cursor: str | None


class CircuitOut(BaseModel):
    platform: str
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    opened_at: datetime | None
    retry_at: datetime | None
    last_error: str | None
    instance: str = Field(description="The replica answering; each keeps its own breaker")
    pending_tickets: int
    oldest_pending_at: datetime | None
    failed_tickets: int


class ServiceOut(BaseModel):
    service_code: str = Field(examples=["01-02"])
    service_name: str = Field(examples=["暴露垃圾"])
    group: str | None
    description: str | None
    keywords: str | None
    type: str | None


class CategoryOut(BaseModel):
    category_code: str
    service_code: str


class CatalogueOut(BaseModel):
    district_id: str | None
    source: Literal["file", "platform", "none"]
    loaded_at: datetime | None
    services: list[ServiceOut]
    categories: list[CategoryOut]


def _opt(value: str) -> str | None:
    return value or None


def ticket_fields(t: pb.Ticket) -> dict[str, object]:
    return {
        "id": t.id,
        "issue_id": t.issue_id,
        "dispatch_id": t.dispatch_id,
        "neighbourhood_id": t.neighbourhood_id,
        "district_id": _opt(t.district_id),
        "state": t.state,
        "external_id": _opt(t.external_id),
        "token": _opt(t.token),
        "platform": t.platform,
        "service_code": t.service_code,
        "category_code": t.category_code,
        "attempts": t.attempts,
        "next_attempt_at": from_ts(t.next_attempt_at),
        "last_error": _opt(t.last_error),
        "failure_code": _opt(t.failure_code),
        "sent_at": from_ts(t.sent_at),
        "last_update_id": _opt(t.last_update_id),
        "last_update_at": from_ts(t.last_update_at),
        "agency": _opt(t.agency),
        "expected_at": from_ts(t.expected_at),
        "address": _opt(t.address),
        "description": t.description,
        "created_at": from_ts(t.created_at),
        "updated_at": from_ts(t.updated_at),
    }


def catalogue_out(reply: pb.GetCatalogueResponse) -> CatalogueOut:
    return CatalogueOut(
        district_id=_opt(reply.district_id),
        source=reply.source,  # type: ignore[arg-type]
        loaded_at=from_ts(reply.loaded_at),
        services=[
            ServiceOut(
                service_code=s.service_code,
                service_name=s.service_name,
                group=_opt(s.group),
                description=_opt(s.description),
                keywords=_opt(s.keywords),
                type=_opt(s.type),
            )
            for s in reply.services
        ],
        categories=[CategoryOut(category_code=c.category_code, service_code=c.service_code) for c in reply.categories],
    )


@router.get("/tickets", response_model=TicketPage, summary="Grid tickets, newest first, by state")
async def list_tickets(
    caller: SignedIn,
    state: TicketState | None = None,
    district_id: str | None = Query(default=None, max_length=36),
    issue_id: str | None = Query(default=None, max_length=64),
    dispatch_id: str | None = Query(default=None, max_length=64),
    cursor: str | None = Query(default=None, max_length=200),
    page_size: int = Query(default=20, ge=1, le=100),
) -> TicketPage:
    reply = await caller.call(
        caller.clients.grid_gateway.ListTickets,
        pb.ListTicketsRequest(
            state=state or "",
            district_id=district_id or "",
            issue_id=issue_id or "",
            dispatch_id=dispatch_id or "",
            page=common_pb2.PageRequest(cursor=cursor or "", page_size=page_size),
        ),
    )
    return TicketPage(
        items=[TicketOut(**ticket_fields(t)) for t in reply.tickets],  # type: ignore[arg-type]
        next_cursor=reply.page.next_cursor or None,
    )


@router.get(
    "/tickets/{ticket_id}",
    response_model=TicketDetailOut,
    summary="One ticket with its delivery attempts and the grid's updates",
)
async def get_ticket(caller: SignedIn, ticket_id: str = TicketId) -> TicketDetailOut:
    reply = await caller.call(caller.clients.grid_gateway.GetTicket, pb.GetTicketRequest(id=ticket_id))
    return TicketDetailOut(
        **ticket_fields(reply.ticket),  # type: ignore[arg-type]
        attempt_count=reply.attempt_count,
        delivery_attempts=[
            AttemptOut(
                number=a.number,
                started_at=from_ts(a.started_at),
                duration_ms=a.duration_ms,
                outcome=a.outcome,  # type: ignore[arg-type]
                http_status=a.http_status or None,
                error=_opt(a.error),
                external_id=_opt(a.external_id),
                token=_opt(a.token),
            )
            for a in reply.attempts
        ],
        updates=[
            UpdateOut(
                update_id=u.update_id,
                service_request_id=u.service_request_id,
                status=u.status,
                external_status_code=_opt(u.external_status_code),
                state=_opt(u.state),
                description=u.description,
                media_url=_opt(u.media_url),
                updated_at=from_ts(u.updated_at),
                received_at=from_ts(u.received_at),
                source=u.source,  # type: ignore[arg-type]
                outcome=u.outcome,  # type: ignore[arg-type]
            )
            for u in reply.updates
        ],
    )


@router.post(
    "/tickets/{ticket_id}/retry",
    response_model=TicketOut,
    summary="Send a failed ticket again (one the platform never took)",
)
async def retry_ticket(caller: SignedIn, ticket_id: str = TicketId) -> TicketOut:
    reply = await caller.call(caller.clients.grid_gateway.RetryTicket, pb.RetryTicketRequest(id=ticket_id))
    return TicketOut(**ticket_fields(reply.ticket))  # type: ignore[arg-type]


@router.get("/circuits", response_model=list[CircuitOut], summary="Circuit breaker and backlog per grid platform")
async def circuits(caller: SignedIn) -> list[CircuitOut]:
    reply = await caller.call(caller.clients.grid_gateway.GetCircuits, pb.GetCircuitsRequest())
    return [
        CircuitOut(
            platform=c.platform,
            state=c.state,  # type: ignore[arg-type]
            consecutive_failures=c.consecutive_failures,
            opened_at=from_ts(c.opened_at),
            retry_at=from_ts(c.retry_at),
            last_error=_opt(c.last_error),
            instance=c.instance,
            pending_tickets=c.pending_tickets,
            oldest_pending_at=from_ts(c.oldest_pending_at),
            failed_tickets=c.failed_tickets,
        )
        for c in reply.circuits
    ]


@router.get("/catalogue", response_model=CatalogueOut, summary="The grid's service catalogue for a district")
async def catalogue(caller: SignedIn, district_id: str | None = Query(default=None, max_length=36)) -> CatalogueOut:
    reply = await caller.call(
        caller.clients.grid_gateway.GetCatalogue, pb.GetCatalogueRequest(district_id=district_id or "")
    )
    return catalogue_out(reply)


@router.post(
    "/catalogue/reload",
    response_model=list[CatalogueOut],
    summary="Load the catalogue again from its file or the platform's services.json (operators)",
)
async def reload_catalogue(caller: SignedIn) -> list[CatalogueOut]:
    reply = await caller.call(caller.clients.grid_gateway.ReloadCatalogue, pb.ReloadCatalogueRequest(), deadline=30.0)
    return [catalogue_out(c) for c in reply.catalogues]
