"""FastAPI + uvicorn answering a tiny JSON document: the ceiling of the HTTP edge itself."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

app = FastAPI(default_response_class=ORJSONResponse, docs_url=None, openapi_url=None)


@app.get("/json")
async def tiny() -> dict[str, object]:
    return {"ok": True, "message": "社区通"}
