"""OPERATORS.md's configuration table has exactly the keys and defaults of values.yaml."""

from __future__ import annotations

import json
import re

import chart_values_table
import yaml
from chartlib import CHART, ROOT

DOC = ROOT / "deploy/helm/OPERATORS.md"
ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| (?P<default>.+?) \| (?P<meaning>.+) \|$")


def table() -> dict[str, tuple[str, str]]:
    section = DOC.read_text(encoding="utf-8").split("## Configuration", 1)[1]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = ROW.match(line)
        if match:
            assert match["key"] not in rows, f"{match['key']} documented twice"
            rows[match["key"]] = (match["default"], match["meaning"].strip())
    return rows


def test_table_has_every_key_of_values_yaml_and_no_other() -> None:
    documented, actual = set(table()), set(chart_values_table.rows())
    assert not actual - documented, f"undocumented keys: {sorted(actual - documented)}"
    assert not documented - actual, f"documented keys that do not exist: {sorted(documented - actual)}"


def test_table_defaults_are_the_real_defaults() -> None:
    expected = chart_values_table.rows()
    for key, (default, meaning) in table().items():
        assert meaning, f"{key} has no description"
        assert default == expected[key], f"{key}: documented {default}, values.yaml says {expected[key]}"
        if default.startswith("`"):
            json.loads(default.strip("`"))


def test_the_table_check_notices_a_new_key(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    values["global"]["newThing"] = 1
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    monkeypatch.setattr(chart_values_table, "VALUES", path)
    assert "global.newThing" in chart_values_table.rows()
    assert "global.newThing" not in table()


def test_operator_guide_names_the_external_dependencies() -> None:
    text = DOC.read_text(encoding="utf-8")
    for needle in (
        "CloudNativePG",
        "nats/nats",
        "one database per service",
        "helm rollback",
        "helm upgrade",
        "existingSecret",
        "autoscaling",
    ):
        assert needle.lower() in text.lower(), needle
