"""The whole system as local processes: used by `make run` (embedded default) and by the integration
tests (fresh NATS and databases per run). One definition of what runs and with which environment.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from shequtong_kit.testing import (
    Databases,
    NatsServer,
    ServiceProcess,
    free_port,
    signing_keys_json,
    wait_grpc_serving,
    wait_http_ok,
)


@dataclass(frozen=True)
class ServiceDef:
    name: str
    module: str
    default_grpc_port: int
    http: bool = False
    default_http_port: int = 0


GRPC_SERVICES: tuple[ServiceDef, ...] = (
    ServiceDef("identity", "shequtong_identity", 50051),
    ServiceDef("boards", "shequtong_boards", 50052),
    ServiceDef("issues", "shequtong_issues", 50053),
    ServiceDef("grid-gateway", "shequtong_grid_gateway", 50054, http=True, default_http_port=8081),
    ServiceDef("volunteers", "shequtong_volunteers", 50055),
    ServiceDef("insights", "shequtong_insights", 50056),
)
GATEWAY = ServiceDef("api-gateway", "shequtong_api_gateway", 0, http=True, default_http_port=8080)
SIMULATOR = ServiceDef("grid-simulator", "shequtong_grid_simulator", 0, http=True, default_http_port=8090)

OPERATOR_CLIENT = "ops"
GRID_PLATFORM_CLIENT = "grid-platform"


@dataclass
class Secrets:
    signing_keys: str
    pii_hmac_key: str
    pii_encryption_key: str
    service_secrets: dict[str, str]
    grid_api_key: str
    grid_webhook_secret: str
    grid_webhook_api_key: str

    @classmethod
    def generate(cls) -> Secrets:
        import base64

        names = [s.name for s in GRPC_SERVICES] + [GATEWAY.name, OPERATOR_CLIENT, GRID_PLATFORM_CLIENT]
        return cls(
            signing_keys=signing_keys_json(),
            pii_hmac_key=secrets.token_hex(32),
            pii_encryption_key=base64.urlsafe_b64encode(os.urandom(32)).decode(),
            service_secrets={name: secrets.token_urlsafe(24) for name in names},
            grid_api_key=secrets.token_urlsafe(16),
            grid_webhook_secret=secrets.token_urlsafe(24),
            grid_webhook_api_key=secrets.token_urlsafe(16),
        )

    @classmethod
    def load_or_create(cls, path: Path) -> Secrets:
        if path.exists():
            return cls(**json.loads(path.read_text()))
        created = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(created.__dict__, indent=2))
        path.chmod(0o600)
        return created

    def service_accounts(self) -> str:
        accounts: dict[str, object] = {
            name: secret
            for name, secret in self.service_secrets.items()
            if name not in (OPERATOR_CLIENT, GRID_PLATFORM_CLIENT)
        }
        accounts[OPERATOR_CLIENT] = {"secret": self.service_secrets[OPERATOR_CLIENT], "roles": ["operator@*"]}
        accounts[GRID_PLATFORM_CLIENT] = {
            "secret": self.service_secrets[GRID_PLATFORM_CLIENT],
            "roles": ["grid_platform@*"],
        }
        return json.dumps(accounts)


@dataclass
class Stack:
    """Ports, databases and processes of one running system."""

    workdir: Path
    nats_url: str
    database_urls: dict[str, str]
    secrets: Secrets
    fixed_ports: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    grpc_ports: dict[str, int] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    http_ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    # Further replicas of a service (the chart runs several): their gRPC ports, in start order.
    replica_ports: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for index, svc in enumerate((*GRPC_SERVICES, GATEWAY, SIMULATOR)):
            if svc.default_grpc_port:
                self.grpc_ports[svc.name] = svc.default_grpc_port if self.fixed_ports else free_port()
            if svc.http:
                self.http_ports[svc.name] = svc.default_http_port if self.fixed_ports else free_port()
            if svc is not SIMULATOR:
                self.metrics_ports[svc.name] = 9101 + index if self.fixed_ports else free_port()

    # --- addresses -------------------------------------------------------------------------------
    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.grpc_ports[name]}"

    def balanced_addr(self, name: str) -> str:
        """A gRPC target over every replica of `name` (use with the round_robin load-balancing policy)."""
        ports = [self.grpc_ports[name], *self.replica_ports.get(name, [])]
        return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.http_ports[GATEWAY.name]}"

    @property
    def simulator_url(self) -> str:
        return f"http://127.0.0.1:{self.http_ports[SIMULATOR.name]}"

    @property
    def grid_gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.http_ports['grid-gateway']}"

    # --- environment (what the Helm chart sets, with local addresses) ------------------------------
    def env_for(self, name: str) -> dict[str, str]:
        s = self.secrets
        env: dict[str, str] = {
            "OTEL_SERVICE_NAME": name,
            "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        }
        if name == SIMULATOR.name:
            env.update(
                {
                    "HTTP_PORT": str(self.http_ports[name]),
                    "SIMULATOR_API_KEY": s.grid_api_key,
                    "SIMULATOR_WEBHOOK_URL": f"{self.grid_gateway_url}/v1/grid/servicerequestupdates",
                    "SIMULATOR_WEBHOOK_SECRET": s.grid_webhook_secret,
                    "SIMULATOR_WEBHOOK_API_KEY": s.grid_webhook_api_key,
                }
            )
            return {**env, **self._extra(name)}
        env["METRICS_PORT"] = str(self.metrics_ports[name])
        env["NATS_URL"] = self.nats_url
        if name != GATEWAY.name:
            env["DATABASE_URL"] = self.database_urls[name]
            env["GRPC_PORT"] = str(self.grpc_ports[name])
        if name != "identity":
            env["IDENTITY_ADDR"] = self.addr("identity")
            env["SERVICE_CLIENT_ID"] = name
            env["SERVICE_CLIENT_SECRET"] = s.service_secrets[name]
        if name == "identity":
            env.update(
                {
                    "IDENTITY_SIGNING_KEYS": s.signing_keys,
                    "PII_HMAC_KEY": s.pii_hmac_key,
                    "PII_ENCRYPTION_KEY": s.pii_encryption_key,
                    "SERVICE_ACCOUNTS": s.service_accounts(),
                    "SMS_OUTBOX_FILE": str(self.workdir / "sms-outbox.jsonl"),
                }
            )
        if name == "grid-gateway":
            env.update(
                {
                    "HTTP_PORT": str(self.http_ports[name]),
                    "GRID_BASE_URL": self.simulator_url,
                    "GRID_API_KEY": s.grid_api_key,
                    "GRID_WEBHOOK_SECRET": s.grid_webhook_secret,
                    "GRID_WEBHOOK_API_KEY": s.grid_webhook_api_key,
                    # Quick enough for a developer watching (and for the tests): poll every
                    # second, probe a platform that was down after 3 s, retry at most 10 s apart.
                    "GRID_POLL_INTERVAL_SECONDS": "1",
                    "GRID_POLL_REQUESTS_EVERY_SECONDS": "10",
                    "GRID_CIRCUIT_COOLDOWN_SECONDS": "3",
                    "GRID_RETRY_MAX_DELAY_SECONDS": "10",
                    "GRID_SEND_RATE_PER_SECOND": "50",
                }
            )
        if name == GATEWAY.name:
            env["HTTP_PORT"] = str(self.http_ports[name])
            env["HTTP_HOST"] = "127.0.0.1"
            env["PUBLIC_BASE_URL"] = self.gateway_url
            for svc in GRPC_SERVICES:
                env[f"{svc.name.upper().replace('-', '_')}_ADDR"] = self.addr(svc.name)
        return {**env, **self._extra(name)}

    def _extra(self, name: str) -> dict[str, str]:
        shared = {k: v for k, v in self.extra_env.items() if ":" not in k}
        specific = {k.split(":", 1)[1]: v for k, v in self.extra_env.items() if k.startswith(f"{name}:")}
        return {**shared, **specific}

    # --- processes -------------------------------------------------------------------------------
    def _process(self, svc: ServiceDef, args: list[str] | None = None) -> ServiceProcess:
        return ServiceProcess(svc.name, svc.module, self.env_for(svc.name), self.log_dir or self.workdir, args)

    def migrate(self, timeout: float = 180) -> None:
        """Every service's Alembic migrations, in parallel (each owns its database)."""
        running = []
        for svc in GRPC_SERVICES:
            proc = self._process(svc, ["migrate"])
            proc.log_path = (self.log_dir or self.workdir) / f"{svc.name}-migrate.log"
            running.append(proc.start())
        for proc in running:
            assert proc.proc is not None
            code = proc.proc.wait(timeout)
            if code != 0:
                raise RuntimeError(f"{proc.name} migrations failed ({code}):\n{proc.log_text()[-4000:]}")

    def start(self, name: str, wait: bool = True) -> ServiceProcess:
        svc = next(s for s in (*GRPC_SERVICES, GATEWAY, SIMULATOR) if s.name == name)
        proc = self._process(svc).start()
        self.processes[name] = proc
        if wait:
            self.wait(name)
        return proc

    def start_replica(self, name: str, timeout: float = 90) -> ServiceProcess:
        """One more replica of a gRPC service: the same database and NATS, its own ports (it shares the
        outbox relay and the durable consumers with the others, as the chart's replicas do)."""
        svc = next(s for s in GRPC_SERVICES if s.name == name)
        ports = self.replica_ports.setdefault(name, [])
        index = len(ports) + 2
        port = free_port()
        env = {**self.env_for(name), "GRPC_PORT": str(port), "METRICS_PORT": str(free_port())}
        if svc.http:
            env["HTTP_PORT"] = str(free_port())
        proc = ServiceProcess(f"{name}-{index}", svc.module, env, self.log_dir or self.workdir).start()
        self.processes[proc.name] = proc
        ports.append(port)
        wait_grpc_serving(port, timeout, proc)
        return proc

    def wait(self, name: str, timeout: float = 90) -> None:
        proc = self.processes[name]
        if name == GATEWAY.name:
            wait_http_ok(f"{self.gateway_url}/healthz", timeout, proc)
        elif name == SIMULATOR.name:
            wait_http_ok(f"{self.simulator_url}/services.json", timeout, proc)
        else:
            wait_grpc_serving(self.grpc_ports[name], timeout, proc)

    def start_all(self) -> None:
        import importlib.util

        names = [s.name for s in GRPC_SERVICES] + [GATEWAY.name]
        if importlib.util.find_spec(f"{SIMULATOR.module}.__main__") is not None:
            names.insert(0, SIMULATOR.name)
        for name in names:
            self.start(name, wait=False)
        for name in names:
            self.wait(name)

    def wait_ready(self, timeout: float = 60) -> dict[str, object]:
        import httpx

        deadline = time.monotonic() + timeout
        body: dict[str, object] = {}
        while time.monotonic() < deadline:
            reply = httpx.get(f"{self.gateway_url}/readyz", timeout=5)
            body = reply.json()
            if reply.status_code == 200:
                return body
            time.sleep(0.2)
        raise TimeoutError(f"gateway not ready: {body}")

    def stop_all(self) -> None:
        for proc in reversed(list(self.processes.values())):
            proc.stop()

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def restart(self, name: str) -> ServiceProcess:
        self.processes[name].stop()
        return self.start(name)

    def logs(self) -> dict[str, str]:
        return {name: proc.log_text() for name, proc in self.processes.items()}


def stack_for_tests(
    workdir: Path, databases: Databases, nats: NatsServer, extra_env: dict[str, str] | None = None
) -> Stack:
    urls = {svc.name: databases.create(svc.name) for svc in GRPC_SERVICES}
    # Small pools: several stacks and component tests share one PostgreSQL (max_connections 100).
    extra_env = {"DB_POOL_SIZE": "3", "DB_MAX_OVERFLOW": "5", **(extra_env or {})}
    return Stack(
        workdir=workdir, nats_url=nats.url, database_urls=urls, secrets=Secrets.generate(), extra_env=extra_env or {}
    )
