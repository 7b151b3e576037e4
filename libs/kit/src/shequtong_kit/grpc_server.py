"""The grpc.aio server every service runs: official health and reflection, auth and error interceptors.

Telemetry interceptors come from the OpenTelemetry grpc instrumentation (see telemetry.py).
"""

from __future__ import annotations

import logging
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


class _UnaryInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps unary-unary handlers (the only kind our APIs use) with `around`."""

    async def around(
        self, inner: Behaviour, request: Any, context: grpc.aio.ServicerContext, method: str
    ) -> Any:  # pragma: no cover - overridden
        return await inner(request, context)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        method = handler_call_details.method

        async def behaviour(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await self.around(inner, request, context, method)

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class ErrorInterceptor(_UnaryInterceptor):
    """Domain errors become their status with ErrorInfo; anything else a generic INTERNAL, logged once."""

    async def around(self, inner: Behaviour, request: Any, context: grpc.aio.ServicerContext, method: str) -> Any:
        try:
            return await inner(request, context)
        except DomainError as domain_error:
            await _abort(context, domain_error)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            if database_unavailable(exc):
                log.warning("dependency unavailable", extra={"method": method, "error": type(exc).__name__})
                await _abort(context, Unavailable("a dependency is unavailable, retry later", code="unavailable"))
            if isinstance(exc, DataError):
                # The database refused a value (a NUL byte, an out-of-range number): bad input, nothing written.
                await _abort(
                    context, InvalidArgument("the request holds a value that cannot be stored", code="invalid_input")
                )
            log.exception(
                "database error" if isinstance(exc, DBAPIError) else "unhandled error", extra={"method": method}
            )
            internal = DomainError("internal error", code="internal")
            await context.abort(grpc.StatusCode.INTERNAL, internal.message, trailing_metadata=status_trailer(internal))


class MetricsInterceptor(_UnaryInterceptor):
    """Request rate, errors and duration per method (the golden signals of every gRPC service)."""

    def __init__(self) -> None:
        from shequtong_kit.telemetry import meter

        m = meter("shequtong.grpc")
        self._requests = m.create_counter("rpc_server_requests", description="gRPC calls handled, by method and code")
        self._duration = m.create_histogram(
            "rpc_server_duration", unit="s", description="gRPC call duration in seconds, by method"
        )

    async def around(self, inner: Behaviour, request: Any, context: grpc.aio.ServicerContext, method: str) -> Any:
        import time

        started = time.perf_counter()
        code = "OK"
        try:
            return await inner(request, context)
        except grpc.aio.AbortError:
            status = context.code()
            code = status.name if isinstance(status, grpc.StatusCode) else "UNKNOWN"
            raise
        except Exception:
            code = "UNKNOWN"
            raise
        finally:
            attrs = {"rpc_method": method.rsplit("/", 1)[-1], "rpc_service": method.strip("/").split("/")[0]}
            self._duration.record(time.perf_counter() - started, attrs)
            self._requests.add(1, {**attrs, "rpc_code": code})


async def _abort(context: grpc.aio.ServicerContext, error: DomainError) -> None:
    await context.abort(error.status, error.message, trailing_metadata=status_trailer(error))


class AuthInterceptor(_UnaryInterceptor):
    """Verifies a bearer token when one is sent and makes the principal current for the handler.

    Handlers decide whether a principal is required (`auth.current()` raises Unauthenticated).
    """

    def __init__(self, verifier: auth.TokenVerifier) -> None:
        self._verifier = verifier

    async def around(self, inner: Behaviour, request: Any, context: grpc.aio.ServicerContext, method: str) -> Any:
        principal = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                scheme, _, token = str(value).partition(" ")
                if scheme.lower() != "bearer" or not token:
                    raise Unauthenticated("authorization must be a bearer token", code="token_invalid")
                principal = await self._verifier.verify(token)
                break
        reset = auth.set_current(principal)
        try:
            return await inner(request, context)
        finally:
            auth.reset_current(reset)


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
    interceptors: list[grpc.aio.ServerInterceptor] = [MetricsInterceptor(), ErrorInterceptor()]
    if verifier is not None:
        interceptors.append(AuthInterceptor(verifier))
    server = grpc.aio.server(
        interceptors=interceptors,
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
