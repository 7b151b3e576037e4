"""Write deploy/helm/shequtong/values.schema.json.

The schema is generated because the seven service blocks share one shape (grid-gateway
adds httpPort and gridBaseUrl; a service without a database, api-gateway, has no
migrations) and JSON Schema's additionalProperties:false does not compose with allOf.
Which service has what comes from the chart's own catalog (templates/_helpers.tpl), so
an operator cannot configure what the chart would never render. Run
`python tools/chart_schema.py` after changing values.yaml's shape or the catalog;
tests/chart/test_schema.py fails when the committed file differs from this output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import chart_render

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "deploy/helm/shequtong/values.schema.json"
SERVICES = ["identity", "boards", "issues", "grid-gateway", "volunteers", "insights", "api-gateway"]


def having(fact: str) -> list[str]:
    """The services whose catalog entry has `fact` true, in SERVICES order."""
    facts = chart_render.catalog()
    assert set(facts) == set(SERVICES), "the catalog and SERVICES disagree"
    return [name for name in SERVICES if facts[name][fact]]


def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required is not None:
        schema["required"] = required
    schema.update(extra)
    return schema


def string(**extra: Any) -> dict[str, Any]:
    return {"type": "string", **extra}


PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
QUANTITY = {"type": ["string", "number"]}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
ANY_OBJECT = {"type": "object"}
ANY_LIST = {"type": "array", "items": {"type": "object"}}
INT_OR_PERCENT = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": r"^(\d+%?)?$"}]}

DEFS: dict[str, Any] = {
    "resources": obj(
        {
            "requests": obj({"cpu": QUANTITY, "memory": QUANTITY, "ephemeral-storage": QUANTITY}),
            "limits": obj({"cpu": QUANTITY, "memory": QUANTITY, "ephemeral-storage": QUANTITY}),
        }
    ),
    "labelSelector": obj(
        {
            "matchLabels": STRING_MAP,
            "matchExpressions": {
                "type": "array",
                "items": obj(
                    {
                        "key": string(),
                        "operator": string(enum=["In", "NotIn", "Exists", "DoesNotExist"]),
                        "values": {"type": "array", "items": string()},
                    },
                    required=["key", "operator"],
                ),
            },
        }
    ),
    "peer": obj(
        {
            "ipBlock": obj({"cidr": string(), "except": {"type": "array", "items": string()}}, required=["cidr"]),
            "namespaceSelector": {"$ref": "#/$defs/labelSelector"},
            "podSelector": {"$ref": "#/$defs/labelSelector"},
        },
        minProperties=1,
    ),
    "peers": {"type": "array", "items": {"$ref": "#/$defs/peer"}},
    "egressTarget": obj(
        {"ports": {"type": "array", "items": PORT, "minItems": 1}, "to": {"$ref": "#/$defs/peers"}},
        required=["ports", "to"],
    ),
    "spreadConstraint": obj(
        {
            "maxSkew": {"type": "integer", "minimum": 1},
            "topologyKey": string(),
            "whenUnsatisfiable": string(enum=["DoNotSchedule", "ScheduleAnyway"]),
            "minDomains": {"type": "integer", "minimum": 1},
            "nodeAffinityPolicy": string(enum=["Honor", "Ignore"]),
            "nodeTaintsPolicy": string(enum=["Honor", "Ignore"]),
            "matchLabelKeys": {"type": "array", "items": string()},
        },
        required=["maxSkew", "topologyKey", "whenUnsatisfiable"],
    ),
}


def service_schema(name: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "enabled": {"type": "boolean"},
        "replicas": {"type": "integer", "minimum": 0},
        "port": PORT,
        "env": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "resources": {"$ref": "#/$defs/resources"},
        "autoscaling": obj(
            {
                "enabled": {"type": "boolean"},
                "minReplicas": {"type": "integer", "minimum": 1},
                "maxReplicas": {"type": "integer", "minimum": 1},
                "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1, "maximum": 100},
                "targetMemoryUtilizationPercentage": {"type": "integer", "minimum": 0, "maximum": 100},
            },
            required=["enabled", "minReplicas", "maxReplicas", "targetCPUUtilizationPercentage"],
        ),
        "pdb": obj(
            {
                "enabled": {"type": "boolean"},
                "minAvailable": INT_OR_PERCENT,
                "maxUnavailable": INT_OR_PERCENT,
            },
            required=["enabled"],
        ),
        "podAnnotations": STRING_MAP,
        "nodeSelector": STRING_MAP,
        "tolerations": ANY_LIST,
        "affinity": ANY_OBJECT,
        "topologySpreadConstraints": {"type": "array", "items": {"$ref": "#/$defs/spreadConstraint"}},
    }
    required = ["enabled", "replicas", "port", "resources", "autoscaling", "pdb"]
    if name in having("database"):
        properties["migrations"] = obj(
            {"enabled": {"type": "boolean"}, "resources": {"$ref": "#/$defs/resources"}}, required=["enabled"]
        )
        required.append("migrations")
    if name == "grid-gateway":
        properties["httpPort"] = PORT
        properties["gridBaseUrl"] = string(pattern="^https?://")
        required += ["httpPort", "gridBaseUrl"]
    return obj(properties, required=required, description=f"The {name} service.")


def schema() -> dict[str, Any]:
    def secrets_of(names: list[str]) -> dict[str, Any]:
        return obj({name: string() for name in names})

    global_ = obj(
        {
            "image": obj(
                {
                    "registry": string(minLength=1),
                    "repository": string(minLength=1),
                    "tag": string(),
                    "digests": obj({name: string(pattern=r"^(sha256:[a-f0-9]{64})?$") for name in SERVICES}),
                    "pullPolicy": string(enum=["Always", "IfNotPresent", "Never"]),
                },
                required=["registry", "repository", "tag", "pullPolicy"],
            ),
            "imagePullSecrets": {"type": "array", "items": obj({"name": string()}, required=["name"])},
            "logLevel": string(enum=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
            "nats": obj({"url": string(pattern="^(nats|tls)://")}, required=["url"]),
            "postgresql": obj({"host": string(minLength=1), "port": PORT, "query": string()}),
            "otel": obj(
                {
                    "endpoint": string(pattern="^(https?://.*)?$"),
                    "resourceAttributes": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "number"]},
                    },
                }
            ),
            "metrics": obj(
                {
                    "port": PORT,
                    "podAnnotations": {"type": "boolean"},
                    "serviceMonitor": obj(
                        {
                            "enabled": {"type": "boolean"},
                            "interval": string(),
                            "scrapeTimeout": string(),
                            "labels": STRING_MAP,
                        }
                    ),
                },
                required=["port"],
            ),
            "secrets": obj(
                {
                    "existingSecret": string(),
                    "databaseUrls": secrets_of(having("database")),
                    "serviceClientSecrets": secrets_of(having("clientCredentials")),
                    "identitySigningKeys": string(),
                    # What identity accepts at start: "" (generated) or >= 16 characters.
                    "piiHmacKey": string(pattern="^(.{16,})?$"),
                    # "" (generated) or base64 (URL-safe, or standard) of exactly 32 bytes.
                    "piiEncryptionKey": string(pattern="^([A-Za-z0-9_+/-]{43}=?)?$"),
                    "gridApiKey": string(),
                    "gridWebhookSecret": string(),
                    "gridWebhookApiKey": string(),
                }
            ),
            "preStopSleepSeconds": {"type": "integer", "minimum": 0, "maximum": 60},
            "terminationGracePeriodSeconds": {
                "type": "integer",
                "minimum": 21,
                "description": "Must exceed preStopSleepSeconds + the servers' 20 s shutdown grace.",
            },
            "topologySpreadConstraints": {"type": "array", "items": {"$ref": "#/$defs/spreadConstraint"}},
        },
        required=["image", "nats", "otel", "metrics", "secrets"],
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Shequtong Helm chart values",
        **obj(
            {
                "global": global_,
                "services": obj({name: service_schema(name) for name in SERVICES}, required=SERVICES),
                "ingress": obj(
                    {
                        "enabled": {"type": "boolean"},
                        "className": string(),
                        "annotations": STRING_MAP,
                        "host": string(),
                        "gridWebhookHost": string(),
                        "tls": {
                            "type": "array",
                            "items": obj({"secretName": string(), "hosts": {"type": "array", "items": string()}}),
                        },
                    }
                ),
                "networkPolicy": obj(
                    {
                        "enabled": {"type": "boolean"},
                        "ingressController": {"$ref": "#/$defs/peers"},
                        "prometheus": {"$ref": "#/$defs/peers"},
                        "dns": {"$ref": "#/$defs/egressTarget"},
                        "nats": {"$ref": "#/$defs/egressTarget"},
                        "postgresql": {"$ref": "#/$defs/egressTarget"},
                        "otlp": {"$ref": "#/$defs/egressTarget"},
                        "gridPlatform": {"$ref": "#/$defs/egressTarget"},
                    }
                ),
                "tests": obj({"enabled": {"type": "boolean"}}),
            },
            required=["global", "services"],
        ),
        "$defs": DEFS,
    }


def render() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
