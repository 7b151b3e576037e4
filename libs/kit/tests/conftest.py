"""Fixtures the kit's tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shequtong_kit.testing import Databases, temp_workdir


@pytest.fixture(scope="module")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for the test module: PostgreSQL where it runs (as in CI), else an SQLite file."""
    name = "kit_" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with temp_workdir("kit-db-") as workdir:
        dbs = Databases(Path(workdir))
        yield dbs.create(name)
        dbs.drop_all()
