"""`grpc_server.ServiceInterceptor` on a real grpc.aio server: the caller's principal, domain errors as their
status with ErrorInfo, anything else INTERNAL, metrics by the status each call ended with — and each
method's handler wrapped once, not per call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy.exc import OperationalError

from shequtong_kit import auth
from shequtong_kit.errors import NotFound, Unauthenticated, error_info
from shequtong_kit.grpc_server import ServiceInterceptor

SERVICE = "test.v1.Probe"


class OneToken:
    """Accepts one token (the real verifier's checks are the subject of test_auth.py)."""

    async def verify(self, token: str) -> auth.Principal:
        if token != "good":
            raise Unauthenticated("bad token", code="token_invalid")
        return auth.Principal(subject="p-1")


class CountingHandlers(grpc.GenericRpcHandler):  # type: ignore[misc]
    """The server's handler lookup, counting how often grpc asks it."""

    def __init__(self) -> None:
        self.lookups = 0

        async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            principal = auth.current_or_none()
            return principal.subject.encode() if principal else b"-"

        async def missing(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            raise NotFound("no such thing", code="thing_not_found")

        async def broken(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            raise RuntimeError("a bug")

        async def database_down(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

        self.generic = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(fn)
                for name, fn in {
                    "WhoAmI": whoami,
                    "Missing": missing,
                    "Broken": broken,
                    "DatabaseDown": database_down,
                }.items()
            },
        )

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        self.lookups += 1
        return self.generic.service(handler_call_details)


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def add(self, amount: float, attributes: dict[str, str]) -> None:
        self.calls.append((amount, attributes))

    record = add


@pytest.fixture
async def probe() -> AsyncIterator[tuple[grpc.aio.Channel, CountingHandlers, ServiceInterceptor]]:
    interceptor = ServiceInterceptor(OneToken())  # type: ignore[arg-type]
    interceptor._requests, interceptor._duration = Recorded(), Recorded()  # type: ignore[assignment]
    handlers = CountingHandlers()
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel, handlers, interceptor
    await channel.close()
    await server.stop(None)


def _call(channel: grpc.aio.Channel, method: str) -> Any:
    return channel.unary_unary(f"/{SERVICE}/{method}")


async def _codes(interceptor: ServiceInterceptor, expected: int) -> list[tuple[str, str]]:
    """The (method, code) pairs counted, once `expected` calls are: the client has an aborted call's status
    as soon as it is sent, and the server counts the call just after."""
    calls = interceptor._requests.calls  # type: ignore[attr-defined]
    for _ in range(200):
        if len(calls) >= expected:
            break
        await asyncio.sleep(0.01)
    return [(a["rpc_method"], a["rpc_code"]) for _, a in calls]


async def test_the_principal_is_current_only_with_a_valid_bearer_token(probe: Any) -> None:
    channel, _, interceptor = probe
    assert await _call(channel, "WhoAmI")(b"") == b"-"
    assert await _call(channel, "WhoAmI")(b"", metadata=(("authorization", "Bearer good"),)) == b"p-1"
    for header in ("Bearer bad", "Basic good", "Bearer "):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _call(channel, "WhoAmI")(b"", metadata=(("authorization", header),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_info(refused.value)[0] == "token_invalid"
    assert await _codes(interceptor, 5) == [("WhoAmI", "OK")] * 2 + [("WhoAmI", "UNAUTHENTICATED")] * 3


async def test_errors_become_their_status_and_are_counted_by_it(probe: Any) -> None:
    channel, _, interceptor = probe
    expected = {
        "Missing": (grpc.StatusCode.NOT_FOUND, "thing_not_found"),
        "Broken": (grpc.StatusCode.INTERNAL, "internal"),
        "DatabaseDown": (grpc.StatusCode.UNAVAILABLE, "unavailable"),
    }
    for method, (status, code) in expected.items():
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await _call(channel, method)(b"")
        assert (failed.value.code(), error_info(failed.value)[0]) == (status, code)
    assert await _codes(interceptor, 3) == [(method, status.name) for method, (status, _) in expected.items()]
    assert len(interceptor._duration.calls) == 3  # type: ignore[attr-defined]


async def test_each_method_is_looked_up_and_wrapped_once(probe: Any) -> None:
    channel, handlers, _ = probe
    for _ in range(5):
        await _call(channel, "WhoAmI")(b"")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await _call(channel, "Nothing")(b"")
    with pytest.raises(grpc.aio.AioRpcError):
        await _call(channel, "Nothing")(b"")
    assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert handlers.lookups == 1 + 2  # WhoAmI once; an unknown name every time, never remembered
