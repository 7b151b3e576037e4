"""The chart renders, lints, and every object is valid for the stated Kubernetes version."""

from __future__ import annotations

import chart_render
import helm_python as helm
import kubernetes_validate
import pytest
from chartlib import CASES, CHART, case_values, of_kind, render_objects, render_text

# Objects of CRDs kubernetes-validate has no schema for, and what each must still have.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints")}


def test_every_case_renders_objects(case: str) -> None:
    objs = render_objects(case)
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "ServiceAccount", "Job"} <= kinds, kinds
    assert "shequtong/templates/NOTES.txt" in render_text(case)
    for obj in objs:
        assert obj["metadata"]["namespace"] == chart_render.NAMESPACE, obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "shequtong"


@pytest.mark.parametrize("case", CASES)
def test_lint_is_clean(case: str) -> None:
    report = helm.lint(
        CHART,
        case_values(case),
        strict=True,
        namespace=chart_render.NAMESPACE,
        kube_version=f"v{chart_render.KUBE_VERSION}",
    )
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); warnings and errors fail.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_every_object_is_valid_for_the_kubernetes_version(case: str) -> None:
    validated = 0
    for obj in render_objects(case):
        body = {k: v for k, v in obj.items() if k != "__source__"}
        key = (obj["apiVersion"], obj["kind"])
        if key in CRD_KINDS:
            for field in CRD_KINDS[key]:
                assert body["spec"].get(field), f"{obj['kind']} without spec.{field}"
            continue
        try:
            version = kubernetes_validate.validate(body, chart_render.KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        assert version == "1.30"
        validated += 1
    assert validated > 20


def test_validation_catches_a_broken_object() -> None:
    """The validator is strict: an unknown field in a container is refused."""
    deployment = dict(of_kind(render_objects("default"), "Deployment")[0])
    deployment.pop("__source__")
    broken = chart_render.deep_merge(deployment, {})
    broken["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, chart_render.KUBE_VERSION, strict=True)


def test_service_monitor_only_when_asked() -> None:
    assert not of_kind(render_objects("default"), "ServiceMonitor")
    (monitor,) = of_kind(render_objects("production-values.yaml"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
