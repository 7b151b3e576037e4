"""The security suite runs against the same kind of system as the integration journeys: the session
fixtures (`workdir`, `nats_server`, `databases`, `system`, `api`, `ops_headers`, ...) are the ones of
tests/integration/conftest.py, re-exported here so this folder can run on its own."""

from __future__ import annotations

import httpx
import pytest
from integration.conftest import (  # noqa: F401  (fixtures)
    api,
    collector,
    databases,
    grid_platform_headers,
    nats_server,
    ops_headers,
    system,
    workdir,
)

from security.world import World, build_world


@pytest.fixture(scope="session")
def world(api: httpx.Client, ops_headers: dict[str, str]) -> World:  # noqa: F811
    """Communities A and B and A's objects, shared by every module of the suite."""
    return build_world(api, ops_headers)
