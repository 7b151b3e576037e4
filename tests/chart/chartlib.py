"""What the chart tests share: renders with the real Helm engine, cached per case."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools"))

import chart_render  # noqa: E402

CHART = chart_render.CHART
CI_DIR = CHART / "ci"
# "default" plus every values file under ci/ (each is a case of its own).
CASES = ["default", *sorted(p.name for p in CI_DIR.glob("*.yaml"))]
SERVICES = ["identity", "boards", "issues", "grid-gateway", "volunteers", "insights", "api-gateway"]
PACKAGES = {name: "shequtong_" + name.replace("-", "_") for name in SERVICES}
# From the services themselves, not the chart: a service owns a database exactly when its
# package ships Alembic migrations (`python -m <package> migrate`). api-gateway does not.
WITH_DATABASE = {s for s in SERVICES if (ROOT / "services" / s / "src" / PACKAGES[s] / "migrations").is_dir()}


def case_values(case: str) -> dict[str, Any]:
    return {} if case == "default" else chart_render.load_values([CI_DIR / case])


@functools.cache
def _render(case: str) -> tuple[dict[str, str], tuple[dict[str, Any], ...]]:
    rendered = chart_render.render_raw(case_values(case))
    return rendered, tuple(chart_render.objects(rendered))


def render_objects(case: str) -> list[dict[str, Any]]:
    return list(_render(case)[1])


def render_text(case: str) -> dict[str, str]:
    return dict(_render(case)[0])


def merged_values(case: str) -> dict[str, Any]:
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        return chart.merge_values(case_values(case))


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def pod_templates(objs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(owner object, pod template {metadata, spec}) for Deployments, Jobs and bare Pods."""
    out = []
    for obj in objs:
        if obj["kind"] in ("Deployment", "Job"):
            out.append((obj, obj["spec"]["template"]))
        elif obj["kind"] == "Pod":
            out.append((obj, {"metadata": obj["metadata"], "spec": obj["spec"]}))
    return out


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector (matchLabels + matchExpressions) against labels."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True
