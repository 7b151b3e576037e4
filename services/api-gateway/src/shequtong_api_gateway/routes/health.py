from __future__ import annotations

from fastapi import Request
from fastapi.responses import ORJSONResponse

from shequtong_api_gateway.routing import gateway_router

router = gateway_router(tags=["health"])


@router.get("/healthz", summary="The gateway process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Every downstream service answers SERVING")
async def readyz(request: Request) -> ORJSONResponse:
    services = await request.app.state.clients.readiness()
    ready = all(status == "SERVING" for status in services.values())
    return ORJSONResponse({"ready": ready, "services": services}, status_code=200 if ready else 503)


@router.get("/.well-known/jwks.json", summary="Public keys that verify Shequtong access tokens", tags=["auth"])
async def jwks(request: Request) -> ORJSONResponse:
    from shequtong.identity.v1 import identity_pb2

    clients = request.app.state.clients
    reply = await clients.identity.GetJwks(identity_pb2.GetJwksRequest(), timeout=clients.deadline)
    import orjson

    return ORJSONResponse(orjson.loads(reply.jwks_json))
