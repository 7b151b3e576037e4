"""values.schema.json refuses what an operator could get wrong, and is what the generator writes."""

from __future__ import annotations

from typing import Any

import chart_render
import chart_schema
import helm_python as helm
import pytest
from chartlib import CHART, ROOT


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"servcies": {}}, "servcies"),
        ({"services": {"identity": {"replicaCount": 3}}}, "replicaCount"),
        ({"services": {"issue": {"enabled": False}}}, "issue"),
        ({"global": {"image": {"tg": "1.0"}}}, "tg"),
        ({"global": {"secrets": {"existingSecrets": "x"}}}, "existingSecrets"),
        ({"networkPolicy": {"enable": True}}, "enable"),
        ({"services": {"boards": {"httpPort": 8082}}}, "httpPort"),
        ({"services": {"boards": {"replicas": "two"}}}, "replicas"),
        ({"services": {"boards": {"port": 70000}}}, "port"),
        ({"global": {"terminationGracePeriodSeconds": 10}}, "terminationGracePeriodSeconds"),
        ({"global": {"image": {"digests": {"boards": "latest"}}}}, "boards"),
        ({"global": {"nats": {"url": "localhost:4222"}}}, "url"),
        (
            {"networkPolicy": {"nats": {"ports": [4222], "to": [{"namespaceSelecter": {}}]}}},
            "namespaceSelecter",
        ),
        # api-gateway has no database: nothing to migrate, no URL, no client secret.
        ({"services": {"api-gateway": {"migrations": {"enabled": True}}}}, "migrations"),
        ({"global": {"secrets": {"databaseUrls": {"api-gateway": "postgresql+asyncpg://x/y"}}}}, "api-gateway"),
        ({"global": {"secrets": {"serviceClientSecrets": {"api-gateway": "s3cret"}}}}, "api-gateway"),
        # identity refuses these at start.
        ({"global": {"secrets": {"piiHmacKey": "short"}}}, "piiHmacKey"),
        ({"global": {"secrets": {"piiEncryptionKey": "c2l4dGVlbiBieXRlcyBrZXk="}}}, "piiEncryptionKey"),
        # The services export OTLP over HTTP only.
        ({"global": {"otel": {"protocol": "grpc"}}}, "protocol"),
    ],
)
def test_schema_refuses(values: dict[str, Any], complaint: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as info:
        chart.render(values, name="shequtong", namespace="shequtong")
    assert complaint in str(info.value)


def test_every_ci_file_and_the_defaults_pass_the_schema() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({})
        for path in sorted((CHART / "ci").glob("*.yaml")):
            chart.validate_schema(chart_render.load_values([path]))


def test_the_schema_closes_every_object() -> None:
    """additionalProperties: false on every object that is not a free-form map."""
    free_form = {
        "env",
        "podAnnotations",
        "nodeSelector",
        "affinity",
        "annotations",
        "labels",
        "matchLabels",
        "resourceAttributes",
    }
    schema = chart_schema.schema()

    def walk(node: Any, key: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and key not in free_form and "properties" in node:
                assert node.get("additionalProperties") is False, key
            for k, v in node.items():
                walk(v, k if k not in ("properties", "items", "$defs") else key)
        elif isinstance(node, list):
            for item in node:
                walk(item, key)

    walk(schema, "")
    assert schema["additionalProperties"] is False


def test_committed_schema_is_generated() -> None:
    committed = (CHART / "values.schema.json").read_text(encoding="utf-8")
    assert committed == chart_schema.render(), "run: python tools/chart_schema.py"
    assert (ROOT / "tools/chart_schema.py").exists()


def test_disabling_identity_alone_is_refused() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError) as info:
        chart.render({"services": {"identity": {"enabled": False}}}, name="shequtong")
    assert "needs services.identity" in str(info.value)


def test_chart_env_cannot_be_overridden_by_extra_env() -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmError) as info:
            chart.render({"services": {"boards": {"env": {"IDENTITY_ADDR": "elsewhere:1"}}}}, name="shequtong")
        assert "set by the chart" in str(info.value)
        rendered = chart.render({"services": {"boards": {"env": {"FEATURE_X": "on"}}}}, name="shequtong")
        assert "FEATURE_X" in rendered["shequtong/templates/deployment.yaml"]


def test_operator_given_pii_keys_in_the_accepted_form_pass() -> None:
    import base64
    import os

    secrets = {
        "piiHmacKey": "a-hmac-key-of-32-characters-long",
        "piiEncryptionKey": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({"global": {"secrets": secrets}})
        chart.validate_schema({"global": {"secrets": {"piiEncryptionKey": secrets["piiEncryptionKey"].rstrip("=")}}})
