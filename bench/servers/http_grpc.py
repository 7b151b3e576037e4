"""FastAPI → one gRPC hop (the gateway's shape without auth): GET /hop calls the trivial gRPC server
at BENCH_GRPC_TARGET through a kit channel with a deadline."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shequtong_kit.grpc_client import channel

state: dict[str, object] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    ch = channel(os.environ["BENCH_GRPC_TARGET"])
    state["stub"] = health_pb2_grpc.HealthStub(ch)
    yield
    await ch.close()


app = FastAPI(default_response_class=ORJSONResponse, docs_url=None, openapi_url=None, lifespan=lifespan)


@app.get("/hop")
async def hop() -> dict[str, object]:
    stub = state["stub"]
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)  # type: ignore[attr-defined]
    return {"status": int(reply.status)}
