"""Render the Helm chart with the real Helm engine (helm-python-sdk) — no helm binary.

    python tools/chart_render.py [-f values.yaml ...] [--set-json '{...}'] [--out DIR]

Without --out, prints the manifests as one YAML stream; with --out, writes one file per
kind (deployment.yaml, service.yaml, …), as the fixtures under tests/chart/fixtures/ are.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy/helm/shequtong"
RELEASE = "shequtong"
NAMESPACE = "shequtong"
# The Kubernetes version every rendered object is validated against (and linted for).
KUBE_VERSION = "1.30.0"


def catalog() -> dict[str, dict[str, Any]]:
    """The chart's service catalog (templates/_helpers.tpl "shequtong.catalog"): plain YAML."""
    text = (CHART / "templates/_helpers.tpl").read_text(encoding="utf-8")
    body = text.split('{{- define "shequtong.catalog" -}}', 1)[1].split("{{- end -}}", 1)[0]
    return dict(yaml.safe_load(body))


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_values(files: list[Path] | tuple[Path, ...] = (), extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """User values as `helm -f a -f b --set-json` would combine them."""
    values: dict[str, Any] = {}
    for path in files:
        values = deep_merge(values, yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    if extra:
        values = deep_merge(values, extra)
    return values


def render_raw(values: dict[str, Any], *, release: str = RELEASE, namespace: str = NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (NOTES.txt included), as `helm template` renders it."""
    import helm_python as helm

    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=release, namespace=namespace, is_install=True)


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object of a render, each with its template as `__source__`."""
    out: list[dict[str, Any]] = []
    for source, text in sorted(rendered.items()):
        if source.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                doc["__source__"] = source
                out.append(doc)
    return out


def by_kind(objs: list[dict[str, Any]]) -> dict[str, str]:
    """kind (lower case) -> readable YAML of every object of that kind, sorted by name."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in objs:
        groups[obj["kind"].lower()].append(obj)
    files: dict[str, str] = {}
    for kind, items in sorted(groups.items()):
        items.sort(key=lambda o: o["metadata"]["name"])
        docs = []
        for obj in items:
            clean = {k: v for k, v in obj.items() if k != "__source__"}
            docs.append(f"# Source: {obj['__source__']}\n" + yaml.safe_dump(clean, sort_keys=False, width=100))
        files[f"{kind}.yaml"] = "---\n".join(docs)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-f", "--values", action="append", default=[], type=Path)
    parser.add_argument("--set-json", default=None, help="values as a JSON object, merged last")
    parser.add_argument("--out", type=Path, help="write one file per kind into this directory")
    args = parser.parse_args(argv)
    values = load_values(args.values, json.loads(args.set_json) if args.set_json else None)
    objs = objects(render_raw(values))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for old in args.out.glob("*.yaml"):
            old.unlink()
        for name, text in by_kind(objs).items():
            (args.out / name).write_text(text, encoding="utf-8")
        print(f"wrote {len(objs)} objects to {args.out}")
    else:
        for obj in objs:
            clean = {k: v for k, v in obj.items() if k != "__source__"}
            sys.stdout.write(f"---\n# Source: {obj['__source__']}\n" + yaml.safe_dump(clean, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
