"""The Dockerfiles, checked statically (no Docker engine here)."""

from __future__ import annotations

import fnmatch
import shlex
import shutil
import subprocess

import chart_images
import pytest
from chartlib import ROOT, SERVICES

SERVICE_DIRS = sorted(p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml"))


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            if current:
                word, _, rest = current.partition(" ")
                out.append((word.upper(), rest.strip()))
            current = ""
    return out


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last matching rule wins)."""
    excluded = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(p, pattern) for p in prefixes) or pattern == "**":
            excluded = not negate
    return excluded


def test_every_service_has_a_dockerfile_and_the_simulator_none() -> None:
    assert SERVICE_DIRS == sorted(SERVICES) == sorted(chart_images.SERVICES)
    for service in SERVICE_DIRS:
        assert (ROOT / "services" / service / "Dockerfile").is_file(), service
    assert not (ROOT / "services/grid-gateway/simulator/Dockerfile").exists()
    assert (ROOT / ".dockerignore").is_file()


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_is_generated(service: str) -> None:
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    assert text == chart_images.dockerfile(service), "run: python tools/chart_images.py write"


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_shape(service: str) -> None:
    steps = instructions((ROOT / "services" / service / "Dockerfile").read_text())
    names = [s[0] for s in steps]
    assert "HEALTHCHECK" not in names, "Kubernetes probes the pods"
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and froms[-1] == "python:3.11-slim", froms
    final = steps[names.index("FROM", names.index("FROM") + 1) :]
    assert ("USER", "10001:10001") in final
    assert not any(w == "RUN" and ("pip install" in a or "uv " in a) for w, a in final), (
        "no build tools in the final stage"
    )
    runs = " ".join(a for w, a in steps if w == "RUN")
    assert f"uv sync --frozen --no-dev --no-editable --package shequtong-{service}" in runs
    cmd = next(a for w, a in final if w == "CMD")
    assert cmd == f'["python", "-m", "{chart_images.SERVICES[service]}"]'
    for word, args in steps:
        if word != "COPY" or "--from=" in args:
            continue
        *sources, _dest = [a for a in shlex.split(args) if not a.startswith("--")]
        for source in sources:
            path = ROOT / source
            assert path.exists(), f"{service}: COPY {source} does not exist"
            assert not dockerignore_excludes(source.rstrip("/")), f"{service}: {source} is .dockerignored"


@pytest.mark.parametrize("service", SERVICES)
def test_the_image_gets_only_locked_runtime_dependencies(service: str) -> None:
    uv = shutil.which("uv") or str(ROOT / ".tools/bin/uv")
    result = subprocess.run(
        [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--package", f"shequtong-{service}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    names = {line.split("==")[0].strip() for line in result.stdout.splitlines() if "==" in line}
    assert {"grpcio", "sqlalchemy", "alembic"} <= names
    assert not names & {"pytest", "ruff", "mypy", "grpcio-tools", "helm-python-sdk", "checkov"}, names
    assert "fastapi" in names if service in ("api-gateway", "grid-gateway") else True
