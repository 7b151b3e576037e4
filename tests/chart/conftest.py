"""Chart tests: tools/ and this folder importable, and the `case` fixture (every values case)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parents[1] / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from chartlib import CASES  # noqa: E402


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)
