"""Cross-references inside a render, and the shape every workload must have."""

from __future__ import annotations

import re
from typing import Any

import chart_render
import pytest
from chartlib import (
    ROOT,
    SERVICES,
    merged_values,
    of_kind,
    pod_templates,
    render_objects,
    selects,
)

PACKAGES = {name: "shequtong_" + name.replace("-", "_") for name in SERVICES}
GRPC_PORTS = {
    "identity": 50051,
    "boards": 50052,
    "issues": 50053,
    "grid-gateway": 50054,
    "volunteers": 50055,
    "insights": 50056,
}
HTTP_PORTS = {"api-gateway": 8080, "grid-gateway": 8081}
SERVERS_SHUTDOWN_GRACE = 20

# The environment each service reads (DESIGN.md and the service conventions), exactly.
COMMON_ENV = {
    "DATABASE_URL",
    "NATS_URL",
    "METRICS_PORT",
    "LOG_LEVEL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "SERVICE_CLIENT_ID",
    "SERVICE_CLIENT_SECRET",
    # Downward API values the OTEL resource attributes refer to.
    "POD_NAME",
    "POD_NAMESPACE",
    "NODE_NAME",
}
OTLP_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"}
EXPECTED_ENV = {
    "identity": {
        "GRPC_PORT",
        "IDENTITY_SIGNING_KEYS",
        "PII_HMAC_KEY",
        "PII_ENCRYPTION_KEY",
        "SERVICE_ACCOUNTS",
    },
    "boards": {"GRPC_PORT", "IDENTITY_ADDR"},
    "issues": {"GRPC_PORT", "IDENTITY_ADDR"},
    "grid-gateway": {
        "GRPC_PORT",
        "HTTP_PORT",
        "IDENTITY_ADDR",
        "GRID_BASE_URL",
        "GRID_API_KEY",
        "GRID_WEBHOOK_SECRET",
        "GRID_WEBHOOK_API_KEY",
    },
    "volunteers": {"GRPC_PORT", "IDENTITY_ADDR"},
    "insights": {"GRPC_PORT", "IDENTITY_ADDR"},
    "api-gateway": {
        "HTTP_PORT",
        "IDENTITY_ADDR",
        "BOARDS_ADDR",
        "ISSUES_ADDR",
        "GRID_GATEWAY_ADDR",
        "VOLUNTEERS_ADDR",
        "INSIGHTS_ADDR",
    },
}


def deployments(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in of_kind(objs, "Deployment")}


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    names = [e["name"] for e in c["env"]]
    assert len(names) == len(set(names)), f"duplicate env in {c['name']}"
    return {e["name"]: e for e in c["env"]}


def enabled_services(case: str) -> set[str]:
    return {name for name, svc in merged_values(case)["services"].items() if svc["enabled"]}


def test_every_service_directory_has_a_deployment() -> None:
    dirs = {p.parent.name for p in (ROOT / "services").glob("*/pyproject.toml")}
    assert dirs == set(SERVICES), "services/ and the chart disagree: update SERVICES and the chart"
    assert set(deployments(render_objects("default"))) == dirs


def test_a_disabled_service_leaves_nothing_behind() -> None:
    objs = render_objects("disabled-service-values.yaml")
    assert "insights" not in deployments(objs)
    for obj in objs:
        assert "insights" not in obj["metadata"]["name"], f"{obj['kind']} {obj['metadata']['name']}"
    api_env = env_of(container(deployments(objs)["api-gateway"]))
    assert "INSIGHTS_ADDR" not in api_env and "BOARDS_ADDR" in api_env


def test_every_service_selects_a_rendered_pod_template_and_only_its_own(case: str) -> None:
    objs = render_objects(case)
    templates = pod_templates(objs)
    for service in of_kind(objs, "Service"):
        selector = {"matchLabels": service["spec"]["selector"]}
        matched = [owner for owner, tpl in templates if selects(selector, tpl["metadata"]["labels"])]
        assert [o["kind"] for o in matched] == ["Deployment"], service["metadata"]["name"]
        (deployment,) = matched
        ports = {p["name"]: p["containerPort"] for p in container(deployment)["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: {port['targetPort']}"
            assert ports[port["targetPort"]] == port["port"]
        # A Deployment's own selector matches its template.
        assert selects(deployment["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])


def test_every_addr_points_at_a_rendered_service_port(case: str) -> None:
    objs = render_objects(case)
    services = {s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]} for s in of_kind(objs, "Service")}
    seen = 0
    for owner, tpl in pod_templates(objs):
        for c in tpl["spec"]["containers"]:
            for name, entry in env_of(c).items() if c.get("env") else ():
                if not name.endswith("_ADDR"):
                    continue
                host, _, port = entry["value"].rpartition(":")
                assert host in services, f"{owner['metadata']['name']} {name}={entry['value']}: no such Service"
                assert int(port) in services[host], f"{name}={entry['value']}: Service has {services[host]}"
                target = name.removesuffix("_ADDR").lower().replace("_", "-")
                assert host == f"{chart_render.RELEASE}-{target}"
                assert int(port) == GRPC_PORTS[target]
                seen += 1
    assert seen >= 6


def test_each_service_gets_exactly_its_environment(case: str) -> None:
    values = merged_values(case)
    enabled = enabled_services(case)
    for name, deployment in deployments(render_objects(case)).items():
        env = env_of(container(deployment))
        expected = COMMON_ENV | EXPECTED_ENV[name]
        expected -= {f"{d.upper().replace('-', '_')}_ADDR" for d in set(SERVICES) - enabled}
        if values["global"]["otel"]["endpoint"]:
            expected |= OTLP_ENV
        assert set(env) == expected, name
        assert env["OTEL_SERVICE_NAME"]["value"] == name
        assert env["SERVICE_CLIENT_ID"]["value"] == name
        assert env["METRICS_PORT"]["value"] == "9464"
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == f"{name}-database-url"
        attrs = dict(kv.split("=", 1) for kv in env["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(","))
        assert attrs["service.namespace"] == "shequtong" and "k8s.pod.name" in attrs
        for key, value in values["global"]["otel"]["resourceAttributes"].items():
            assert attrs[key] == str(value)
        if name in GRPC_PORTS:
            assert env["GRPC_PORT"]["value"] == str(GRPC_PORTS[name])
        if name in HTTP_PORTS:
            assert env["HTTP_PORT"]["value"] == str(HTTP_PORTS[name])
        # No secret value is ever inlined.
        for secret_var in ("DATABASE_URL", "SERVICE_CLIENT_SECRET", "GRID_API_KEY", "PII_ENCRYPTION_KEY"):
            if secret_var in env:
                assert "value" not in env[secret_var], f"{name} inlines {secret_var}"


def test_secret_refs_resolve_to_the_chart_secret_keys() -> None:
    objs = render_objects("default")
    (secret,) = of_kind(objs, "Secret")
    keys = set(secret["data"])
    for _, tpl in pod_templates(objs):
        for c in tpl["spec"]["containers"]:
            for entry in c.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in keys, ref["key"]


def test_existing_secret_replaces_the_chart_secret() -> None:
    objs = render_objects("production-values.yaml")
    assert not of_kind(objs, "Secret")
    refs = {
        e["valueFrom"]["secretKeyRef"]["name"]
        for _, tpl in pod_templates(objs)
        for c in tpl["spec"]["containers"]
        for e in c.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"shequtong-credentials"}


def test_commands_probes_and_graceful_termination(case: str) -> None:
    values = merged_values(case)["global"]
    for name, deployment in deployments(render_objects(case)).items():
        spec = deployment["spec"]["template"]["spec"]
        c = container(deployment)
        assert c["command"] == ["python", "-m", PACKAGES[name]]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, f"{name} has no {probe}"
        if name in HTTP_PORTS:
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert c[probe]["grpc"]["port"] == GRPC_PORTS[name], f"{name} {probe}"
        pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        assert pre_stop == values["preStopSleepSeconds"]
        assert spec["terminationGracePeriodSeconds"] > pre_stop + SERVERS_SHUTDOWN_GRACE
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        assert ports["metrics"] == 9464
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9464"


def test_migration_hook_jobs(case: str) -> None:
    objs = render_objects(case)
    jobs = {j["metadata"]["name"]: j for j in of_kind(objs, "Job")}
    assert len(jobs) == len(deployments(objs))
    for name in deployments(objs):
        job = jobs[f"{chart_render.RELEASE}-{name}-migrate"]
        hooks = set(job["metadata"]["annotations"]["helm.sh/hook"].split(","))
        assert hooks == {"pre-install", "pre-upgrade"}
        assert container(job)["command"] == ["python", "-m", PACKAGES[name], "migrate"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # What the Jobs need exists before them: their ServiceAccount and (chart-made) Secret.
    weight = {
        (o["kind"], o["metadata"]["name"]): int(o["metadata"].get("annotations", {}).get("helm.sh/hook-weight", 0))
        for o in objs
        if "helm.sh/hook" in o["metadata"].get("annotations", {})
    }
    for job in jobs.values():
        sa = job["spec"]["template"]["spec"]["serviceAccountName"]
        assert weight[("ServiceAccount", sa)] < weight[("Job", job["metadata"]["name"])]
    for secret in of_kind(objs, "Secret"):
        assert weight[("Secret", secret["metadata"]["name"])] < 0


def test_every_pod_is_hardened(case: str) -> None:
    objs = render_objects(case)
    for owner, tpl in pod_templates(objs):
        spec = tpl["spec"]
        where = f"{owner['kind']}/{owner['metadata']['name']}"
        assert spec["automountServiceAccountToken"] is False, where
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
            assert c["resources"]["limits"] and c["resources"]["requests"], where
            if owner["kind"] != "Pod":
                assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], where  # noqa: S108
    for sa in of_kind(objs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    names = {sa["metadata"]["name"] for sa in of_kind(objs, "ServiceAccount")}
    for owner, tpl in pod_templates(objs):
        if owner["kind"] != "Pod":
            assert tpl["spec"]["serviceAccountName"] in names


def test_autoscaling_and_disruption_budgets(case: str) -> None:
    objs = render_objects(case)
    values = merged_values(case)["services"]
    deps = deployments(objs)
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(objs, "HorizontalPodAutoscaler")}
    pdbs = of_kind(objs, "PodDisruptionBudget")
    for name, deployment in deps.items():
        dep_name = deployment["metadata"]["name"]
        if values[name]["autoscaling"]["enabled"]:
            assert "replicas" not in deployment["spec"], f"{name}: HPA and fixed replicas fight"
            hpa = hpas[dep_name]
            assert hpa["apiVersion"] == "autoscaling/v2"
            assert hpa["spec"]["minReplicas"] == values[name]["autoscaling"]["minReplicas"]
        else:
            assert dep_name not in hpas
            assert deployment["spec"]["replicas"] == values[name]["replicas"]
        matching = [
            p for p in pdbs if selects(p["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matching) == (1 if values[name]["pdb"]["enabled"] else 0), name
    assert (len(hpas) == 7) == (case == "production-values.yaml")


def test_ingress_routes_to_rendered_services() -> None:
    objs = render_objects("production-values.yaml")
    services = {s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]} for s in of_kind(objs, "Service")}
    (ingress,) = of_kind(objs, "Ingress")
    routes = {}
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["port"]["name"] in services[backend["name"]]
            routes[(rule["host"], path["path"], path["pathType"])] = backend["name"]
    assert routes == {
        ("shequtong.baoshan.example.gov.cn", "/", "Prefix"): "shequtong-api-gateway",
        (
            "grid-webhook.shequtong.baoshan.example.gov.cn",
            "/v1/grid/servicerequestupdates",
            "Exact",
        ): "shequtong-grid-gateway",
    }
    assert not of_kind(render_objects("default"), "Ingress")


def test_helm_test_pod_checks_the_gateway_readyz() -> None:
    objs = render_objects("default")
    (pod,) = of_kind(objs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert re.search(r"http://shequtong-api-gateway:8080/readyz", script)
    compile(script, "readyz", "exec")


@pytest.mark.parametrize("tag", ["", "9.9.9"])
def test_image_tag_defaults_to_app_version(tag: str) -> None:
    values = {"global": {"image": {"tag": tag}}}
    objs = chart_render.objects(chart_render.render_raw(values))
    app_version = (chart_render.CHART / "Chart.yaml").read_text().split('appVersion: "')[1].split('"')[0]
    for deployment in of_kind(objs, "Deployment"):
        image = container(deployment)["image"]
        assert image.endswith(":" + (tag or app_version)), image
