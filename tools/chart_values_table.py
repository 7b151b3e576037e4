"""The operator's configuration table and values.yaml, kept in step.

`python tools/chart_values_table.py` prints the keys of values.yaml as
OPERATORS.md documents them (services.<name>.…, per-service maps as …<name>), with their
defaults; tests/chart/test_operators_doc.py checks the table in deploy/helm/OPERATORS.md
has exactly these keys and these defaults.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "deploy/helm/shequtong/values.yaml"
SERVICES = ["identity", "boards", "issues", "grid-gateway", "volunteers", "insights", "api-gateway"]
# Documented as one value, not key by key.
OPAQUE = {"resources", "resourceAttributes"}
# Maps keyed by service name, documented once as <name>.
PER_SERVICE = {"services", "databaseUrls", "serviceClientSecrets", "digests"}
VARIES = "(per service)"


def flatten(node: Any, prefix: str = "") -> dict[str, list[Any]]:
    """Documented key -> every value it has in values.yaml (several for <name> keys).

    A key two or more services have is documented once as services.<name>.… (migrations,
    which every service with a database has); a key only one service has (grid-gateway's
    httpPort) keeps the service's name.
    """
    out: dict[str, list[Any]] = {}
    if isinstance(node, dict) and node and prefix.rsplit(".", 1)[-1] not in OPAQUE:
        last = prefix.rsplit(".", 1)[-1]
        per_service = last in PER_SERVICE and set(node) <= set(SERVICES)
        flat = {key: flatten(value, f"{prefix}.{key}" if prefix else key) for key, value in node.items()}
        if per_service:
            counts: dict[str, int] = {}
            for f in flat.values():
                for sub_key in {k.split(".", 2)[-1] for k in f}:
                    counts[sub_key] = counts.get(sub_key, 0) + 1
            common = {sub_key for sub_key, n in counts.items() if n > 1}
        for key, sub in flat.items():
            for k, v in sub.items():
                if per_service and (k.split(".", 2)[-1] in common or k == f"{prefix}.{key}"):
                    k = f"{prefix}.<name>" + k[len(f"{prefix}.{key}") :]
                out.setdefault(k, []).extend(v)
    else:
        out[prefix] = [node]
    return out


SEE_VALUES = "(see values.yaml)"


def documented_default(values: list[Any]) -> str:
    first = values[0]
    if any(v != first for v in values):
        return VARIES
    text = json.dumps(first, ensure_ascii=False, separators=(", ", ": "))
    if isinstance(first, (list, dict)) and len(text) > 60:
        return SEE_VALUES
    return f"`{text}`"


def rows() -> dict[str, str]:
    data = yaml.safe_load(VALUES.read_text(encoding="utf-8"))
    return {key: documented_default(values) for key, values in flatten(data).items()}


def main() -> int:
    for key, default in rows().items():
        print(f"| `{key}` | {default} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
