"""HTTP routes: the Open311 GeoReport v2 surface, and the /_sim control API beside it."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from . import workflow
from .catalogue import load_catalogue
from .engine import CaseNotFound, Clock, Engine, utc_now
from .open311 import Open311Error, parse_datetime, parse_new_request, request_json, update_json
from .settings import Settings
from .store import Store
from .workflow import Action, TransitionError

log = logging.getLogger(__name__)

BANNER = """\
Shequtong grid-platform SIMULATOR — a development and test tool, NOT the real platform.

It stands in for the district grid-management platform (网格化管理平台), the one external
system the project cannot run, speaking Open311 GeoReport v2 plus FixMyStreet's
servicerequestupdates extension. Never point production at it.

Open311:  GET  /services.json            GET /services/{code}.json
          POST /requests.json            GET /requests.json   GET /requests/{id}.json
          GET  /tokens/{token}.json      GET /servicerequestupdates.json?start_date&end_date
Control:  POST /_sim/advance/{id}[?to=stage]   POST /_sim/advance-all
          POST /_sim/reject/{id}  /_sim/return/{id}  /_sim/defer/{id}  /_sim/reopen/{id}
          GET|POST /_sim/mode     GET /_sim/stats     POST /_sim/reset
Health:   GET  /healthz
Docs:     services/grid-gateway/simulator/README.md, /docs (OpenAPI)
"""


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(_engine)]


async def _open311_gate(engine: EngineDep) -> None:
    """'down' and 'slow' apply to the Open311 surface only, so /_sim stays usable."""
    if engine.mode.down:
        engine.store.bump("answered_down")
        raise Open311Error(503, "grid platform unavailable (simulated outage)")
    if engine.mode.slow_seconds > 0:
        await asyncio.sleep(engine.mode.slow_seconds)


def _split(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()] or None


def _date(value: str | None, name: str) -> Any:
    return parse_datetime(value, name) if value else None


open311 = APIRouter(dependencies=[Depends(_open311_gate)], tags=["Open311 GeoReport v2"])


@open311.get("/services.json")
async def list_services(engine: EngineDep) -> list[dict[str, Any]]:
    return [s.listing() for s in engine.catalogue.services]


@open311.get("/services/{service_code}.json")
async def service_definition(service_code: str, engine: EngineDep) -> dict[str, Any]:
    service = engine.catalogue.get(service_code)
    if service is None:
        raise Open311Error(404, f"service_code {service_code!r} not found")
    return service.definition()


@open311.post("/requests.json")
async def create_request(request: Request, engine: EngineDep) -> Response:
    engine.store.bump("posts_received")
    if not engine.mode.fail_after_create and engine.take_injected_failure():
        engine.store.bump("posts_failed_injected")
        raise Open311Error(500, "internal error (simulated)")
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        engine.store.bump("posts_refused")
        raise Open311Error(400, "the body must be application/x-www-form-urlencoded")
    form = await request.form()
    api_key = form.get("api_key") or request.query_params.get("api_key") or ""
    if not isinstance(api_key, str) or not hmac.compare_digest(
        api_key.encode("utf-8"), engine.settings.api_key.encode("utf-8")
    ):
        engine.store.bump("posts_refused")
        raise Open311Error(403, "api_key is missing or not valid")
    items = [(k, v) for k, v in form.multi_items() if k != "api_key"]
    try:
        new = parse_new_request(items, engine.catalogue)  # type: ignore[arg-type]
    except Open311Error:
        engine.store.bump("posts_refused")
        raise
    result = engine.submit(new)
    if engine.mode.fail_after_create and engine.take_injected_failure():
        engine.store.bump("posts_failed_injected")
        raise Open311Error(500, "internal error (simulated, after the request was stored)")
    notice = engine.service_notice(result.request) or None
    if result.token is not None:
        body: dict[str, Any] = {"token": result.token, "service_notice": notice, "account_id": None}
    else:
        body = {
            "service_request_id": result.request.service_request_id,
            "service_notice": notice,
            "account_id": None,
        }
    return JSONResponse([body])


@open311.get("/requests.json")
async def list_requests(
    engine: EngineDep,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> list[dict[str, Any]]:
    statuses = _split(status)
    if statuses and not set(statuses) <= {"open", "closed"}:
        raise Open311Error(400, "status must be open, closed or both")
    found = engine.list_requests(
        ids=_split(service_request_id),
        service_codes=_split(service_code),
        start=_date(start_date, "start_date"),
        end=_date(end_date, "end_date"),
        statuses=statuses,
    )
    offset = engine.settings.utc_offset
    return [request_json(r, offset, engine.service_notice(r)) for r in found]


@open311.get("/requests/{service_request_id}.json")
async def get_request(service_request_id: str, engine: EngineDep) -> list[dict[str, Any]]:
    try:
        r = engine.get(service_request_id)
    except CaseNotFound:
        raise Open311Error(404, f"service_request_id {service_request_id!r} not found") from None
    return [request_json(r, engine.settings.utc_offset, engine.service_notice(r))]


@open311.get("/tokens/{token}.json")
async def lookup_token(token: str, engine: EngineDep) -> list[dict[str, Any]]:
    service_request_id = engine.store.tokens.get(token)
    if service_request_id is None:
        raise Open311Error(404, f"token {token!r} not found")
    return [{"service_request_id": service_request_id, "token": token}]


@open311.get("/servicerequestupdates.json")
async def list_updates(
    engine: EngineDep,
    start_date: str | None = None,
    end_date: str | None = None,
    service_request_id: str | None = None,
) -> list[dict[str, Any]]:
    found = engine.list_updates(
        start=_date(start_date, "start_date"),
        end=_date(end_date, "end_date"),
        ids=_split(service_request_id),
    )
    return [update_json(u, engine.settings.utc_offset) for u in found]


# -- control API ---------------------------------------------------------------------------

control = APIRouter(prefix="/_sim", tags=["simulator control (not Open311)"])

Note = Annotated[str, Query(max_length=500, description="appended to the update's description")]
MediaUrl = Annotated[str | None, Query(description="media_url carried by the update")]


class ModePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    down: bool | None = None
    slow_seconds: float | None = Field(default=None, ge=0, le=120)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    fail_next: int | None = Field(default=None, ge=0)
    fail_after_create: bool | None = None
    response_mode: Literal["id", "token"] | None = None
    duplicate_updates: bool | None = None
    out_of_order: bool | None = None
    webhook_url: str | None = Field(default=None, pattern=r"^(https?://\S+)?$")


def _run_command(engine: Engine, service_request_id: str, action: Action, **kwargs: Any) -> dict[str, Any]:
    try:
        updates = engine.command(service_request_id, action, **kwargs)
    except CaseNotFound:
        raise HTTPException(404, f"service_request_id {service_request_id!r} not found") from None
    except TransitionError as exc:
        raise HTTPException(409, str(exc)) from None
    offset = engine.settings.utc_offset
    r = engine.get(service_request_id)
    return {
        "request": request_json(r, offset, engine.service_notice(r)),
        "updates": [update_json(u, offset) for u in updates],
    }


@control.post("/advance/{service_request_id}")
async def advance(
    service_request_id: str,
    engine: EngineDep,
    to: Annotated[str | None, Query(description="stage to advance to, e.g. closed or 结案")] = None,
    note: Note = "",
    media_url: MediaUrl = None,
) -> dict[str, Any]:
    target = None
    if to:
        try:
            target = workflow.parse_stage(to)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return _run_command(engine, service_request_id, Action.ADVANCE, to=target, note=note, media_url=media_url)


@control.post("/advance-all")
async def advance_all(engine: EngineDep) -> dict[str, Any]:
    updates = engine.advance_all()
    return {
        "advanced": len(updates),
        "updates": [update_json(u, engine.settings.utc_offset) for u in updates],
    }


@control.post("/reject/{service_request_id}")
async def reject(
    service_request_id: str,
    engine: EngineDep,
    reason: Literal["not_responsible", "duplicate"] = "not_responsible",
    note: Note = "",
) -> dict[str, Any]:
    return _run_command(engine, service_request_id, Action.REJECT, note=note, duplicate=reason == "duplicate")


@control.post("/return/{service_request_id}")
async def return_case(service_request_id: str, engine: EngineDep, note: Note = "") -> dict[str, Any]:
    return _run_command(engine, service_request_id, Action.RETURN, note=note)


@control.post("/defer/{service_request_id}")
async def defer(service_request_id: str, engine: EngineDep, note: Note = "") -> dict[str, Any]:
    return _run_command(engine, service_request_id, Action.DEFER, note=note)


@control.post("/reopen/{service_request_id}")
async def reopen(service_request_id: str, engine: EngineDep, note: Note = "") -> dict[str, Any]:
    return _run_command(engine, service_request_id, Action.REOPEN, note=note)


@control.get("/mode")
async def get_mode(engine: EngineDep) -> dict[str, Any]:
    return engine.mode.to_json()


@control.post("/mode")
async def set_mode(patch: ModePatch, engine: EngineDep) -> dict[str, Any]:
    engine.mode.patch(patch.model_dump(exclude_none=True))
    log.info("mode changed", extra={"mode": engine.mode.to_json()})
    return engine.mode.to_json()


@control.get("/stats")
async def stats(engine: EngineDep) -> dict[str, Any]:
    return engine.stats()


@control.post("/reset")
async def reset(engine: EngineDep) -> dict[str, Any]:
    engine.reset()
    return {"reset": True}


# -- assembly ------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, *, clock: Clock = utc_now) -> FastAPI:
    settings = settings or Settings.from_env()
    engine = Engine(settings, load_catalogue(settings.services_file), Store.open(settings.state_file), clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        auto: asyncio.Task[None] | None = None
        if settings.auto_advance_seconds > 0:
            auto = asyncio.create_task(engine.run_auto_advance(), name="auto-advance")
        log.info(
            "grid simulator ready (a test stand-in, not the real grid platform)",
            extra={
                "services": len(engine.catalogue.services),
                "requests": len(engine.store.requests),
                "webhook_url": settings.webhook_url or None,
                "auto_advance_seconds": settings.auto_advance_seconds,
                "response_mode": settings.response_mode,
                "state_file": settings.state_file or None,
            },
        )
        try:
            yield
        finally:
            if auto is not None:
                auto.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await auto
            await engine.pusher.aclose()
            engine.store.save()

    app = FastAPI(
        title="Shequtong grid-platform simulator (development and test tool)",
        description="A stand-in for the district grid platform. Not the real platform.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.engine = engine

    @app.exception_handler(Open311Error)
    async def open311_error(_: Request, exc: Open311Error) -> JSONResponse:
        headers = {"Retry-After": "5"} if exc.code == 503 else None
        return JSONResponse(exc.body(), status_code=exc.code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if request.url.path.startswith("/_sim"):
            return JSONResponse({"detail": jsonable_errors(exc)}, status_code=422)
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return JSONResponse(Open311Error(400, f"{where}: {first['msg']}").body(), status_code=400)

    @app.get("/", response_class=PlainTextResponse, include_in_schema=False)
    async def root() -> str:
        return BANNER

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "role": "grid-platform simulator (test tool)"}

    app.include_router(open311)
    app.include_router(control)
    return app


def jsonable_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
