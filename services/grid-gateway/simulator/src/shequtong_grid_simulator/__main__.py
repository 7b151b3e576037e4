"""`python -m shequtong_grid_simulator`: serve the grid-platform simulator (a test tool).

On SIGINT/SIGTERM uvicorn stops accepting, finishes in-flight requests and runs the lifespan
shutdown (stop the pusher, save state); the process then exits with status 0.
"""

from __future__ import annotations

import logging
import signal
import sys
from types import FrameType

import uvicorn

from .app import create_app
from .catalogue import CatalogueError
from .logs import configure_logging
from .settings import Settings, SettingsError
from .store import StateFileError

log = logging.getLogger("shequtong_grid_simulator")


def _exit_cleanly(signum: int, _frame: FrameType | None) -> None:
    # uvicorn swaps in its own handlers while serving, and after its graceful shutdown
    # re-raises the signal to whatever was installed before: this. Exiting 0 here tells a
    # supervisor the stop was orderly, instead of dying by the signal (status -15/143).
    log.info("grid simulator stopped", extra={"signal": signal.Signals(signum).name})
    sys.exit(0)


def main() -> None:
    configure_logging()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_cleanly)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        app = create_app(settings)
    except (SettingsError, CatalogueError, StateFileError) as exc:
        log.error("cannot start the grid simulator", extra={"error": str(exc)})
        sys.exit(2)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.http_port,
        log_config=None,  # keep our JSON handler on the root logger
        lifespan="on",
        server_header=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
