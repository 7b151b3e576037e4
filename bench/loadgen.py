"""The load driver: open loop (a fixed arrival rate) and closed loop (saturation), in driver processes.

Open loop: request i is *scheduled* at `start + i / rate`, whatever happened to the requests before it,
and its latency is measured from that scheduled time, not from when it was actually sent. When the
system (or the driver) falls behind, the queueing delay shows up in the latency instead of silently
lowering the offered rate (no coordinated omission). `send_lag` says how late requests left the driver;
a large lag with a busy driver CPU means the driver, not the system, was the limit: the result says so.

Closed loop: `concurrency` workers each send the next request when the previous one answered. It finds
the maximum throughput (the raw limits are measured this way); its latencies are those AT saturation.

A workload is any object with `setup()`, `pick(rng) -> (name, op)` and `close()`, built in the driver
process from a `"module:attribute"` factory and a JSON-able `params` dict, so the driver can run HTTP
journeys, gRPC calls, asyncpg queries or NATS publishes alike. Every run is bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import random
import resource
import time
import traceback
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.stats import percentile, summarise

Op = Callable[[], Awaitable[None]]


class Workload(Protocol):
    async def setup(self) -> None: ...

    def pick(self, rng: random.Random) -> tuple[str, Op]: ...

    async def close(self) -> None: ...


class StatusError(Exception):
    """A reply with an unexpected status (counted as an error under its status code)."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"HTTP {status} {detail[:200]}")
        self.status = status


@dataclass
class LoadSpec:
    factory: str  # "module:callable" returning a Workload, called with `params`
    params: dict[str, Any] = field(default_factory=dict)
    mode: str = "open"  # "open" (rate) or "closed" (concurrency)
    rate: float = 100.0  # open loop: total arrivals per second over all driver processes
    concurrency: int = 32  # closed loop: total workers over all driver processes
    duration: float = 10.0  # measured seconds
    warmup: float = 2.0  # seconds at the same load before measuring (discarded)
    processes: int = 1
    max_in_flight: int = 2000  # open loop: cap on outstanding requests per process (memory bound)
    timeout: float = 10.0  # per operation
    max_requests: int = 500_000  # hard bound per process

    def per_process(self) -> LoadSpec:
        n = max(1, self.processes)
        return LoadSpec(
            factory=self.factory,
            params=self.params,
            mode=self.mode,
            rate=self.rate / n,
            concurrency=max(1, self.concurrency // n),
            duration=self.duration,
            warmup=self.warmup,
            processes=1,
            max_in_flight=self.max_in_flight,
            timeout=self.timeout,
            max_requests=self.max_requests,
        )


def build_workload(factory: str, params: dict[str, Any]) -> Workload:
    module, _, attr = factory.partition(":")
    return getattr(importlib.import_module(module), attr)(params)  # type: ignore[no-any-return]


@dataclass
class _Recorder:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    send_lag: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def ok(self, name: str, ms: float) -> None:
        self.latencies[name].append(ms)

    def fail(self, name: str, exc: BaseException) -> None:
        if isinstance(exc, StatusError):
            kind = str(exc.status)
        elif isinstance(exc, TimeoutError | asyncio.TimeoutError):
            kind = "timeout"
        else:
            kind = type(exc).__name__
        self.errors[name][kind] += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{name}: {kind}: {str(exc)[:200]}")


async def _open_loop(workload: Workload, spec: LoadSpec, seconds: float, rec: _Recorder | None) -> float:
    # perf_counter, not loop.time(): uvloop's clock is cached per loop iteration at millisecond grain.
    clock = time.perf_counter
    rng = random.Random(os.getpid())
    count = min(int(spec.rate * seconds), spec.max_requests)
    interval = 1.0 / spec.rate
    gate = asyncio.Semaphore(spec.max_in_flight)
    pending: set[asyncio.Task[None]] = set()
    start = clock() + 0.01

    async def one(scheduled: float, name: str, op: Op) -> None:
        async with gate:
            sent = clock()
            try:
                async with asyncio.timeout(spec.timeout):
                    await op()
            except Exception as exc:
                if rec is not None:
                    rec.fail(name, exc)
                return
            if rec is not None:
                rec.ok(name, (clock() - scheduled) * 1000)
                rec.send_lag.append((sent - scheduled) * 1000)

    i = 0
    while i < count:
        now = clock()
        due = start + i * interval
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while i < count and start + i * interval <= now:
            name, op = workload.pick(rng)
            task = asyncio.create_task(one(start + i * interval, name, op))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
    if pending:
        await asyncio.wait(pending, timeout=spec.timeout + 5)
    unfinished = list(pending)
    for task in unfinished:
        task.cancel()
    if rec is not None and unfinished:
        rec.errors["(unfinished)"]["unfinished"] += len(unfinished)  # never silently dropped
    return max(clock() - start, count * interval)


async def _closed_loop(workload: Workload, spec: LoadSpec, seconds: float, rec: _Recorder | None) -> float:
    clock = time.perf_counter
    start = clock()
    end = start + seconds
    budget = [spec.max_requests]

    async def worker(index: int) -> None:
        rng = random.Random(os.getpid() * 1000 + index)
        while clock() < end and budget[0] > 0:
            budget[0] -= 1
            name, op = workload.pick(rng)
            t0 = clock()
            try:
                async with asyncio.timeout(spec.timeout):
                    await op()
            except Exception as exc:
                if rec is not None:
                    rec.fail(name, exc)
                continue
            if rec is not None:
                rec.ok(name, (clock() - t0) * 1000)

    await asyncio.gather(*(worker(i) for i in range(spec.concurrency)))
    return clock() - start


async def _drive(spec: LoadSpec) -> dict[str, Any]:
    workload = build_workload(spec.factory, spec.params)
    await workload.setup()
    run = _open_loop if spec.mode == "open" else _closed_loop
    try:
        if spec.warmup > 0:
            await run(workload, spec, spec.warmup, None)
        extra = getattr(workload, "extra", None)
        mark = len(extra()) if extra else 0  # what the warm-up left is not measured
        rec = _Recorder()
        cpu0 = _cpu_seconds()
        wall0 = time.monotonic()
        elapsed = await run(workload, spec, spec.duration, rec)
        cpu = _cpu_seconds() - cpu0
        wall = time.monotonic() - wall0
    finally:
        with contextlib.suppress(Exception):
            await workload.close()
    return {
        "latencies": {k: v for k, v in rec.latencies.items()},
        "errors": {k: dict(v) for k, v in rec.errors.items()},
        "error_samples": rec.error_samples,
        "send_lag": rec.send_lag,
        "elapsed": elapsed,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "pid": os.getpid(),
        "extra": list(extra()[mark:]) if extra else [],
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(spec: LoadSpec, queue: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    try:
        queue.put(("ok", asyncio.run(_drive(spec))))
    except BaseException:
        queue.put(("error", traceback.format_exc()))


def run_load(spec: LoadSpec) -> dict[str, Any]:
    """Runs `spec` in `spec.processes` driver processes and merges what they measured."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    count = max(1, spec.processes)
    procs = []
    for index in range(count):
        child_spec = spec.per_process()
        # A workload that must not repeat itself across drivers (sign-ups) takes its own share by these.
        child_spec.params = {**spec.params, "driver_index": index, "driver_count": count}
        procs.append(ctx.Process(target=_child, args=(child_spec, queue), daemon=True))
    for proc in procs:
        proc.start()
    parts: list[dict[str, Any]] = []
    failures: list[str] = []
    deadline = time.monotonic() + spec.warmup + spec.duration + spec.timeout + 120
    for _ in procs:
        try:
            status, payload = queue.get(timeout=max(1.0, deadline - time.monotonic()))
        except Exception:
            failures.append("driver process did not report in time")
            continue
        (parts if status == "ok" else failures).append(payload)
    for proc in procs:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    if failures and not parts:
        raise RuntimeError("load driver failed:\n" + "\n".join(failures))
    return merge(spec, parts, failures)


def merge(spec: LoadSpec, parts: list[dict[str, Any]], failures: list[str]) -> dict[str, Any]:
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    lag: list[float] = []
    samples: list[str] = []
    for part in parts:
        for name, values in part["latencies"].items():
            latencies[name].extend(values)
        for name, kinds in part["errors"].items():
            for kind, n in kinds.items():
                errors[name][kind] += n
        lag.extend(part["send_lag"])
        samples.extend(part["error_samples"])
    elapsed = max((p["elapsed"] for p in parts), default=0.0)
    all_lat = [v for values in latencies.values() for v in values]
    all_err = sum(n for kinds in errors.values() for n in kinds.values())
    total = summarise(all_lat, all_err, elapsed)
    per_op = {
        name: {**summarise(latencies.get(name, []), sum(errors.get(name, {}).values()), elapsed)}
        | ({"error_kinds": dict(errors[name])} if name in errors else {})
        for name in sorted(set(latencies) | set(errors))
    }
    driver_cpu = [p["cpu_seconds"] / p["wall_seconds"] for p in parts if p["wall_seconds"] > 0]
    ordered_lag = sorted(lag)
    lag_p99 = percentile(ordered_lag, 99)
    result: dict[str, Any] = {
        "mode": spec.mode,
        "offered_rate": spec.rate if spec.mode == "open" else None,
        "concurrency": spec.concurrency if spec.mode == "closed" else None,
        "duration_s": spec.duration,
        "driver_processes": len(parts),
        **total,
        "ops": per_op,
        "driver_cpu_cores": [round(c, 2) for c in driver_cpu],
        "send_lag_p99_ms": None if lag_p99 is None else round(lag_p99, 2),
        "error_samples": samples[:5],
    }
    result["extra"] = [item for part in parts for item in part.get("extra", [])]
    if failures:
        result["driver_failures"] = [f[-500:] for f in failures]
    # The driver was the limit when it could not send on time while its own CPU was busy.
    result["driver_saturated"] = bool(
        spec.mode == "open" and lag_p99 is not None and lag_p99 > 20 and any(c > 0.85 for c in driver_cpu)
    ) or bool(spec.mode == "closed" and any(c > 0.95 for c in driver_cpu))
    return result


class Stall:
    """A self-check workload with no I/O: the first operation holds a lock for `stall` seconds and every
    other one needs it briefly. An open-loop driver must charge the requests scheduled during the stall
    with the time they waited; a closed-loop one would simply not have sent them (coordinated omission)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.stall = float(params.get("stall", 0.3))
        self.lock: asyncio.Lock | None = None
        self.first = True

    async def setup(self) -> None:
        self.lock = asyncio.Lock()

    def pick(self, rng: random.Random) -> tuple[str, Op]:
        async def op() -> None:
            assert self.lock is not None
            async with self.lock:
                if self.first:
                    self.first = False
                    await asyncio.sleep(self.stall)

        return "stall", op

    async def close(self) -> None:
        return None
