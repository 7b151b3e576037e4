"""The data generator: a Baoshan-scale district built through the services' own paths.

Every entity goes through the public API gateway (or, once a service has one, its bulk RPC), so every
rule applies: no SQL that skips them. One small adapter per entity knows its path; a part whose route
is not in the gateway's OpenAPI yet is reported as unavailable, and a part that only has a per-item
path is reported with its measured rate and what the full scale would cost at that rate, with the bulk
RPC it needs. Each part is bounded in time (`--part-budget`), so a run always stops by itself.

    .venv/bin/python -m bench.seed --scale 0.01                 # starts its own stack (PostgreSQL)
    .venv/bin/python -m bench.seed --scale 1 --part-budget 900  # the full district (bulk paths needed)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import typer

# The reference district (Baoshan, Shanghai) at scale 1.0.
FULL: dict[str, int] = {
    "subdistricts": 12,
    "residential": 462,
    "villages": 103,
    "households": 480_000,
    "residents": 640_000,
    "party_members": 60_000,
    "volunteers": 374_000,
    "posts": 1_000_000,
    "comments": 3_000_000,
    "issues": 51_000,
    "topics": 21_000,
    "conventions": 2_100,
    "storefronts": 612,
}

SUBDISTRICTS = [
    "友谊路街道",
    "吴淞街道",
    "张庙街道",
    "庙行镇",
    "淞南镇",
    "高境镇",
    "大场镇",
    "杨行镇",
    "月浦镇",
    "罗店镇",
    "罗泾镇",
    "顾村镇",
]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
PASSWORD = "bench-pass-2026"
ISSUE_TEXTS = [
    ("rubbish", "楼下垃圾三天没人清", "3号楼下垃圾堆了三天，异味很大"),
    ("street_light", "路灯坏了", "小区东门路灯不亮，晚上很黑"),
    ("illegal_parking", "消防通道停车", "有车长期占用消防通道"),
    ("water_leak", "楼道漏水", "5号楼2单元楼道天花板漏水"),
    ("noise", "夜间噪音", "楼下商铺夜里施工噪音很大"),
]
# Where a problem ends up (shares of the reference district's record: 90% solved inside the neighbourhood).
ISSUE_PATHS = [
    ([], 0.10),
    (["acknowledge"], 0.10),
    (["acknowledge", "start"], 0.15),
    (["acknowledge", "start", "resolve"], 0.50),
    (["acknowledge", "escalate"], 0.10),
    (["reject"], 0.05),
]


def plan(scale: float) -> dict[str, int]:
    """Targets at `scale`: counts scale linearly; the region tree keeps at least two sub-districts and
    one neighbourhood of each kind, so every view (comparisons across sub-districts and kinds) exists."""
    residential = max(1, round(FULL["residential"] * scale))
    villages = max(1, round(FULL["villages"] * scale))
    out = {name: max(1, round(value * scale)) for name, value in FULL.items()}
    out.update(
        residential=residential,
        villages=villages,
        subdistricts=min(12, max(2, round(FULL["subdistricts"] * scale)), residential + villages),
    )
    out["households"] = min(out["households"], out["residents"])
    out["party_members"] = min(out["party_members"], out["residents"])
    out["volunteers"] = min(out["volunteers"], out["residents"])
    return out


# --- what the generator built (what the journeys use afterwards) -----------------------------------


@dataclass
class Account:
    person_id: str
    phone: str
    password: str
    token: str = ""
    membership_id: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Neighbourhood:
    id: str
    kind: str
    subdistrict_id: str
    code: str
    secretary: Account | None = None
    cadre: Account | None = None
    join_code: str = ""
    residents: list[Account] = field(default_factory=list)
    boards: dict[str, str] = field(default_factory=dict)  # kind -> board id
    posts: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)


@dataclass
class World:
    run: str
    district_id: str = ""
    subdistricts: list[str] = field(default_factory=list)
    neighbourhoods: list[Neighbourhood] = field(default_factory=list)

    def signed_in_residents(self) -> list[tuple[Neighbourhood, Account]]:
        return [(n, r) for n in self.neighbourhoods for r in n.residents if r.token]

    def fixtures(self) -> dict[str, Any]:
        """The JSON-able part the journeys' driver processes need: ids and tokens, no secrets beyond them."""
        return {
            "district_id": self.district_id,
            "neighbourhoods": [
                {
                    "id": n.id,
                    "kind": n.kind,
                    "boards": n.boards,
                    "posts": n.posts[:200],
                    "issues": n.issues[:200],
                    "cadre_token": n.cadre.token if n.cadre else "",
                    "resident_tokens": [r.token for r in n.residents if r.token][:50],
                }
                for n in self.neighbourhoods
            ],
        }


@dataclass
class PartReport:
    part: str
    target: int
    created: int = 0
    errors: int = 0
    seconds: float = 0.0
    status: str = "done"  # done | partial (budget) | unavailable | failed | skipped
    path: str = ""
    bulk_rpc_needed: str = ""
    note: str = ""
    error_samples: list[str] = field(default_factory=list)
    # Set by a part whose pieces scale differently (the residents: a per-item head per neighbourhood,
    # the rest in bulk); otherwise the full target at the part's overall rate.
    full_scale_estimate_s: float | None = None
    # CPU each process spent while the part ran (core-seconds; replicas apart, "generator" is this
    # process) and the machine's busy cores over the part: which process a slow part waits on.
    cpu_core_seconds: dict[str, float] = field(default_factory=dict)
    machine_busy_cores: float | None = None

    @property
    def rate(self) -> float:
        return self.created / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self, full_target: int | None) -> dict[str, Any]:
        out = asdict(self)
        out["rate_per_s"] = round(self.rate, 1)
        if self.full_scale_estimate_s is not None:
            out["full_scale_estimate_s"] = round(self.full_scale_estimate_s)
        elif full_target and self.rate > 0:
            out["full_scale_estimate_s"] = round(full_target / self.rate)
        else:
            out.pop("full_scale_estimate_s")
        return out


# --- plumbing ---------------------------------------------------------------------------------------


class Api:
    """The gateway, with the paths its OpenAPI publishes (an adapter checks its paths before running)."""

    def __init__(self, client: httpx.AsyncClient, ops_headers: dict[str, str]) -> None:
        self.client = client
        self.ops = ops_headers
        self.paths: set[str] = set()

    async def load_openapi(self) -> None:
        spec = (await self.client.get("/openapi.json")).json()
        self.paths = {f"{m.upper()} {p}" for p, item in spec.get("paths", {}).items() for m in item}

    def missing(self, *routes: str) -> list[str]:
        return [r for r in routes if r not in self.paths]

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200, 201),
        idempotency_key: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        hdrs = dict(headers or {})
        if idempotency_key:
            hdrs["Idempotency-Key"] = idempotency_key
        reply = await self.client.request(method, path, json=body, headers=hdrs, params=params)
        if reply.status_code not in expect:
            code = ""
            if reply.headers.get("content-type", "").startswith("application/problem+json"):
                code = reply.json().get("code", "")
            raise RuntimeError(f"{method} {path} → {reply.status_code} {code}".strip())
        return reply.json() if reply.content else None


async def fan_out(
    count: int,
    work: Callable[[int], Awaitable[bool]],
    report: PartReport,
    deadline: float,
    concurrency: int,
) -> None:
    """Runs work(0..count-1) with bounded concurrency until done or the deadline; counts what worked."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            try:
                if await work(index):
                    report.created += 1
            except Exception as exc:
                report.errors += 1
                if len(report.error_samples) < 5:
                    report.error_samples.append(str(exc)[:200])
                if report.errors > 50 and report.created == 0:
                    return  # this path does not work at all; no point hammering it

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    if report.created < count:
        report.status = "partial" if time.monotonic() >= deadline else ("failed" if report.errors else "partial")


class Rpc:
    """The services' own gRPC APIs (their bulk imports), called with the operator's token and a deadline."""

    def __init__(
        self,
        addrs: dict[str, str],
        ops_headers: dict[str, str],
        refresh: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.addrs = addrs
        self.refresh = refresh
        self._use(ops_headers)
        self._stubs: dict[str, Any] = {}
        self._channels: list[Any] = []
        from shequtong.identity.v1 import identity_pb2
        from shequtong.volunteers.v1 import volunteers_pb2

        self.identity_pb2 = identity_pb2
        self.volunteers_pb2 = volunteers_pb2

    def has(self, service: str) -> bool:
        return service in self.addrs

    def stub(self, service: str) -> Any:
        if service not in self._stubs:
            import grpc

            from shequtong.boards.v1 import boards_pb2_grpc
            from shequtong.identity.v1 import identity_pb2_grpc
            from shequtong.issues.v1 import issues_pb2_grpc
            from shequtong.volunteers.v1 import volunteers_pb2_grpc

            stubs = {
                "identity": identity_pb2_grpc.IdentityServiceStub,
                "volunteers": volunteers_pb2_grpc.VolunteersServiceStub,
                "boards": boards_pb2_grpc.BoardsServiceStub,
                "issues": issues_pb2_grpc.IssuesServiceStub,
            }
            options = [
                ("grpc.max_send_message_length", 64 << 20),
                ("grpc.max_receive_message_length", 64 << 20),
                ("grpc.lb_policy_name", "round_robin"),
            ]
            channel = grpc.aio.insecure_channel(self.addrs[service], options=options)
            self._channels.append(channel)
            self._stubs[service] = stubs[service](channel)
        return self._stubs[service]

    def _use(self, headers: dict[str, str]) -> None:
        token = headers.get("Authorization", "")
        self.metadata: tuple[tuple[str, str], ...] = (("authorization", token),) if token else ()

    async def call(self, service: str, method: str, request: Any, deadline_s: float = 120) -> Any:
        import grpc

        try:
            return await getattr(self.stub(service), method)(request, metadata=self.metadata, timeout=deadline_s)
        except grpc.aio.AioRpcError as exc:
            # The operator's token lives ~15 minutes; a long run takes a fresh one and sends the batch again
            # (imports are idempotent by external_ref).
            if exc.code() != grpc.StatusCode.UNAUTHENTICATED or self.refresh is None:
                raise
            self._use(await asyncio.to_thread(self.refresh))
            return await getattr(self.stub(service), method)(request, metadata=self.metadata, timeout=deadline_s)

    async def call_until_known(self, service: str, method: str, request: Any, deadline: float) -> Any:
        """Sends again while the service has not yet heard (from identity's events) of a neighbourhood."""
        waiting = {"neighbourhood_not_found", "team_not_found", "district_not_found"}
        while True:
            reply = await self.call(service, method, request)
            codes = {e.code for e in reply.report.errors}
            if reply.report.applied or not codes or codes - waiting or time.monotonic() >= deadline:
                break
            await asyncio.sleep(1.0)
        if not reply.report.applied:
            raise RuntimeError(f"{method} refused: {[(e.row, e.code) for e in reply.report.errors[:5]]}")
        return reply

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


async def fan_out_batches(
    batches: int,
    work: Callable[[int], Awaitable[int]],
    report: PartReport,
    deadline: float,
    concurrency: int,
    retries: int = 20,
) -> None:
    """Runs work(0..batches-1) — each returns how many items it created — a few at a time, until done or the
    deadline. A batch refused because a projection has not caught up (FAILED_PRECONDITION: the author is not
    known to boards yet) is re-sent after a pause: imports are idempotent by external_ref."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < batches and time.monotonic() < deadline:
            index = next_index
            next_index += 1
            for attempt in range(retries):
                try:
                    made = await work(index)  # (not `created += await …`: that reads before the await)
                    report.created += made
                    break
                except Exception as exc:
                    code = getattr(exc, "code", lambda: None)()
                    waiting = code is not None and code.name in ("FAILED_PRECONDITION", "UNAVAILABLE")
                    if waiting and attempt + 1 < retries:
                        await asyncio.sleep(1.0)
                        continue
                    report.errors += 1
                    if len(report.error_samples) < 5:
                        details = exc.details() if hasattr(exc, "details") else str(exc)
                        report.error_samples.append(str(details)[:300])
                    break

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    if report.created < report.target:
        report.status = "partial" if time.monotonic() >= deadline else ("failed" if report.errors else "partial")


def _ts(moment: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _ts_seconds(seconds: float) -> Any:
    """A Timestamp from seconds since the epoch (`_ts` through a datetime is ~8 µs; this ~1)."""
    from google.protobuf.timestamp_pb2 import Timestamp

    whole = math.floor(seconds)
    return Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))


def chinese_name(seed: str) -> str:
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return SURNAMES[digest % len(SURNAMES)] + GIVEN[(digest >> 8) % len(GIVEN)] + GIVEN[(digest >> 16) % len(GIVEN)]


WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(seed: str) -> str:
    """A GB 11643-valid (synthetic) ID number derived from `seed`."""
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    born = datetime(1940, 1, 1) + timedelta(days=(digest >> 20) % (365 * 60))
    first17 = f"{310113:06d}{born:%Y%m%d}{(digest >> 40) % 1000:03d}"
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code(seed: str) -> str:
    """A GB 32100-valid (synthetic) unified social credit code derived from `seed`."""
    digest = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    body = "51" + "310113"
    while len(body) < 17:
        body += CREDIT_ALPHABET[digest % len(CREDIT_ALPHABET)]
        digest //= len(CREDIT_ALPHABET)
    total = sum(CREDIT_ALPHABET.index(c) * w for c, w in zip(body, CREDIT_WEIGHTS, strict=True))
    return body + CREDIT_ALPHABET[(31 - total % 31) % 31]


def phone(seed: str) -> str:
    digest = int(hashlib.sha256(("phone" + seed).encode()).hexdigest(), 16)
    return "1" + "3456789"[digest % 7] + f"{(digest >> 8) % 10**9:09d}"


def bulk_phone(run: str, i: int, salt: int = 0) -> str:
    """Distinct for every i of a run (the random `phone` repeats itself among 640,000 people)."""
    base = int(hashlib.sha256(f"{run}#{salt}".encode()).hexdigest(), 16) % 10**8
    return "1" + "3456789"[i % 7] + f"{(base + i // 7) % 10**9:09d}"


def bulk_id_number(i: int) -> str:
    """Distinct for every i and never one of `id_number`'s (another region code: 310114)."""
    born = datetime(1950, 1, 1) + timedelta(days=i // 1000)
    first17 = f"310114{born:%Y%m%d}{i % 1000:03d}"
    return first17 + "10X98765432"[sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True)) % 11]


BATCH = 1000  # records per bulk call (the services' limit)
BULK_CONCURRENCY = 5  # bulk calls in flight: each waits on its transaction part of the time (3 → 5: +15–30%)


BULK_SERVICES = ("identity", "volunteers", "boards", "issues")


def bulk_addrs(stack: Any) -> dict[str, str]:
    """The gRPC targets of the services whose bulk imports the generator calls (every replica of each:
    the calls go round-robin)."""
    return {name: stack.balanced_addr(name) for name in BULK_SERVICES if name in stack.grpc_ports}


async def bulk_batches(
    start: int, stop: int, batch: Callable[[int, int], Awaitable[int]], report: PartReport, deadline: float
) -> None:
    """Runs batch(lo, hi) over [start, stop) in BATCH-sized slices, BULK_CONCURRENCY at a time."""
    slices = [(lo, min(lo + BATCH, stop)) for lo in range(start, stop, BATCH)]
    await fan_out_batches(len(slices), lambda index: batch(*slices[index]), report, deadline, BULK_CONCURRENCY)


# --- the parts --------------------------------------------------------------------------------------


class Seeder:
    def __init__(
        self,
        api: Api,
        targets: dict[str, int],
        part_budget: float,
        concurrency: int = 8,
        sign_in_per_neighbourhood: int = 1,
        log: Callable[[str], None] = print,
        total_budget: float | None = None,
        grpc_addrs: dict[str, str] | None = None,
        ops_refresh: Callable[[], dict[str, str]] | None = None,
        cpu_meter: Callable[[], Any] | None = None,
    ) -> None:
        self.api = api
        self.cpu_meter = cpu_meter
        self.rpc = Rpc(grpc_addrs or {}, api.ops, ops_refresh)
        self.total_deadline = time.monotonic() + total_budget if total_budget else float("inf")
        self.targets = targets
        self.budget = part_budget
        self.concurrency = concurrency
        self.sign_in = sign_in_per_neighbourhood
        self.world = World(run=uuid.uuid4().hex[:6])
        self.reports: list[PartReport] = []
        self.log = log
        self.rng = random.Random(7)
        self.imported: list[tuple[str, str]] = []  # (neighbourhood id, person id) of imported residents
        # ID numbers and phones of the accounts made one by one: hashed from their seed, so among the full
        # district's ~4,000 a repeat is likely (~1 in 3 runs for ID numbers); a repeat draws again.
        self._drawn: set[str] = set()

    def _deadline(self) -> float:
        return min(time.monotonic() + self.budget, self.total_deadline)

    async def _part(self, report: PartReport, requires: tuple[str, ...], body: Callable[[PartReport], Awaitable[None]]):
        missing = self.api.missing(*requires)
        if time.monotonic() >= self.total_deadline:
            report.status = "skipped"
            report.note = "the run's total budget was spent"
        elif missing:
            report.status = "unavailable"
            report.note = "routes not in the gateway yet: " + ", ".join(missing)
        else:
            meter = self.cpu_meter().start() if self.cpu_meter else None
            own0 = time.process_time()
            t0 = time.monotonic()
            try:
                await body(report)
            except Exception as exc:
                report.status = "failed"
                report.error_samples.append(str(exc)[:300])
            report.seconds = round(time.monotonic() - t0, 2)
            if meter is not None:
                used = meter.stop()
                report.machine_busy_cores = used["machine_busy_cores"]
                spent = {name: cores * report.seconds for name, cores in used["cores_by_process"].items()}
                spent["generator"] = time.process_time() - own0
                report.cpu_core_seconds = {
                    name: round(secs, 1) for name, secs in sorted(spent.items(), key=lambda kv: -kv[1])
                }
        self.reports.append(report)
        self.log(
            f"  {report.part:13} {report.status:11} {report.created:>8}/{report.target:<8} "
            f"{report.seconds:7.1f}s {report.rate:8.1f}/s {report.note}"
        )
        if report.cpu_core_seconds:
            top = ", ".join(f"{name} {secs:g}" for name, secs in list(report.cpu_core_seconds.items())[:6])
            self.log(f"  {'':13} cpu-s: {top} (machine {report.machine_busy_cores} cores busy)")
        return report

    # regions ---------------------------------------------------------------------------------------
    async def regions(self) -> PartReport:
        t = self.targets
        total = 1 + t["subdistricts"] + t["residential"] + t["villages"]
        report = PartReport("regions", total, path="POST /v1/regions (per item; small enough at full scale)")

        async def body(rep: PartReport) -> None:
            run = self.world.run
            district = await self.api.call(
                "POST",
                "/v1/regions",
                {"level": "district", "code": f"BS{run}", "name": f"宝山区·bench {run}"},
                self.api.ops,
                idempotency_key=f"seed-{run}-district",
            )
            self.world.district_id = district["id"]
            rep.created += 1
            for i in range(t["subdistricts"]):
                sub = await self.api.call(
                    "POST",
                    "/v1/regions",
                    {
                        "level": "subdistrict",
                        "code": f"BS{run}-S{i:02d}",
                        "name": SUBDISTRICTS[i % len(SUBDISTRICTS)],
                        "parent_id": self.world.district_id,
                    },
                    self.api.ops,
                    idempotency_key=f"seed-{run}-s{i}",
                )
                self.world.subdistricts.append(sub["id"])
                rep.created += 1
            kinds = ["residential"] * t["residential"] + ["village"] * t["villages"]
            slots: list[Neighbourhood | None] = [None] * len(kinds)

            async def make(i: int) -> bool:
                sub_index = i % len(self.world.subdistricts)
                kind = kinds[i]
                label = SUBDISTRICTS[sub_index % len(SUBDISTRICTS)][:2]
                name = f"{label}{i + 1}村" if kind == "village" else f"{label}第{i + 1}居委"
                code = f"BS{run}-N{i:03d}"
                body = {
                    "level": "neighbourhood",
                    "code": code,
                    "name": name,
                    "parent_id": self.world.subdistricts[sub_index],
                    "kind": kind,
                }
                made = await self.api.call("POST", "/v1/regions", body, self.api.ops, idempotency_key=f"seed-{code}")
                slots[i] = Neighbourhood(made["id"], kind, self.world.subdistricts[sub_index], code)
                return True

            await fan_out(len(kinds), make, rep, self._deadline(), self.concurrency)
            self.world.neighbourhoods = [n for n in slots if n is not None]

        return await self._part(report, ("POST /v1/regions",), body)

    def _distinct(self, draw: Callable[[str], str], seed: str) -> str:
        """`draw(seed)`, or `draw` of a salted seed when an account of this run already has that value."""
        salt = 0
        while (value := draw(f"{seed}#{salt}" if salt else seed)) in self._drawn:
            salt += 1
        self._drawn.add(value)
        return value

    # committees -----------------------------------------------------------------------------------
    async def _person(self, seed: str) -> Account:
        account = Account("", self._distinct(phone, seed), PASSWORD)
        made = await self.api.call(
            "POST",
            "/v1/people",
            {
                "real_name": chinese_name(seed),
                "phone": account.phone,
                "id_number": self._distinct(id_number, seed),
                "password": PASSWORD,
            },
            self.api.ops,
            idempotency_key=f"seed-person-{seed}",
        )
        account.person_id = made["id"]
        return account

    async def login(self, account: Account) -> Account:
        tokens = await self.api.call("POST", "/v1/auth/login", {"phone": account.phone, "password": account.password})
        account.token = tokens["access_token"]
        return account

    async def committees(self) -> PartReport:
        hoods = self.world.neighbourhoods
        report = PartReport(
            "committees",
            len(hoods) * 2,
            path="POST /v1/people, /v1/roles, /v1/auth/login, roster, join code (per item)",
        )
        requires = (
            "POST /v1/people",
            "POST /v1/roles",
            "POST /v1/auth/login",
            "POST /v1/neighbourhoods/{neighbourhood_id}/roster",
            "POST /v1/neighbourhoods/{neighbourhood_id}/join-codes",
        )

        async def one(i: int) -> bool:
            n = hoods[i]
            seed = f"{self.world.run}-{n.code}"
            secretary = await self._person(f"{seed}-secretary")
            cadre = await self._person(f"{seed}-cadre")
            for person, role in ((secretary, "secretary"), (cadre, "cadre")):
                await self.api.call(
                    "POST",
                    "/v1/roles",
                    {"person_id": person.person_id, "role": role, "scope": f"n:{n.id}"},
                    self.api.ops,
                    idempotency_key=f"seed-grant-{seed}-{role}",
                )
            # The cadre signs in (the journeys act as cadres) and opens the roster and the join code, as the
            # committee's members may; the secretary's account and role are data, not a fixture: no sign-in
            # (an argon2 verification each, a quarter of the part's CPU).
            await self.login(cadre)
            now = datetime.now(UTC)
            await self.api.call(
                "POST",
                f"/v1/neighbourhoods/{n.id}/roster",
                {
                    "person_id": cadre.person_id,
                    "starts_at": (now - timedelta(hours=1)).isoformat(),
                    "ends_at": (now + timedelta(days=6)).isoformat(),
                },
                cadre.headers,
                idempotency_key=f"seed-shift-{seed}",
            )
            code = await self.api.call(
                "POST",
                f"/v1/neighbourhoods/{n.id}/join-codes",
                {"ttl_seconds": 30 * 24 * 3600, "max_uses": 100_000},
                cadre.headers,
                idempotency_key=f"seed-code-{seed}",
            )
            n.secretary, n.cadre, n.join_code = secretary, cadre, code["code"]
            return True

        async def body(rep: PartReport) -> None:
            await fan_out(len(hoods), one, rep, self._deadline(), self.concurrency)
            rep.created *= 2

        return await self._part(report, requires, body)

    # residents and households -------------------------------------------------------------------
    async def residents(self) -> PartReport:
        t = self.targets
        hoods = [n for n in self.world.neighbourhoods if n.join_code and n.cadre]
        report = PartReport(
            "residents",
            t["residents"],
            path="POST /v1/registrations + POST /v1/memberships/{id}/verify (per person; argon2 each)",
            bulk_rpc_needed="identity.v1.IdentityService/ImportResidents (households, people, verified memberships,"
            " party members; streamed batches, no per-person password hashing)",
            note=f"households {t['households']}, party members {t['party_members']} ride along",
        )
        requires = ("POST /v1/registrations", "POST /v1/memberships/{membership_id}/verify", "POST /v1/auth/login")
        if not hoods:
            report.status = "skipped"
            report.note = "no neighbourhood has a committee (the committees part did not run)"
            self.reports.append(report)
            return report
        households = t["households"]
        party_every = max(1, round(t["residents"] / max(1, t["party_members"])))

        async def one(i: int) -> bool:
            # The first `households` residents open a household, the others join one of those: a
            # household's people all live in the same neighbourhood.
            house = i % households
            n = hoods[house % len(hoods)]
            seed = f"{self.world.run}-r{i}"
            address = {
                "building": f"{house // 60 + 1}号楼",
                "unit": f"{house // 12 % 5 + 1}",
                "room": f"{house % 12 + 101}",
            }
            party = i % party_every == 0
            account = Account("", self._distinct(phone, seed), PASSWORD)
            made = await self.api.call(
                "POST",
                "/v1/registrations",
                {
                    "join_code": n.join_code,
                    "real_name": chinese_name(seed),
                    "phone": account.phone,
                    "id_number": self._distinct(id_number, seed),
                    "password": PASSWORD,
                    "address": address,
                    "party_member": party,
                },
                idempotency_key=f"seed-reg-{seed}",
            )
            account.person_id, account.membership_id = made["person_id"], made["id"]
            assert n.cadre is not None
            await self.api.call(
                "POST",
                f"/v1/memberships/{account.membership_id}/verify",
                {"confirm_party_member": party},
                n.cadre.headers,
            )
            n.residents.append(account)
            if sum(1 for r in n.residents if r.token) < self.sign_in:
                await self.login(account)
            return True

        async def body(rep: PartReport) -> None:
            if not self.rpc.has("identity"):
                await fan_out(t["residents"], one, rep, self._deadline(), self.concurrency)
                return
            # The residents the journeys sign in as register through the public path (password, review);
            # everyone else comes through ImportResidents in batches.
            head = min(t["residents"], self.sign_in * len(hoods), households)
            deadline = self._deadline()
            t0 = time.monotonic()
            await fan_out(head, one, rep, deadline, self.concurrency)
            rep.path = (
                f"first {head}: POST /v1/registrations + verify + login (the journeys' accounts); the rest:"
                f" identity.v1.IdentityService/ImportResidents, batches of {BATCH} x {BULK_CONCURRENCY} in flight"
            )
            rep.bulk_rpc_needed = ""

            def record(i: int, salt: int) -> Any:
                house = i % households
                n = hoods[house % len(hoods)]
                seed = f"{self.world.run}-r{i}"
                return self.rpc.identity_pb2.ResidentRecord(
                    external_ref=f"seed-{self.world.run}-r{i}",
                    neighbourhood_id=n.id,
                    address=self.rpc.identity_pb2.Address(
                        building=f"{house // 60 + 1}号楼", unit=f"{house // 12 % 5 + 1}", room=f"{house % 12 + 101}"
                    ),
                    real_name=chinese_name(seed),
                    phone=bulk_phone(self.world.run, i, salt),
                    id_number=bulk_id_number(i),
                    party_member=i % party_every == 0,
                )

            async def batch(start: int, stop: int) -> int:
                salts = dict.fromkeys(range(start, stop), 0)
                for _attempt in range(4):
                    request = self.rpc.identity_pb2.ImportResidentsRequest(
                        residents=[record(i, salts[i]) for i in range(start, stop)]
                    )
                    reply = await self.rpc.call("identity", "ImportResidents", request)
                    if reply.report.applied:
                        for i, made in zip(range(start, stop), reply.residents, strict=True):
                            self.imported.append((hoods[(i % households) % len(hoods)].id, made.person_id))
                        return int(reply.report.created)
                    codes = {e.code for e in reply.report.errors}
                    if codes - {"phone_taken"}:
                        break
                    for e in reply.report.errors:  # a random committee or head phone took this one: another
                        salts[start + e.row - 1] += 1
                raise RuntimeError(f"ImportResidents refused: {[(e.row, e.code) for e in reply.report.errors[:5]]}")

            t_bulk, before = time.monotonic(), rep.created
            await bulk_batches(head, t["residents"], batch, rep, deadline)
            bulk_s = time.monotonic() - t_bulk
            rep.note += (
                f"; per-item {before} in {t_bulk - t0:.1f}s, bulk {rep.created - before} in {bulk_s:.1f}s"
                f" ({(rep.created - before) / max(bulk_s, 1e-9):.0f}/s)"
            )
            if before and rep.created > before:
                full_head = self.sign_in * (FULL["residential"] + FULL["villages"])
                rep.full_scale_estimate_s = full_head * (t_bulk - t0) / before + (
                    FULL["residents"] - full_head
                ) * bulk_s / (rep.created - before)

        return await self._part(report, requires, body)

    # boards (opened by the boards service from identity's events) -------------------------------
    async def boards(self) -> PartReport:
        hoods = self.world.neighbourhoods
        report = PartReport(
            "boards",
            len(hoods),
            path="none: the boards service opens the catalogue on identity.neighbourhood.created",
            note="counted when every neighbourhood shows its boards",
        )

        async def body(rep: PartReport) -> None:
            deadline = self._deadline()
            waiting = list(hoods)
            while waiting and time.monotonic() < deadline:
                still = []
                for n in waiting:
                    reply = await self.api.client.get(f"/v1/neighbourhoods/{n.id}/boards", headers=self.api.ops)
                    items = reply.json() if reply.status_code == 200 else []
                    if isinstance(items, dict):
                        items = items.get("items", [])
                    if items:
                        n.boards = {b["kind"]: b["id"] for b in items if b.get("neighbourhood_id") == n.id} or {
                            b["kind"]: b["id"] for b in items
                        }
                        rep.created += 1
                    else:
                        still.append(n)
                waiting = still
                if waiting:
                    await asyncio.sleep(0.2)
            if waiting:
                rep.status = "partial"

        return await self._part(report, ("GET /v1/neighbourhoods/{neighbourhood_id}/boards",), body)

    # posts, comments, likes ------------------------------------------------------------------------
    def _authors(self) -> list[tuple[Neighbourhood, Account]]:
        return [(n, r) for n, r in self.world.signed_in_residents() if n.boards]

    async def posts(self) -> PartReport:
        target = self.targets["posts"]
        report = PartReport(
            "posts",
            target,
            path="POST /v1/boards/{board_id}/posts (per item, as signed-in residents)",
            bulk_rpc_needed="boards.v1.BoardsService/ImportPosts (author, board, created_at in the past; "
            "events optional) — the feed needs months of history, which the per-item path cannot backdate",
        )
        if self.rpc.has("boards"):
            return await self._posts_bulk(report)
        authors = self._authors()
        if not authors:
            return await self._skip(report, "no signed-in residents with boards")
        # Boards residents post on; not 身边事 (neighbourhood_matters): a post there becomes an issue, and
        # issues are generated by their own part. Half go to 议事厅 so one board's feed is deep.
        kinds = ["deliberation_hall", "property_window", "owners_committee_line", "police_line", "family_doctor"]

        async def one(i: int) -> bool:
            n, author = authors[i % len(authors)]
            wanted = kinds[0] if i % 2 == 0 else kinds[(i // 2) % len(kinds)]
            board = n.boards.get(wanted) or n.boards.get(kinds[0]) or next(iter(n.boards.values()))
            made = await self.api.call(
                "POST",
                f"/v1/boards/{board}/posts",
                {"title": f"邻里话题 {i}", "body": f"大家好，关于小区第{i}件事，想听听大家的意见。", "tags": ["邻里"]},
                author.headers,
                idempotency_key=f"seed-post-{self.world.run}-{i}",
            )
            n.posts.append(made["id"])
            return True

        async def body(rep: PartReport) -> None:
            await fan_out(target, one, rep, self._deadline(), self.concurrency)

        return await self._part(report, ("POST /v1/boards/{board_id}/posts",), body)

    async def comments(self) -> PartReport:
        target = self.targets["comments"]
        report = PartReport(
            "comments",
            target,
            path="POST /v1/posts/{post_id}/comments and PUT /v1/posts/{post_id}/like (per item)",
            bulk_rpc_needed="boards.v1.BoardsService/ImportComments (post, author, created_at; likes as counts)",
        )
        if self.rpc.has("boards"):
            return await self._comments_bulk(report)
        pairs = [(n, r) for n, r in self._authors() if n.posts]
        if not pairs:
            return await self._skip(report, "no posts to comment on")

        async def one(i: int) -> bool:
            n, author = pairs[i % len(pairs)]
            post = n.posts[self.rng.randrange(len(n.posts))]
            await self.api.call(
                "POST",
                f"/v1/posts/{post}/comments",
                {"body": f"赞同，第{i}条回复"},
                author.headers,
                idempotency_key=f"seed-comment-{self.world.run}-{i}",
            )
            if i % 4 == 0 and "PUT /v1/posts/{post_id}/like" in self.api.paths:
                await self.api.call("PUT", f"/v1/posts/{post}/like", None, author.headers)
            return True

        async def body(rep: PartReport) -> None:
            await fan_out(target, one, rep, self._deadline(), self.concurrency)

        return await self._part(report, ("POST /v1/posts/{post_id}/comments",), body)

    # issues ----------------------------------------------------------------------------------------
    async def issues(self) -> PartReport:
        target = self.targets["issues"]
        report = PartReport(
            "issues",
            target,
            path="POST /v1/issues as residents, then the cadre's actions (acknowledge/start/resolve/escalate/reject)",
            bulk_rpc_needed="issues.v1.IssuesService/ImportIssues (historic issues with their timelines, states and"
            " SLA clocks in the past; the per-item path can only create issues now)",
        )
        if self.rpc.has("issues"):
            return await self._issues_bulk(report)
        reporters = [(n, r) for n, r in self.world.signed_in_residents() if n.cadre]
        if not reporters:
            return await self._skip(report, "no signed-in residents")
        paths = [p for p, _ in ISSUE_PATHS]
        weights = [w for _, w in ISSUE_PATHS]

        async def one(i: int) -> bool:
            n, reporter = reporters[i % len(reporters)]
            _category, title, text = ISSUE_TEXTS[i % len(ISSUE_TEXTS)]
            made = await self.api.call(
                "POST",
                "/v1/issues",
                {
                    "neighbourhood_id": n.id,
                    "title": title,
                    "description": f"{text}（{i}）",
                    "location": {"building": f"{i % 30 + 1}号楼"},
                },
                reporter.headers,
                idempotency_key=f"seed-issue-{self.world.run}-{i}",
            )
            n.issues.append(made["id"])
            assert n.cadre is not None
            for action in self.rng.choices(paths, weights)[0]:
                body = {"reason": "不属于居委处置范围，已告知渠道"} if action == "reject" else {}
                await self.api.call("POST", f"/v1/issues/{made['id']}/{action}", body, n.cadre.headers)
            return True

        async def body(rep: PartReport) -> None:
            await fan_out(target, one, rep, self._deadline(), self.concurrency)

        return await self._part(report, ("POST /v1/issues", "POST /v1/issues/{issue_id}/acknowledge"), body)

    # deliberation ----------------------------------------------------------------------------------
    async def topics(self) -> PartReport:
        target = self.targets["topics"]
        report = PartReport(
            "topics",
            target,
            path="POST /v1/neighbourhoods/{neighbourhood_id}/topics (per item, proposed stage only)",
            bulk_rpc_needed="boards.v1.BoardsService/ImportTopics (topics at every stage with their record)",
        )
        if self.rpc.has("boards"):
            report.target -= self.targets["conventions"]  # topics that end in a convention: that part
            return await self._topics_bulk(report, conventions=False)
        proposers = self.world.signed_in_residents()
        if not proposers:
            return await self._skip(report, "no signed-in residents")

        async def one(i: int) -> bool:
            n, person = proposers[i % len(proposers)]
            await self.api.call(
                "POST",
                f"/v1/neighbourhoods/{n.id}/topics",
                {"title": f"议题{i}：规范夜间停车", "description": "夜间车辆占用消防通道，建议划定临停区"},
                person.headers,
                idempotency_key=f"seed-topic-{self.world.run}-{i}",
            )
            return True

        async def body(rep: PartReport) -> None:
            await fan_out(target, one, rep, self._deadline(), self.concurrency)

        return await self._part(report, ("POST /v1/neighbourhoods/{neighbourhood_id}/topics",), body)

    async def conventions(self) -> PartReport:
        if self.rpc.has("boards"):
            bulk = PartReport(
                "conventions",
                self.targets["conventions"],
                path="boards.v1.BoardsService/ImportTopics: topics through the whole chain to an adopted convention",
            )
            return await self._topics_bulk(bulk, conventions=True)
        report = PartReport(
            "conventions",
            self.targets["conventions"],
            status="unavailable",
            path="a topic walked through review → consultation → project → implementation → evaluation → convention",
            bulk_rpc_needed="boards.v1.BoardsService/ImportTopics with adopted conventions (versioned text)",
            note="not generated: walking seven stages per convention through the committee's API is the only path",
        )
        self.reports.append(report)
        self.log(f"  {report.part:13} {report.status:11} {report.note}")
        return report

    # storefronts -----------------------------------------------------------------------------------
    async def storefronts(self) -> PartReport:
        target = self.targets["storefronts"]
        report = PartReport(
            "storefronts",
            target,
            path="per organisation: its administrator (POST /v1/people, login) registers it, the operator approves,"
            " the administrator opens the storefront",
            bulk_rpc_needed="volunteers.v1.VolunteersService/ImportStorefronts (approved organisations with"
            " storefronts and their served neighbourhoods)",
        )
        hoods = self.world.neighbourhoods
        if not hoods or not self.world.district_id:
            return await self._skip(report, "no neighbourhoods")
        requires = (
            "POST /v1/people",
            "POST /v1/organisations",
            "POST /v1/organisations/{organisation_id}/approve",
            "POST /v1/organisations/{organisation_id}/storefronts",
        )

        async def one(i: int) -> bool:
            seed = f"{self.world.run}-org{i}"
            admin = await self.login(await self._person(seed))
            digest = hashlib.sha256(seed.encode()).hexdigest().upper()
            org = await self.api.call(
                "POST",
                "/v1/organisations",
                {
                    "name": f"宝山区阳光社工服务社{i}",
                    "credit_code": credit_code(digest),
                    "district_id": self.world.district_id,
                },
                admin.headers,
                idempotency_key=f"seed-{seed}",
            )
            await self.api.call("POST", f"/v1/organisations/{org['id']}/approve", {}, self.api.ops)
            served = [hoods[(i + k) % len(hoods)].id for k in range(min(3, len(hoods)))]
            await self.api.call(
                "POST",
                f"/v1/organisations/{org['id']}/storefronts",
                {"name": f"公益服务店铺{i}", "address": f"淞南路{i + 1}号", "neighbourhood_ids": served},
                admin.headers,
                idempotency_key=f"seed-{seed}-store",
            )
            return True

        async def body(rep: PartReport) -> None:
            if not self.rpc.has("volunteers"):
                await fan_out(target, one, rep, self._deadline(), self.concurrency)
                return
            rep.path = "volunteers.v1.VolunteersService/ImportStorefronts (approved organisations, open storefronts)"
            rep.bulk_rpc_needed = ""
            pb = self.rpc.volunteers_pb2

            def record(i: int) -> Any:
                seed = f"{self.world.run}-org{i}"
                digest = hashlib.sha256(seed.encode()).hexdigest().upper()
                admins = [a.person_id for a in hoods[i % len(hoods)].residents[:1] if a.person_id]
                return pb.StorefrontRecord(
                    external_ref=f"seed-{seed}",
                    organisation_name=f"宝山区阳光社工服务社{i}",
                    credit_code=credit_code(digest),
                    district_id=self.world.district_id,
                    admin_person_ids=admins,
                    name=f"公益服务店铺{i}",
                    address=f"淞南路{i + 1}号",
                    neighbourhood_ids=[hoods[(i + k) % len(hoods)].id for k in range(min(3, len(hoods)))],
                )

            async def batch(start: int, stop: int) -> int:
                request = pb.ImportStorefrontsRequest(storefronts=[record(i) for i in range(start, stop)])
                reply = await self.rpc.call_until_known("volunteers", "ImportStorefronts", request, self._deadline())
                return int(reply.report.created)

            await bulk_batches(0, target, batch, rep, self._deadline())

        return await self._part(report, () if self.rpc.has("volunteers") else requires, body)

    # volunteers ------------------------------------------------------------------------------------
    async def volunteers(self) -> PartReport:
        target = self.targets["volunteers"]
        report = PartReport(
            "volunteers",
            target,
            path="POST /v1/neighbourhoods/{id}/volunteer-applications (as the resident) + approve (cadre)",
            bulk_rpc_needed="volunteers.v1.VolunteersService/ImportVolunteers (approved volunteers per team; the"
            " per-item path needs every volunteer signed in, i.e. one argon2 login each)",
        )
        if self.rpc.has("volunteers"):
            return await self._volunteers_bulk(report, target)
        applicants = [(n, r) for n, r in self.world.signed_in_residents() if n.cadre]
        if not applicants:
            return await self._skip(report, "no signed-in residents")
        requires = (
            "POST /v1/neighbourhoods/{neighbourhood_id}/volunteer-applications",
            "POST /v1/volunteers/{volunteer_id}/approve",
        )

        async def one(i: int) -> bool:
            n, person = applicants[i]
            made = await self.api.call(
                "POST",
                f"/v1/neighbourhoods/{n.id}/volunteer-applications",
                {"skills": ["助老"], "availability": "周末上午"},
                person.headers,
                idempotency_key=f"seed-vol-{self.world.run}-{i}",
            )
            assert n.cadre is not None
            await self.api.call("POST", f"/v1/volunteers/{made['id']}/approve", {}, n.cadre.headers)
            return True

        async def body(rep: PartReport) -> None:
            # Only residents who are signed in can apply themselves: bounded by them, not by the target.
            await fan_out(min(target, len(applicants)), one, rep, self._deadline(), self.concurrency)
            if rep.created < target:
                rep.status = "partial"
                rep.note = f"only signed-in residents can apply ({len(applicants)} here)"

        return await self._part(report, requires, body)

    async def _volunteers_bulk(self, report: PartReport, target: int) -> PartReport:
        people = [(n.id, a.person_id) for n in self.world.neighbourhoods for a in n.residents if a.person_id]
        people += self.imported
        if not people:
            return await self._skip(report, "no residents")
        report.path = f"volunteers.v1.VolunteersService/ImportVolunteers, batches of {BATCH} x {BULK_CONCURRENCY}"
        report.bulk_rpc_needed = ""
        pb = self.rpc.volunteers_pb2
        count = min(target, len(people))

        async def batch(start: int, stop: int) -> int:
            records = [
                pb.VolunteerRecord(
                    external_ref=f"seed-{self.world.run}-v{i}",
                    person_id=people[i][1],
                    neighbourhood_id=people[i][0],
                    skills=[("助老", "环保", "巡逻", "助学")[i % 4]],
                    availability="周末上午",
                )
                for i in range(start, stop)
            ]
            request = pb.ImportVolunteersRequest(volunteers=records)
            reply = await self.rpc.call_until_known("volunteers", "ImportVolunteers", request, self._deadline())
            return int(reply.report.created)

        async def body(rep: PartReport) -> None:
            await bulk_batches(0, count, batch, rep, self._deadline())
            if rep.created < target and rep.status == "done":
                rep.status = "partial"
                rep.note = f"only {len(people)} residents"

        return await self._part(report, (), body)

    # --- content through the services' bulk imports (batches, a few calls in flight) -------------------
    CONTENT_BATCH = 2000
    ISSUE_BATCH = 500
    TOPIC_BATCH = 500
    HISTORY_DAYS = 730

    def _members(self) -> list[tuple[Neighbourhood, list[str]]]:
        """Per neighbourhood with boards, its verified residents' person ids (the authors of its history)."""
        return [(n, [r.person_id for r in n.residents]) for n in self.world.neighbourhoods if n.boards and n.residents]

    def _history_second(self, i: int, count: int) -> float:
        """Item i of `count` spread evenly over the last two years, oldest first (the feed gets months deep), in
        seconds since the epoch: millions of times, without datetime arithmetic (a third of the generator's
        CPU per comment went to datetimes and their conversion)."""
        span = self.HISTORY_DAYS * 86400
        return self._now_s - span + span * (i + 0.5) / max(1, count)

    def _bulk_concurrency(self) -> int:
        return max(1, min(5, self.concurrency))

    async def _posts_bulk(self, report: PartReport) -> PartReport:
        from shequtong.boards.v1 import boards_pb2 as bpb

        report.path = "boards.v1.BoardsService/ImportPosts (batches of 2,000, backdated over two years)"
        report.bulk_rpc_needed = ""
        members = self._members()
        if not members:
            return await self._skip(report, "no verified residents with boards")
        self._now_s = (datetime.now(UTC) - timedelta(minutes=1)).timestamp()
        kinds = ["deliberation_hall", "property_window", "owners_committee_line", "police_line", "family_doctor"]
        target, run = report.target, self.world.run
        self.posts_made = 0

        def post(i: int) -> Any:
            n, people = members[i % len(members)]
            wanted = kinds[0] if i % 2 == 0 else kinds[(i // 2) % len(kinds)]
            board = n.boards.get(wanted) or n.boards[kinds[0]]
            return bpb.ImportPost(
                external_ref=f"bench-{run}-post-{i}",
                board_id=board,
                author_id=people[(i // len(members)) % len(people)],
                title=f"邻里话题 {i}",
                body=f"大家好，关于小区第{i}件事，想听听大家的意见。",
                tags=["邻里"],
                created_at=_ts_seconds(self._history_second(i, target)),
            )

        async def batch(b: int) -> int:
            first = b * self.CONTENT_BATCH
            items = [post(i) for i in range(first, min(target, first + self.CONTENT_BATCH))]
            reply = await self.rpc.call("boards", "ImportPosts", bpb.ImportPostsRequest(posts=items))
            for i, record in zip(range(first, first + len(items)), reply.result.records, strict=True):
                n = members[i % len(members)][0]
                if len(n.posts) < 200:
                    n.posts.append(record.id)
            self.posts_made = max(self.posts_made, first + len(items))
            return int(reply.result.created)

        async def body(rep: PartReport) -> None:
            batches = -(-target // self.CONTENT_BATCH)
            await fan_out_batches(batches, batch, rep, self._deadline(), self._bulk_concurrency())

        return await self._part(report, (), body)

    async def _comments_bulk(self, report: PartReport) -> PartReport:
        from shequtong.boards.v1 import boards_pb2 as bpb

        report.path = "boards.v1.BoardsService/ImportComments (batches of 2,000, each after its post)"
        report.bulk_rpc_needed = ""
        posts = getattr(self, "posts_made", 0)
        members = self._members()
        if not posts or not members:
            return await self._skip(report, "no imported posts to comment on")
        target, run, total_posts = report.target, self.world.run, self.targets["posts"]
        # Comments of a post come from its neighbourhood's members, within three days of it (never later than now).
        # Grouped by post, as a migration exports them: a batch comments on its own stretch of the posts
        # (each post a random number of times), so it bumps the comment counts of its own posts and the
        # batches in flight do not queue on each other's row locks. Drawn per batch: drawn all at once
        # (3,000,000 picks sorted) the services sat idle for the generator's first five seconds.

        def comments_of(b: int) -> list[Any]:
            first, last = b * self.CONTENT_BATCH, min(target, (b + 1) * self.CONTENT_BATCH)
            lo = first * posts // target
            hi = max(lo + 1, last * posts // target)
            rng = random.Random(f"{run}-comments-{b}")
            draw = rng.random
            picks = sorted(lo + int(draw() * (hi - lo)) for _ in range(first, last))
            items = []
            for i, j in zip(range(first, last), picks, strict=True):
                people = members[j % len(members)][1]
                delay = 60 * (1 + int(draw() * (3 * 24 * 60 - 1)))  # a minute to three days after the post
                items.append(
                    bpb.ImportComment(
                        external_ref=f"bench-{run}-comment-{i}",
                        post_external_ref=f"bench-{run}-post-{j}",
                        author_id=people[(i * 7 + j) % len(people)],
                        body=f"赞同，第{i}条回复",
                        created_at=_ts_seconds(min(self._history_second(j, total_posts) + delay, self._now_s)),
                    )
                )
            return items

        async def batch(b: int) -> int:
            items = comments_of(b)
            reply = await self.rpc.call("boards", "ImportComments", bpb.ImportCommentsRequest(comments=items))
            return int(reply.result.created)

        async def body(rep: PartReport) -> None:
            batches = -(-target // self.CONTENT_BATCH)
            await fan_out_batches(batches, batch, rep, self._deadline(), self._bulk_concurrency())

        return await self._part(report, (), body)

    async def _topics_bulk(self, report: PartReport, conventions: bool) -> PartReport:
        from shequtong.boards.v1 import boards_pb2 as bpb

        report.path = "boards.v1.BoardsService/ImportTopics (batches of 500, every stage with its record)"
        report.bulk_rpc_needed = ""
        hoods = [(n, people) for n, people in self._members() if n.cadre and "deliberation_hall" in n.boards]
        if not hoods:
            return await self._skip(report, "no neighbourhood with a committee and residents")
        now = datetime.now(UTC) - timedelta(minutes=1)
        target, run = report.target, self.world.run
        chain = [
            bpb.TOPIC_STAGE_REVIEW,
            bpb.TOPIC_STAGE_CONSULTATION,
            bpb.TOPIC_STAGE_PROJECT,
            bpb.TOPIC_STAGE_IMPLEMENTATION,
            bpb.TOPIC_STAGE_EVALUATION,
        ]
        # Where topics that end without a convention stand (shares): still open at each stage, declined, concluded.
        endings: list[tuple[list[int], float]] = [
            ([], 0.10),
            (chain[:1], 0.10),
            ([bpb.TOPIC_STAGE_REVIEW, bpb.TOPIC_STAGE_DECLINED], 0.15),
            (chain[:2], 0.15),
            ([*chain[:2], bpb.TOPIC_STAGE_CONCLUDED], 0.15),
            (chain[:3], 0.05),
            (chain[:4], 0.10),
            (chain[:5], 0.05),
            ([*chain[:5], bpb.TOPIC_STAGE_CONCLUDED], 0.15),
        ]
        rng = random.Random(13 if conventions else 12)

        def topic(i: int) -> Any:
            n, people = hoods[i % len(hoods)]
            assert n.cadre is not None
            stages = (
                [*chain, bpb.TOPIC_STAGE_CONVENTION]
                if conventions
                else rng.choices([e for e, _ in endings], [w for _, w in endings])[0]
            )
            start = now - timedelta(days=self.HISTORY_DAYS) + timedelta(days=self.HISTORY_DAYS - 60) * (i / target)
            steps = [
                bpb.ImportTopicStep(
                    to_stage=stage,
                    actor_id=n.cadre.person_id,
                    reason="居委会议定",
                    at=_ts(start + timedelta(days=7 * (k + 1))),
                )
                for k, stage in enumerate(stages)
            ]
            out = bpb.ImportTopic(
                external_ref=f"bench-{run}-{'convention' if conventions else 'topic'}-{i}",
                neighbourhood_id=n.id,
                proposer_id=people[i % len(people)],
                title=f"议题{i}：规范夜间停车",
                description="夜间车辆占用消防通道，建议划定临停区",
                created_at=_ts(start),
                steps=steps,
            )
            if bpb.TOPIC_STAGE_PROJECT in stages:
                out.owner_id = n.cadre.person_id
                done = bpb.TOPIC_STAGE_EVALUATION in stages
                progress = 100 if done else (50 if bpb.TOPIC_STAGE_IMPLEMENTATION in stages else 0)
                due = _ts(start + timedelta(days=40))
                out.milestones.append(bpb.ImportMilestone(title="划线施工", due_at=due, progress=progress))
            if bpb.TOPIC_STAGE_EVALUATION in stages and (conventions or bpb.TOPIC_STAGE_CONCLUDED in stages):
                out.evaluation_summary = "居民满意度高，夜间通道保持畅通"
            if conventions:
                out.convention.CopyFrom(
                    bpb.ImportConvention(
                        title=f"停车公约{i}",
                        text="一、夜间车辆停放在划定区域；二、消防通道任何时候不得占用。",
                        tally=[
                            bpb.VoteTally(option_label="同意", votes=120),
                            bpb.VoteTally(option_label="反对", votes=8),
                        ],
                        ballot_count=128,
                    )
                )
            return out

        async def batch(b: int) -> int:
            first = b * self.TOPIC_BATCH
            items = [topic(i) for i in range(first, min(target, first + self.TOPIC_BATCH))]
            reply = await self.rpc.call("boards", "ImportTopics", bpb.ImportTopicsRequest(topics=items))
            return int(reply.result.created)

        async def body(rep: PartReport) -> None:
            batches = -(-target // self.TOPIC_BATCH)
            await fan_out_batches(batches, batch, rep, self._deadline(), self._bulk_concurrency())

        return await self._part(report, (), body)

    async def _issues_bulk(self, report: PartReport) -> PartReport:
        from shequtong.issues.v1 import issues_pb2 as ipb

        report.path = "issues.v1.IssuesService/ImportIssues (batches of 500, historic timelines replayed by the rules)"
        report.bulk_rpc_needed = ""
        hoods = [(n, people) for n, people in self._members() if n.cadre]
        if not hoods:
            return await self._skip(report, "no neighbourhood with a committee and residents")
        now = datetime.now(UTC) - timedelta(minutes=1)
        target, run = report.target, self.world.run
        rng = random.Random(17)
        a = ipb.ImportStepAction
        h = timedelta(hours=1)

        def steps_for(kind: str, t0: datetime, cadre: str) -> list[Any]:
            def s(action: int, hours: float, **kw: Any) -> Any:
                role = kw.pop("role", "committee")
                actor = kw.pop("actor", cadre)
                if action in (a.IMPORT_STEP_ACTION_GRID_CLOSED, a.IMPORT_STEP_ACTION_CLOSE):
                    role, actor = "", ""
                return ipb.ImportIssueStep(action=action, at=_ts(t0 + hours * h), actor_id=actor, actor_role=role, **kw)

            respond = rng.uniform(0.3, 12) if rng.random() > 0.05 else rng.uniform(15.5, 30)  # 5% answered late
            fix = respond + rng.uniform(2, 60)
            verdict = (
                [s(a.IMPORT_STEP_ACTION_RATE, fix + rng.uniform(1, 48), actor="", role="", rating=5, fixed=True)]
                if rng.random() < 0.7
                else [s(a.IMPORT_STEP_ACTION_CLOSE, fix + 73)]
            )
            if kind == "solved":
                return [
                    s(a.IMPORT_STEP_ACTION_ACKNOWLEDGE, respond),
                    s(a.IMPORT_STEP_ACTION_START, respond + 0.5),
                    s(a.IMPORT_STEP_ACTION_RESOLVE, fix, note="已处理完毕"),
                    *verdict,
                ]
            if kind == "grid":
                return [
                    s(a.IMPORT_STEP_ACTION_ACKNOWLEDGE, respond),
                    s(a.IMPORT_STEP_ACTION_DISPATCH, respond + 1),
                    s(a.IMPORT_STEP_ACTION_GRID_CLOSED, fix + 24),
                    s(a.IMPORT_STEP_ACTION_CLOSE, fix + 24 + 73),
                ]
            if kind == "rejected":
                return [s(a.IMPORT_STEP_ACTION_REJECT, respond, reason="不属于居委处置范围，已告知渠道")]
            if kind == "open_ack":
                return [s(a.IMPORT_STEP_ACTION_ACKNOWLEDGE, 0.5)]
            if kind == "open_started":
                return [s(a.IMPORT_STEP_ACTION_ACKNOWLEDGE, 0.5), s(a.IMPORT_STEP_ACTION_START, 1)]
            return []

        kinds = [("solved", 0.87), ("grid", 0.03), ("rejected", 0.04)]
        kinds += [("open", 0.02), ("open_ack", 0.02), ("open_started", 0.02)]

        # The reference texts' categories in the default catalogue (street lights have no grid code of their own).
        codes = {"street_light": "other", "water_leak": "water_main", "noise": "construction_noise"}

        def issue(i: int) -> Any:
            n, people = hoods[i % len(hoods)]
            assert n.cadre is not None
            kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            category, title, text = ISSUE_TEXTS[i % len(ISSUE_TEXTS)]
            category = codes.get(category, category)
            if kind == "grid" and category == "other":
                category = "rubbish"  # a dispatch needs a category the grid knows
            if kind.startswith("open"):
                t0 = now - timedelta(hours=rng.uniform(2, 10))  # still open: reported within the response window
            else:
                t0 = now - timedelta(days=self.HISTORY_DAYS) + timedelta(days=self.HISTORY_DAYS - 30) * (i / target)
            reporter = people[i % len(people)]
            return ipb.ImportIssue(
                external_ref=f"bench-{run}-issue-{i}",
                neighbourhood_id=n.id,
                category_code=category,
                title=title,
                description=f"{text}（{i}）",
                location=ipb.IssueLocation(building=f"{i % 30 + 1}号楼"),
                public=True,
                source="resident",
                reporter_id=reporter,
                created_by=reporter,
                assignee_id=n.cadre.person_id,
                reported_at=_ts(t0),
                steps=steps_for(kind, t0, n.cadre.person_id),
            )

        async def batch(b: int) -> int:
            first = b * self.ISSUE_BATCH
            items = [issue(i) for i in range(first, min(target, first + self.ISSUE_BATCH))]
            reply = await self.rpc.call("issues", "ImportIssues", ipb.ImportIssuesRequest(issues=items))
            for i, made in zip(range(first, first + len(items)), reply.issues, strict=True):
                n = hoods[i % len(hoods)][0]
                if len(n.issues) < 200:
                    n.issues.append(made.id)
            return int(reply.created)

        async def body(rep: PartReport) -> None:
            batches = -(-target // self.ISSUE_BATCH)
            await fan_out_batches(batches, batch, rep, self._deadline(), self._bulk_concurrency())

        return await self._part(report, (), body)

    async def _skip(self, report: PartReport, why: str) -> PartReport:
        report.status = "skipped"
        report.note = why
        self.reports.append(report)
        self.log(f"  {report.part:13} skipped     {why}")
        return report

    async def run(self, parts: list[str] | None = None) -> dict[str, Any]:
        await self.api.load_openapi()
        order = [
            "regions",
            "committees",
            "residents",
            "boards",
            "posts",
            "comments",
            "issues",
            "topics",
            "conventions",
            "volunteers",
            "storefronts",
        ]
        t0 = time.monotonic()
        for name in order:
            if parts and name not in parts:
                continue
            await getattr(self, name)()
        full = {**FULL, "regions": 1 + FULL["subdistricts"] + FULL["residential"] + FULL["villages"]}
        full["committees"] = 2 * (FULL["residential"] + FULL["villages"])
        full["boards"] = FULL["residential"] + FULL["villages"]
        return {
            "targets": self.targets,
            "parts": [r.as_dict(full.get(r.part)) for r in self.reports],
            "seconds": round(time.monotonic() - t0, 1),
        }


def _limits(connections: int) -> httpx.Limits:
    """Idle connections are dropped after 2 s: uvicorn closes a keep-alive connection idle for 5 s, httpx
    would reuse one for 5 s, and a request sent as the server closes it fails (RemoteProtocolError)."""
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0)


async def seed(
    gateway_url: str,
    ops_headers: dict[str, str],
    scale: float,
    part_budget: float,
    concurrency: int = 8,
    parts: list[str] | None = None,
    sign_in_per_neighbourhood: int = 1,
    log: Callable[[str], None] = print,
    total_budget: float | None = None,
    grpc_addrs: dict[str, str] | None = None,
    ops_refresh: Callable[[], dict[str, str]] | None = None,
    cpu_meter: Callable[[], Any] | None = None,
) -> tuple[dict[str, Any], World]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30, limits=_limits(concurrency * 2)) as client:
        seeder = Seeder(
            Api(client, ops_headers),
            plan(scale),
            part_budget,
            concurrency,
            sign_in_per_neighbourhood,
            log,
            total_budget,
            grpc_addrs,
            ops_refresh,
            cpu_meter,
        )
        try:
            report = await seeder.run(parts)
        finally:
            await seeder.rpc.close()
    report["scale"] = scale
    report["part_budget_s"] = part_budget
    report["signed_in_per_neighbourhood"] = sign_in_per_neighbourhood
    return report, seeder.world


cli = typer.Typer(add_completion=False, help=__doc__)


@cli.command()
def main(
    scale: float = typer.Option(0.01, help="1.0 = the full Baoshan district; 0.01 = the CI smoke"),
    part_budget: float = typer.Option(60.0, help="seconds each part may take (a part stops there)"),
    concurrency: int = typer.Option(8, help="requests in flight"),
    part: list[str] = typer.Option(None, help="only these parts (repeatable)"),
    out: str = typer.Option("", help="write the report as JSON here"),
    total_budget: float = typer.Option(0.0, help="seconds the whole generation may take (0: no bound)"),
    drain_timeout: float = typer.Option(
        900.0, help="then wait this long for every service to have handled the data set's events (0: do not)"
    ),
    signed_in: int = typer.Option(
        1,
        help="residents per neighbourhood made through the public path with a password (registration, review,"
        " login: two argon2 hashes each), for journeys to sign in as; the rest come through the bulk import",
    ),
    replicas: int = typer.Option(
        2, help="processes of each service whose bulk import the generator calls (the chart's default is 2)"
    ),
) -> None:
    """Starts a fresh local stack (PostgreSQL when reachable), generates the district, prints the report —
    with how long the services then took to handle its events and the CPU each process spent on both."""
    from bench.procs import CpuMeter
    from bench.stack import operator_headers, process_groups, running_stack, wait_until_drained

    with running_stack(replicas=dict.fromkeys(BULK_SERVICES, replicas)) as (stack, ops_headers):
        print(f"seeding at scale {scale} through {stack.gateway_url}, {replicas} replica(s) of {BULK_SERVICES}")
        meter = CpuMeter(process_groups(stack, stack.nats)).start()  # type: ignore[attr-defined]
        report, _world = asyncio.run(
            seed(
                stack.gateway_url,
                ops_headers,
                scale,
                part_budget,
                concurrency,
                part or None,
                signed_in,
                total_budget=total_budget or None,
                grpc_addrs=bulk_addrs(stack),
                ops_refresh=lambda: operator_headers(stack),
                cpu_meter=lambda: CpuMeter(process_groups(stack, stack.nats)),  # type: ignore[attr-defined]
            )
        )
        report["cpu_while_seeding"] = meter.stop()
        report["replicas"] = {name: 1 + len(stack.replica_ports.get(name, [])) for name in BULK_SERVICES}
        if drain_timeout > 0:
            meter = CpuMeter(process_groups(stack, stack.nats)).start()  # type: ignore[attr-defined]
            report["pipeline_drain"] = asyncio.run(wait_until_drained(stack, within=drain_timeout))
            report["cpu_while_draining"] = meter.stop()
            print(f"events handled everywhere {report['pipeline_drain']['seconds']} s after the last part")
    text = json.dumps(report, ensure_ascii=False, indent=1)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(text)


async def relogin(gateway_url: str, world: World, concurrency: int = 4) -> int:
    """Fresh access tokens (they live ~15 minutes) for every account the journeys will use."""
    accounts = [a for n in world.neighbourhoods for a in (n.cadre, n.secretary, *n.residents) if a and a.token]
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30, limits=_limits(concurrency)) as client:
        seeder = Seeder(Api(client, {}), plan(0.01), 0)
        gate = asyncio.Semaphore(concurrency)

        async def one(account: Account) -> None:
            async with gate:
                await seeder.login(account)

        await asyncio.gather(*(one(a) for a in accounts))
    return len(accounts)


if __name__ == "__main__":
    cli()
