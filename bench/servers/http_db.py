"""FastAPI → SQLAlchemy (asyncpg) primary-key select with a session per request, the way the services
read: GET /item/{id} from the table `bench_item` in BENCH_DATABASE_URL (pool size BENCH_POOL_SIZE)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException
from fastapi.responses import ORJSONResponse
from sqlalchemy import Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shequtong_kit.db import create_engine, session_factory


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_item"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(String(400))


state: dict[str, object] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # A fixed pool (no overflow): overflow connections are closed when returned, so a pool smaller than
    # the concurrency would measure PostgreSQL's connection set-up instead of the select.
    pool = int(os.environ.get("BENCH_POOL_SIZE", "20"))
    engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=pool, max_overflow=0)
    state["sessions"] = session_factory(engine)
    yield
    await engine.dispose()


app = FastAPI(default_response_class=ORJSONResponse, docs_url=None, openapi_url=None, lifespan=lifespan)


@app.get("/item/{item_id}")
async def item(item_id: int) -> dict[str, object]:
    async with state["sessions"]() as session:  # type: ignore[operator]
        row = await session.get(Item, item_id)
        if row is None:
            raise HTTPException(404)
        return {"id": row.id, "name": row.name, "body": row.body}
