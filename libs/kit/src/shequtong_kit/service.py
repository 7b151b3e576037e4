"""Running a service: one object wires settings, database, NATS, outbox relay, consumers and the
gRPC server, and takes them down gracefully on SIGTERM. A service's __main__ only declares its parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from shequtong_kit import auth
from shequtong_kit.clock import Clock, clock_from_env
from shequtong_kit.consumer import ConsumerRunner, ConsumerSpec
from shequtong_kit.db import create_engine, session_factory
from shequtong_kit.grpc_client import ServiceTokens, identity_jwks_loader
from shequtong_kit.grpc_server import build_server, set_serving
from shequtong_kit.logging import setup_logging
from shequtong_kit.nats_io import connect, ensure_streams
from shequtong_kit.outbox import Outbox, OutboxRelay
from shequtong_kit.revocations import DEFAULT_LOOKBACK, SessionRevocationFollower
from shequtong_kit.settings import ServiceSettings
from shequtong_kit.telemetry import setup_telemetry

log = logging.getLogger(__name__)

Task = Callable[[], Coroutine[Any, Any, None]]


class ServiceApp:
    def __init__(
        self,
        name: str,
        settings: ServiceSettings,
        *,
        produces: Sequence[str] = (),
        clock: Clock | None = None,
        verifier: auth.TokenVerifier | None = None,
        follow_session_revocations: bool = True,
        revocation_lookback: timedelta = DEFAULT_LOOKBACK,
    ) -> None:
        self.name = name
        self.settings = settings
        self.clock = clock or clock_from_env()
        self.engine = create_engine(settings.database_url, settings.db_pool_size, settings.db_max_overflow)
        self.sessions = session_factory(self.engine, cache_lineages=True)
        self.outbox = Outbox(name, self.clock)
        self.produces = list(produces)
        self.verifier = verifier
        # Ended sessions (identity.session.revoked) are refused by this service's verifier too; the
        # lookback must cover the access-token lifetime. Opt out for processes that verify no tokens.
        self.follow_session_revocations = follow_session_revocations
        self.revocation_lookback = revocation_lookback
        self.service_tokens: ServiceTokens | None = None
        if settings.identity_addr and settings.service_client_id:
            self.service_tokens = ServiceTokens(
                settings.identity_addr, settings.service_client_id, settings.service_client_secret
            )
        self._servicers: list[tuple[Callable[[Any, Any], None], Any, str]] = []
        self._consumers: list[ConsumerSpec] = []
        self._tasks: list[Task] = []
        self._on_start: list[Task] = []
        self._on_stop: list[Task] = []
        self.nc: Any = None
        self.js: Any = None
        self._stop = asyncio.Event()

    # --- declaration -----------------------------------------------------------------------------
    def add_servicer(self, add: Callable[[Any, Any], None], servicer: Any, full_name: str) -> None:
        self._servicers.append((add, servicer, full_name))

    def add_consumer(self, spec: ConsumerSpec) -> None:
        self._consumers.append(spec)

    def add_task(self, task: Task) -> None:
        """A background loop started once the service is connected (schedulers, pollers)."""
        self._tasks.append(task)

    def on_start(self, hook: Task) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Task) -> None:
        self._on_stop.append(hook)

    # --- running ---------------------------------------------------------------------------------
    async def _database_ready(self) -> None:
        for attempt in range(120):
            try:
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
                return
            except Exception as exc:
                if attempt == 0:
                    log.warning("database not ready yet", extra={"error": type(exc).__name__})
                await asyncio.sleep(0.5)
        raise RuntimeError("database unreachable")

    def _instrument_database(self, exporting_traces: bool) -> None:
        from opentelemetry.metrics import Observation

        from shequtong_kit.telemetry import meter

        pool = self.engine.sync_engine.pool

        def checked_out(_options: Any) -> list[Observation]:
            count = getattr(pool, "checkedout", None)
            return [Observation(count() if callable(count) else 0, {"service": self.name})]

        meter("shequtong.db").create_observable_gauge(
            "db_pool_connections_in_use", callbacks=[checked_out], description="database connections checked out"
        )
        if exporting_traces:
            from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

            SQLAlchemyInstrumentor().instrument(engine=self.engine.sync_engine)

    async def serve(self) -> None:
        setup_logging(self.name, self.settings.log_level)
        telemetry = setup_telemetry(self.name, self.settings.metrics_port)
        self._instrument_database(telemetry.exporting_traces)
        if self.verifier is None and self.settings.identity_addr:
            self.verifier = auth.TokenVerifier(await identity_jwks_loader(self.settings.identity_addr))
        server, health, port = build_server(
            self.verifier, self._servicers, self.settings.grpc_port, self.settings.grpc_host
        )
        names = [full for _, _, full in self._servicers]
        await set_serving(health, names, False)
        await server.start()
        log.info("grpc listening", extra={"port": port})

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)

        await self._database_ready()

        async def disconnected() -> None:
            await set_serving(health, names, False)

        async def reconnected() -> None:
            await set_serving(health, names, True)

        self.nc = await connect(
            self.settings.nats_url, self.name, disconnected_cb=disconnected, reconnected_cb=reconnected
        )
        self.js = self.nc.jetstream()
        await ensure_streams(self.js, self.produces)

        background: list[asyncio.Task[None]] = []
        relay = OutboxRelay(
            self.engine,
            self.sessions,
            self.js,
            self.settings.relay_batch_size,
            self.settings.relay_poll_interval,
            self.clock,
            linger=self.settings.relay_linger_seconds,
        )
        background.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        if self.follow_session_revocations and self.verifier is not None:
            follower = SessionRevocationFollower(self.js, self.verifier, self.revocation_lookback)
            try:
                await follower.start()  # subscribed before SERVING; run() retries if this failed
            except Exception as exc:
                log.warning("session revocations not followed yet", extra={"error": type(exc).__name__})
            background.append(asyncio.create_task(follower.run(), name="session-revocations"))
        runners = [
            ConsumerRunner(self.js, self.sessions, spec, self.clock, linger=self.settings.consumer_linger_seconds)
            for spec in self._consumers
        ]
        for runner in runners:
            background.append(asyncio.create_task(runner.run(), name=f"consumer-{runner.spec.name}"))
        for hook in self._on_start:
            await hook()
        for task in self._tasks:
            background.append(asyncio.create_task(task(), name=getattr(task, "__name__", "task")))
        for bg in background:
            bg.add_done_callback(_report_crash)

        await set_serving(health, names, True)
        log.info("serving", extra={"service": self.name})
        await self._stop.wait()

        log.info("shutting down", extra={"grace_seconds": self.settings.shutdown_grace_seconds})
        await set_serving(health, names, False)
        await server.stop(self.settings.shutdown_grace_seconds)
        relay.stop()
        for runner in runners:
            runner.stop()
        for bg in background:
            bg.cancel()
        for bg in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await bg
        for hook in self._on_stop:
            with contextlib.suppress(Exception):
                await hook()
        with contextlib.suppress(Exception):
            await self.nc.close()
        if self.service_tokens:
            await self.service_tokens.close()
        await self.engine.dispose()
        telemetry.shutdown()
        log.info("stopped")

    def request_stop(self) -> None:
        self._stop.set()


def _report_crash(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task crashed", extra={"task": task.get_name(), "error": repr(exc)})


def run_main(
    package: str,
    build: Callable[[], ServiceApp],
    argv: Sequence[str] | None = None,
) -> None:
    """`python -m <package> [serve|migrate]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "serve"
    if command == "migrate":
        migrate(package)
        return
    if command != "serve":
        print(f"usage: python -m {package} [serve|migrate]", file=sys.stderr)
        raise SystemExit(2)
    app = build()
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is optional
        pass
    asyncio.run(app.serve())


def migrate(package: str) -> None:
    """Apply the service's Alembic migrations (packaged as `<package>/migrations`) to DATABASE_URL."""
    import os

    from alembic import command
    from alembic.config import Config

    setup_logging(package, os.environ.get("LOG_LEVEL", "INFO"))
    if not os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is required", file=sys.stderr)
        raise SystemExit(2)
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    command.upgrade(config, "head")
    log.info("migrations applied", extra={"package": package})
