"""An HTTP/1.1 keep-alive client for the driver (aiohttp: it costs the driver about half the CPU per
request of httpx.AsyncClient, which matters when the driver shares two cores with the system)."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from bench.loadgen import StatusError


class Http:
    def __init__(self, base_url: str, pool: int = 64, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.pool = pool
        self.timeout = timeout
        self.session: aiohttp.ClientSession | None = None

    async def setup(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.pool, limit_per_host=self.pool, keepalive_timeout=60)
        self.session = aiohttp.ClientSession(
            self.base_url,
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200, 201),
    ) -> Any:
        assert self.session is not None, "setup() first"
        async with self.session.request(method, path, json=json, headers=headers, params=params) as reply:
            body = await reply.read()
            if reply.status not in expect:
                raise StatusError(reply.status, body[:200].decode(errors="replace"))
            return orjson.loads(body) if body else None

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Any:
        return await self.request("POST", path, **kwargs)
