"""The HTTP side of grid-gateway, in the same process: the grid platform's pushed updates
(POST /v1/grid/servicerequestupdates) and the /healthz, /readyz probes.

A push is accepted only with our api_key and a fresh HMAC signature over the exact body; a
refusal records nothing. An accepted one goes through the same `apply_update` as polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from shequtong_grid_gateway.domain.webhook import Refused, check_api_key, parse_body, parse_update, verify_signature
from shequtong_grid_gateway.service import GridService
from shequtong_grid_gateway.settings import GridGatewaySettings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/v1/grid/servicerequestupdates"
PROBLEM = "application/problem+json"


def _problem(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": f"https://shequtong.org/problems/{code}", "status": status, "code": code, "detail": detail},
        status_code=status,
        media_type=PROBLEM,
    )


async def _read_limited(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise Refused(413, "body_too_large", f"bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, "body_too_large", f"bodies are limited to {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_http_app(
    service: GridService,
    settings: GridGatewaySettings,
    ready: Callable[[], Awaitable[dict[str, bool]]],
) -> FastAPI:
    app = FastAPI(
        title="Shequtong grid gateway (webhook)",
        description="Signed status updates from the district grid platform.",
        version="1.0.0",
        docs_url=None,
        redoc_url=None,
    )
    platform = settings.grid_platform_name

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = await ready()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    @app.post(WEBHOOK_PATH)
    async def receive(request: Request) -> JSONResponse:
        try:
            body = await _read_limited(request, settings.grid_webhook_max_body_bytes)
            verify_signature(
                settings.grid_webhook_secret,
                request.headers.get("x-grid-timestamp"),
                request.headers.get("x-grid-signature"),
                body,
                service.clock.now().timestamp(),
                settings.grid_webhook_window_seconds,
            )
            data = parse_body(body, request.headers.get("content-type", ""))
            check_api_key(settings.grid_webhook_api_key, data.get("api_key"))
            try:
                update = parse_update(data)
            except (ValueError, TypeError):
                raise Refused(
                    400, "update_invalid", "the update lacks update_id, service_request_id or a dated time"
                ) from None
        except Refused as refused:
            service.metrics.webhook_refused.add(1, {"reason": refused.code})
            log.warning(
                "pushed update refused",
                extra={"reason": refused.code, "delivery": request.headers.get("x-grid-delivery", "")[:40]},
            )
            return _problem(refused.status, refused.code, refused.detail)
        try:
            outcome = await service.apply_update(platform, update, "webhook")
        except (SQLAlchemyError, OSError) as exc:
            log.warning("pushed update not stored", extra={"error": type(exc).__name__})
            return _problem(503, "unavailable", "not stored; send it again later")
        return JSONResponse({"update_id": update.update_id, "outcome": outcome})

    return app


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service that owns the signals: it must not take SIGTERM for itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return


class _NoColour(logging.Filter):
    """uvicorn adds an ANSI-coloured copy of some messages; JSON logs want the plain one only."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.pop("color_message", None)
        return True


class HttpServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        for name in ("uvicorn", "uvicorn.error"):
            logging.getLogger(name).addFilter(_NoColour())
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off", server_header=False
        )
        self.server = _EmbeddedServer(config)

    async def run(self) -> None:
        task = asyncio.create_task(self.server.serve(), name="http-serve")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            self.server.should_exit = True
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)
            raise


def readiness(engine: Any, nats: Callable[[], Any]) -> Callable[[], Awaitable[dict[str, bool]]]:
    """Ready when the database answers and NATS is connected (not when the grid is up: a grid
    outage is what the queue is for)."""
    from sqlalchemy import text

    async def check() -> dict[str, bool]:
        db_ok = False
        try:
            async with asyncio.timeout(2):
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            db_ok = True
        except Exception:  # noqa: S110 - reported as not ready
            pass
        nc = nats()
        return {"database": db_ok, "nats": bool(nc is not None and nc.is_connected)}

    return check
