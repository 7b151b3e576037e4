"""The grid platform as we use it: one interface, one adapter per protocol. A district whose
platform speaks something other than Open311 adds an adapter here, not a fork of the service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shequtong_grid_gateway.domain.catalogue import CatalogueService
from shequtong_grid_gateway.domain.delivery import Verdict
from shequtong_grid_gateway.domain.tickets import Submission
from shequtong_grid_gateway.domain.webhook import IncomingUpdate


@dataclass(frozen=True)
class Accepted:
    """The platform took the request: its id, or a token to exchange for the id later."""

    service_request_id: str | None
    token: str | None
    http_status: int


class PlatformError(Exception):
    """A call that did not succeed, with what it means for the ticket (see domain.delivery)."""

    def __init__(self, verdict: Verdict, reason: str, http_status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.verdict = verdict
        self.reason = reason
        self.http_status = http_status
        self.retry_after = retry_after


@dataclass(frozen=True)
class RequestStatus:
    """One request as the platform lists it (GET requests.json), for the polling backstop."""

    service_request_id: str
    status: str
    updated_at: datetime | None
    agency: str
    expected_at: datetime | None
    requested_at: datetime | None = None


class GridPlatform(Protocol):
    name: str

    async def submit(self, submission: Submission) -> Accepted: ...

    async def resolve_token(self, token: str) -> str | None: ...

    async def fetch_updates(
        self, since: datetime | None, service_request_ids: Sequence[str] = ()
    ) -> list[IncomingUpdate]: ...

    async def fetch_requests(self, service_request_ids: Sequence[str]) -> list[RequestStatus]: ...

    async def fetch_services(self) -> tuple[CatalogueService, ...]: ...

    async def aclose(self) -> None: ...
