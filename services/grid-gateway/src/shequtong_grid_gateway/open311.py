"""Open311 GeoReport v2 adapter (with FixMyStreet's servicerequestupdates extension) over httpx."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from shequtong_grid_gateway.domain.catalogue import CatalogueError, CatalogueService, parse_services
from shequtong_grid_gateway.domain.delivery import Verdict, classify_status
from shequtong_grid_gateway.domain.tickets import Submission, short_reason
from shequtong_grid_gateway.domain.webhook import IncomingUpdate, parse_datetime, parse_update
from shequtong_grid_gateway.platforms import Accepted, PlatformError, RequestStatus

log = logging.getLogger(__name__)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _error_text(response: httpx.Response) -> str:
    """Open311 errors are [{"code", "description"}]; keep the descriptions, nothing else."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    items = body if isinstance(body, list) else [body]
    texts = [str(i.get("description", "")).strip() for i in items if isinstance(i, dict)]
    texts = [t for t in texts if t]
    if not texts:
        return f"HTTP {response.status_code}"
    return short_reason(f"HTTP {response.status_code}: " + "; ".join(texts))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _optional_datetime(raw: Any) -> datetime | None:
    try:
        return parse_datetime(raw).astimezone(UTC)
    except (ValueError, TypeError):
        return None


class Open311Platform:
    """One platform at `base_url` (e.g. https://grid.example.gov.cn/open311/v2)."""

    def __init__(
        self,
        name: str,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        jurisdiction_id: str = "",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._jurisdiction = jurisdiction_id
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            headers={"Accept": "application/json", "User-Agent": "shequtong-grid-gateway/1"},
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )
        if self._own_client:
            try:
                from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

                HTTPXClientInstrumentor.instrument_client(self._client)
            except Exception:  # noqa: S110 - tracing is optional, delivery is not
                pass

    def _url(self, path: str) -> str:
        return f"{self._base}/{path}"

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._client.request(method, self._url(path), **kwargs)
        except httpx.TimeoutException:
            raise PlatformError(Verdict.TRANSIENT, "timeout") from None
        except httpx.HTTPError as exc:
            raise PlatformError(Verdict.TRANSIENT, f"network error: {type(exc).__name__}") from None

    def _raise_for(self, response: httpx.Response) -> None:
        verdict = classify_status(response.status_code)
        if verdict is not Verdict.ACCEPTED:
            raise PlatformError(verdict, _error_text(response), response.status_code, _retry_after(response))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise PlatformError(Verdict.TRANSIENT, "the platform answered with no JSON", response.status_code) from None

    # --- create -------------------------------------------------------------------------------
    def form(self, submission: Submission) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = [
            ("api_key", self._api_key),
            ("service_code", submission.service_code),
            ("description", submission.description),
        ]
        if self._jurisdiction:
            fields.append(("jurisdiction_id", self._jurisdiction))
        where = submission.location
        if where.lat is not None and where.long is not None:
            fields += [("lat", f"{where.lat:.7f}"), ("long", f"{where.long:.7f}")]
        if where.address:
            fields.append(("address_string", where.address))
        if submission.media_url:
            fields.append(("media_url", submission.media_url))
        fields += [(f"attribute[{code}]", value) for code, value in submission.attributes.items()]
        return fields

    async def submit(self, submission: Submission) -> Accepted:
        response = await self._call(
            "POST",
            "requests.json",
            content=urlencode(self.form(submission)).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        self._raise_for(response)
        body = self._json(response)
        first = body[0] if isinstance(body, list) and body else body
        if not isinstance(first, dict):
            raise PlatformError(Verdict.TRANSIENT, "the platform answered without a request", response.status_code)
        request_id = str(first.get("service_request_id") or "").strip() or None
        token = str(first.get("token") or "").strip() or None
        if request_id is None and token is None:
            raise PlatformError(
                Verdict.TRANSIENT, "the platform answered without service_request_id or token", response.status_code
            )
        return Accepted(request_id, token, response.status_code)

    async def resolve_token(self, token: str) -> str | None:
        response = await self._call("GET", f"tokens/{quote(token, safe='')}.json")
        if response.status_code == 404:
            return None
        self._raise_for(response)
        body = self._json(response)
        first = body[0] if isinstance(body, list) and body else body
        if isinstance(first, dict) and first.get("service_request_id"):
            return str(first["service_request_id"]).strip()
        return None

    # --- status back --------------------------------------------------------------------------
    async def fetch_updates(
        self, since: datetime | None, service_request_ids: Sequence[str] = ()
    ) -> list[IncomingUpdate]:
        params: dict[str, str] = {}
        if since is not None:
            params["start_date"] = _iso(since)
        if service_request_ids:
            params["service_request_id"] = ",".join(service_request_ids)
        response = await self._call("GET", "servicerequestupdates.json", params=params)
        self._raise_for(response)
        body = self._json(response)
        if not isinstance(body, list):
            raise PlatformError(Verdict.TRANSIENT, "servicerequestupdates is not a list", response.status_code)
        updates, skipped = [], 0
        for item in body:
            try:
                updates.append(parse_update(item))
            except (ValueError, TypeError, AttributeError):
                skipped += 1
        if skipped:
            log.warning("unusable updates skipped", extra={"platform": self.name, "skipped": skipped})
        return updates

    async def fetch_requests(self, service_request_ids: Sequence[str]) -> list[RequestStatus]:
        if not service_request_ids:
            return []
        response = await self._call(
            "GET", "requests.json", params={"service_request_id": ",".join(service_request_ids)}
        )
        self._raise_for(response)
        body = self._json(response)
        if not isinstance(body, list):
            raise PlatformError(Verdict.TRANSIENT, "requests is not a list", response.status_code)
        found = []
        for item in body:
            if not isinstance(item, dict) or not item.get("service_request_id"):
                continue
            found.append(
                RequestStatus(
                    service_request_id=str(item["service_request_id"]),
                    status=str(item.get("status") or "").lower(),
                    updated_at=_optional_datetime(item.get("updated_datetime")),
                    agency=str(item.get("agency_responsible") or "")[:200],
                    expected_at=_optional_datetime(item.get("expected_datetime")),
                    requested_at=_optional_datetime(item.get("requested_datetime")),
                )
            )
        return found

    async def fetch_services(self) -> tuple[CatalogueService, ...]:
        response = await self._call("GET", "services.json")
        self._raise_for(response)
        try:
            return parse_services(self._json(response))
        except CatalogueError as exc:
            raise PlatformError(Verdict.TRANSIENT, f"services.json unusable: {exc}", response.status_code) from None

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
