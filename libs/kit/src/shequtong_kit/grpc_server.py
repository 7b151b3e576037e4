"""The grpc.aio server every service runs: official health and reflection, auth and error interceptors.

Telemetry interceptors come from the OpenTelemetry grpc instrumentation (see telemetry.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shequtong_kit import auth
from shequtong_kit.errors import DomainError, InvalidArgument, Unauthenticated, Unavailable, status_trailer

log = logging.getLogger(__name__)

Behaviour = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]

# SQLSTATEs meaning "the database cannot serve you right now" rather than "your statement is wrong":
# connection exceptions (class 08), admin/crash shutdown and "starting up/shutting down" (57P01-57P03),
# too many connections (53300).
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database (or the way to it) is down for now: a retryable UNAVAILABLE, not
    an INTERNAL. Driver errors raised while connecting (asyncpg's CannotConnectNowError while PostgreSQL
    starts up or shuts down) reach us unwrapped, so the SQLSTATE is looked for on the error and its causes."""
    if isinstance(exc, OperationalError | PoolTimeout | ConnectionError | OSError):
        return True
    if isinstance(exc, DBAPIError) and (exc.connection_invalidated or "too many clients" in str(exc.orig)):
        return True
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        state = str(getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None) or "")
        if state and state.startswith(UNAVAILABLE_SQLSTATES):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Around every unary handler (the only kind our APIs use): the golden signals (calls and duration by
    method and code), the caller's principal made current (a bearer token, when one is sent, is verified;
    handlers decide whether one is required — `auth.current()` raises Unauthenticated), and domain errors
    turned into their status with ErrorInfo (anything else a generic INTERNAL, logged once).

    One interceptor that wraps each method once, at its first call (grpc.aio asks every interceptor for a
    handler on every call; the three this replaced each built a new one — in-process that measured within
    the noise, so this is for having one place, not for speed)."""

    def __init__(self, verifier: auth.TokenVerifier | None) -> None:
        from shequtong_kit.telemetry import meter

        m = meter("shequtong.grpc")
        self._requests = m.create_counter("rpc_server_requests", description="gRPC calls handled, by method and code")
        self._duration = m.create_histogram(
            "rpc_server_duration", unit="s", description="gRPC call duration in seconds, by method"
        )
        self._verifier = verifier
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        wrapped = self._handlers.get(method)
        if wrapped is not None:
            return wrapped
        # The innermost interceptor: `continuation` only looks up the registered handler, fixed once the
        # server is built. Unknown methods are not remembered (a caller could invent any number of names).
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        wrapped = handler if handler.unary_unary is None else self._wrap(handler, method)
        self._handlers[method] = wrapped
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        inner: Behaviour = handler.unary_unary
        attributes = {"rpc_method": method.rsplit("/", 1)[-1], "rpc_service": method.strip("/").split("/")[0]}
        by_code: dict[str, dict[str, str]] = {}
        duration, requests, verifier = self._duration, self._requests, self._verifier

        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                principal = await _principal(verifier, context) if verifier is not None else None
                reset = auth.set_current(principal)
                try:
                    return await inner(request, context)
                finally:
                    auth.reset_current(reset)
            except grpc.aio.AbortError:
                code = _code_name(context)
                raise
            except Exception as exc:
                try:
                    await _abort_for(context, exc, method)
                except grpc.aio.AbortError:
                    code = _code_name(context)
                    raise
                code = "UNKNOWN"  # pragma: no cover - _abort_for always aborts
                raise  # pragma: no cover
            finally:
                duration.record(time.perf_counter() - started, attributes)
                labels = by_code.get(code)
                if labels is None:
                    labels = by_code[code] = {**attributes, "rpc_code": code}
                requests.add(1, labels)

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _principal(verifier: auth.TokenVerifier, context: grpc.aio.ServicerContext) -> auth.Principal | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            scheme, _, token = str(value).partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Unauthenticated("authorization must be a bearer token", code="token_invalid")
            return await verifier.verify(token)
    return None


def _code_name(context: grpc.aio.ServicerContext) -> str:
    status = context.code()
    return status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"


async def _abort_for(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
    """Ends the call with the status `exc` stands for."""
    if isinstance(exc, DomainError):
        await _abort(context, exc)
    if database_unavailable(exc):
        log.warning("dependency unavailable", extra={"method": method, "error": type(exc).__name__})
        await _abort(context, Unavailable("a dependency is unavailable, retry later", code="unavailable"))
    if isinstance(exc, DataError):
        # The database refused a value (a NUL byte, an out-of-range number): bad input, nothing written.
        await _abort(context, InvalidArgument("the request holds a value that cannot be stored", code="invalid_input"))
    log.exception("database error" if isinstance(exc, DBAPIError) else "unhandled error", extra={"method": method})
    internal = DomainError("internal error", code="internal")
    await context.abort(grpc.StatusCode.INTERNAL, internal.message, trailing_metadata=status_trailer(internal))


async def _abort(context: grpc.aio.ServicerContext, error: DomainError) -> None:
    await context.abort(error.status, error.message, trailing_metadata=status_trailer(error))


def metadata_value(context: grpc.aio.ServicerContext, key: str) -> str | None:
    for k, v in context.invocation_metadata() or ():
        if k == key:
            return str(v)
    return None


def build_server(
    verifier: auth.TokenVerifier | None,
    servicers: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]],
    port: int,
    host: str = "0.0.0.0",
) -> tuple[grpc.aio.Server, health.aio.HealthServicer, int]:
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(verifier)],
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 8 * 1024 * 1024)],
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [reflection.SERVICE_NAME, health.SERVICE_NAME]
    for add, servicer, full_name in servicers:
        add(servicer, server)
        names.append(full_name)
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, health_servicer, bound


LIVENESS = "liveness"


async def set_serving(health_servicer: health.aio.HealthServicer, names: Sequence[str], serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ["", *names]:
        await health_servicer.set(name, status)
    # Liveness says only that the process answers: a database outage must not get pods restarted.
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
