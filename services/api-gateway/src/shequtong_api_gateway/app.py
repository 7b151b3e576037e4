"""The REST edge: FastAPI app factory. Routes are discovered from `routes/` (every module with a
`router`), so a resource is added by adding one file."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import pkgutil
import uuid
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import ORJSONResponse
from fastapi.telemetry import TelemetryConfig
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shequtong_api_gateway import problems, routes
from shequtong_api_gateway.clients import Clients
from shequtong_api_gateway.deps import parse_networks
from shequtong_api_gateway.routing import add_routes
from shequtong_api_gateway.settings import GatewaySettings
from shequtong_kit.auth import TokenVerifier
from shequtong_kit.grpc_client import identity_jwks_loader
from shequtong_kit.nats_io import connect
from shequtong_kit.revocations import SessionRevocationFollower

log = logging.getLogger(__name__)

DESCRIPTION = """
社区通 Shequtong — the online home of every neighbourhood: real-name residents read notices,
deliberate, volunteer and report problems that the committee, the sub-district and the district grid
platform solve, with every step on record.

Errors are RFC 9457 `application/problem+json` with a stable `code`. Lists use cursor pagination
(`cursor`, `page_size`; the response carries `next_cursor`). Every POST accepts an `Idempotency-Key`.
"""


async def _follow_revocations(nats_url: str, verifier: TokenVerifier) -> None:
    """Ended sessions are refused here too, not only by the services behind (kit revocations)."""
    if not nats_url:
        log.warning("NATS_URL not set: ended sessions are refused by the services only")
        return
    nc = None
    try:
        nc = await connect(nats_url, "api-gateway", connect_timeout=float("inf"))
        await SessionRevocationFollower(nc.jetstream(), verifier).run()
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()


class BodyLimit:
    """Bounds request bodies that declare no Content-Length (chunked): at most `limit` bytes are read
    before the app sees any of it, else 413 `body_too_large` (a declared length is checked below)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(name == b"content-length" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                response = problems.problem_response(
                    Request(scope), 413, "body_too_large", f"request bodies are limited to {self.limit} bytes"
                )
                await response(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestContext:
    """Gives every request its id (the caller's `X-Request-Id`, else a fresh one) in `request.state` and on
    the response, and refuses a declared Content-Length over the limit before the body is read.

    Plain ASGI on purpose: an `@app.middleware("http")` function runs the app in a task of its own behind
    memory streams, which cost every request a visible share of the gateway's CPU."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = (headers.get("x-request-id") or uuid.uuid4().hex)[:64]
        scope.setdefault("state", {})["request_id"] = request_id
        length = headers.get("content-length")
        if length and length.isdigit() and int(length) > self.limit:
            response = problems.problem_response(
                Request(scope), 413, "body_too_large", f"request bodies are limited to {self.limit} bytes"
            )
            await response(scope, receive, self._stamped(send, request_id))
            return
        await self.app(scope, receive, self._stamped(send, request_id))

    @staticmethod
    def _stamped(send: Send, request_id: str) -> Send:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            await send(message)

        return send_with_id


UNTRACED_PATHS = frozenset({"/healthz", "/readyz"})


def _untraced(scope: MutableMapping[str, Any]) -> bool:
    return scope.get("path") in UNTRACED_PATHS


# FastAPI's own OpenTelemetry support: a server span per request, named by its route template once routing
# has chosen it, and the http.server.request.duration histogram. Preferred to the contrib
# instrumentation, whose span naming walked the whole route table before every request (an eighth of
# the gateway's CPU on the home feed). No per-dependency spans (they would cost more than they tell), and
# no log records: validation failures carry the caller's input, which may be personal data.
TELEMETRY: TelemetryConfig = {"operation_spans": False, "logs": False, "exclude": _untraced}


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
        app.state.clients = Clients.connect(settings)
        app.state.verifier = TokenVerifier(await identity_jwks_loader(settings.identity_addr))
        following = asyncio.create_task(_follow_revocations(settings.nats_url, app.state.verifier))
        yield
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await following
        await app.state.clients.close()

    app = FastAPI(
        title="Shequtong API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=ORJSONResponse,
        docs_url="/docs",
        openapi_url="/openapi.json",
        telemetry=TELEMETRY,
    )
    problems.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    app.add_middleware(RequestContext, limit=settings.max_body_bytes)

    for module_info in sorted(pkgutil.iter_modules(routes.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes.__name__}.{module_info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            add_routes(app, router)
    return app
