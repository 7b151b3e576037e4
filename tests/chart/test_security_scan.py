"""Checkov's Kubernetes checks over the rendered manifests: no failed check.

Checkov pins packaging<24 and older pytest, which our lock does not accept, so it runs in
its own throw-away environment: `uv tool run --from checkov==3.3.30` constrained by
checkov-constraints.txt (the whole resolved set, pinned). Open-source checkov reports no
severities, so every failed check counts; each check we skip is listed below with why.
Resource-specific skips live on the resource itself as `checkov.io/skipN` annotations
(the helm test pod's probes) and are checked here too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import chart_render
import pytest
from chartlib import ROOT, case_values

CHECKOV = "checkov==3.3.30"
CONSTRAINTS = Path(__file__).resolve().parent / "checkov-constraints.txt"

# Skipped for every case, with the reason.
SKIP_ALWAYS = {
    # Every service reads its configuration from environment variables alone (DESIGN.md:
    # "configuration comes from environment variables alone"); secrets reach them through
    # secretKeyRef, never inlined in the manifests, and are never logged. Mounting them as
    # files would need a second configuration path in every service for no gain inside a
    # read-only, non-root, single-process container.
    "CKV_K8S_35": "secrets as environment variables (secretKeyRef) by design",
}
# Skipped only for the non-production cases: the defaults cannot know image digests or the
# cluster's peers, the production-like case proves digests and policies pass.
SKIP_NON_PRODUCTION = {
    "CKV_K8S_43": "image digests are set per deployment (global.image.digests); production case pins them",
    "CKV_K8S_15": "IfNotPresent is right with digests; production case pins them",
    "CKV2_K8S_6": "NetworkPolicies are off by default (peers depend on the cluster); production enables them",
}
# Resource annotations allowed to skip a check, and where.
ANNOTATED_SKIPS = {("Pod", "CKV_K8S_8"), ("Pod", "CKV_K8S_9")}


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / ".tools/bin/uv")
    if not Path(found).exists():
        pytest.fail("uv is needed to run checkov in its own environment (.tools/bin/uv or on PATH)")
    return found


def scan(directory: Path, skips: dict[str, str]) -> dict:
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_COLORS": "1"}
    result = subprocess.run(
        [
            uv(),
            "tool",
            "run",
            "--from",
            CHECKOV,
            "-c",
            str(CONSTRAINTS),
            "checkov",
            "-d",
            str(directory),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "-o",
            "json",
            "--skip-check",
            ",".join(sorted(skips)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    (k8s,) = [r for r in reports if r.get("check_type") == "kubernetes"]
    return k8s


def write_case(case: str, directory: Path) -> None:
    directory.mkdir(parents=True)
    values = {} if case == "default" else case_values(case)
    for name, text in chart_render.by_kind(chart_render.objects(chart_render.render_raw(values))).items():
        (directory / name).write_text(text, encoding="utf-8")


@pytest.mark.parametrize(
    ("cases", "skips"),
    [
        (["production-values.yaml"], SKIP_ALWAYS),
        (
            ["default", "minimal-values.yaml", "disabled-service-values.yaml"],
            SKIP_ALWAYS | SKIP_NON_PRODUCTION,
        ),
    ],
    ids=["production", "other-cases"],
)
def test_checkov_finds_nothing(cases: list[str], skips: dict[str, str], tmp_path: Path) -> None:
    for case in cases:
        write_case(case, tmp_path / case.removesuffix(".yaml"))
    report = scan(tmp_path, skips)
    failed = [
        f"{c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["passed"] > 300 * len(cases) // 2
    assert report["summary"]["resource_count"] > 20 * len(cases)
    for skipped in report["results"]["skipped_checks"]:
        kind = skipped["resource"].split(".")[0]
        assert (kind, skipped["check_id"]) in ANNOTATED_SKIPS, skipped
        assert skipped["check_result"].get("suppress_comment"), "an annotated skip needs its reason"
