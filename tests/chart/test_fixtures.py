"""The production-like render, committed one file per kind under fixtures/production/.

An operator reads these to see exactly what the chart deploys; a chart change that alters
them fails here until they are regenerated and reviewed:

    UPDATE_CHART_FIXTURES=1 .venv/bin/pytest tests/chart/test_fixtures.py
"""

from __future__ import annotations

import os
from pathlib import Path

import chart_render
from chartlib import render_objects

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "production"
HEADER = (
    "# Rendered from deploy/helm/shequtong/ci/production-values.yaml (release {release}, namespace "
    "{namespace}).\n# Generated: UPDATE_CHART_FIXTURES=1 .venv/bin/pytest tests/chart/test_fixtures.py\n"
)


def expected_files() -> dict[str, str]:
    header = HEADER.format(release=chart_render.RELEASE, namespace=chart_render.NAMESPACE)
    return {
        name: header + text for name, text in chart_render.by_kind(render_objects("production-values.yaml")).items()
    }


def test_production_fixtures_match_the_chart() -> None:
    expected = expected_files()
    if os.environ.get("UPDATE_CHART_FIXTURES"):
        FIXTURES.mkdir(parents=True, exist_ok=True)
        for old in FIXTURES.glob("*.yaml"):
            old.unlink()
        for name, text in expected.items():
            (FIXTURES / name).write_text(text, encoding="utf-8")
    actual = {p.name: p.read_text(encoding="utf-8") for p in FIXTURES.glob("*.yaml")}
    assert sorted(actual) == sorted(expected), "fixture files differ; regenerate (see module docstring)"
    for name, text in expected.items():
        assert actual[name] == text, f"fixtures/production/{name} is stale; regenerate (see module docstring)"
    assert {"deployment.yaml", "networkpolicy.yaml", "horizontalpodautoscaler.yaml", "ingress.yaml"} <= set(actual)
