"""`python -m shequtong_grid_simulator`: serve the grid-platform simulator (a test tool).

uvicorn installs the SIGINT/SIGTERM handlers: the server stops accepting, finishes in-flight
requests, runs the lifespan shutdown (stop the pusher, save state) and the process exits 0.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from .app import create_app
from .catalogue import CatalogueError
from .logs import configure_logging
from .settings import Settings, SettingsError


def main() -> None:
    configure_logging()
    log = logging.getLogger("shequtong_grid_simulator")
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        app = create_app(settings)
    except (SettingsError, CatalogueError) as exc:
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
