"""Cross-references inside a render, and the shape every workload must have."""

from __future__ import annotations

import re
from typing import Any

import chart_render
import pytest
from chartlib import (
    PACKAGES,
    ROOT,
    SERVICES,
    WITH_DATABASE,
    merged_values,
    of_kind,
    pod_templates,
    render_objects,
    selects,
)

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

# The environment each service reads (its settings class; test_service_env.py checks these
# against the services' code and starts each service with them), exactly.
COMMON_ENV = {
    "METRICS_PORT",
    "LOG_LEVEL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    # Downward API values the OTEL resource attributes refer to.
    "POD_NAME",
    "POD_NAMESPACE",
    "NODE_NAME",
}
# What every gRPC service (a kit ServiceApp: database, NATS, identity client) reads on top.
SERVICE_APP_ENV = {"DATABASE_URL", "NATS_URL", "GRPC_PORT", "SERVICE_CLIENT_ID", "SERVICE_CLIENT_SECRET"}
OTLP_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT"}
EXPECTED_ENV = {
    "identity": SERVICE_APP_ENV
    | {
        "IDENTITY_SIGNING_KEYS",
        "PII_HMAC_KEY",
        "PII_ENCRYPTION_KEY",
        "SERVICE_ACCOUNTS",
    },
    "boards": SERVICE_APP_ENV | {"IDENTITY_ADDR"},
    "issues": SERVICE_APP_ENV | {"IDENTITY_ADDR"},
    "grid-gateway": SERVICE_APP_ENV
    | {
        "HTTP_PORT",
        "IDENTITY_ADDR",
        "GRID_BASE_URL",
        "GRID_API_KEY",
        "GRID_WEBHOOK_SECRET",
        "GRID_WEBHOOK_API_KEY",
    },
    "volunteers": SERVICE_APP_ENV | {"IDENTITY_ADDR"},
    "insights": SERVICE_APP_ENV | {"IDENTITY_ADDR"},
    # The stateless edge: no database, no client credentials of its own; NATS only to follow
    # ended sessions (identity.session.revoked) with an ephemeral consumer.
    "api-gateway": {
        "HTTP_PORT",
        "NATS_URL",
        "IDENTITY_ADDR",
        "BOARDS_ADDR",
        "ISSUES_ADDR",
        "GRID_GATEWAY_ADDR",
        "VOLUNTEERS_ADDR",
        "INSIGHTS_ADDR",
    },
}
# Every key of the chart-made Secret, exactly.
SECRET_KEYS = (
    {f"{s}-database-url" for s in WITH_DATABASE}
    | {f"{s}-client-secret" for s in SERVICES if "SERVICE_CLIENT_SECRET" in EXPECTED_ENV[s]}
    | {
        "service-accounts",
        "identity-signing-keys",
        "pii-hmac-key",
        "pii-encryption-key",
        "grid-api-key",
        "grid-webhook-secret",
        "grid-webhook-api-key",
    }
)


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
    assert set(deployments(objs)) == set(SERVICES) - {"insights", "api-gateway"}
    for obj in objs:
        for gone in ("insights", "api-gateway"):
            assert gone not in obj["metadata"]["name"], f"{obj['kind']} {obj['metadata']['name']}"
    assert not of_kind(objs, "Pod"), "the helm test pod asks api-gateway"
    # The grid webhook is still routed; nothing routes to the missing gateway.
    (ingress,) = of_kind(objs, "Ingress")
    backends = {p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]}
    assert backends == {f"{chart_render.RELEASE}-grid-gateway"}


@pytest.mark.parametrize(
    ("disabled", "complaint"),
    [
        (["insights"], "services.api-gateway needs services.insights"),
        (["boards", "issues"], "services.api-gateway needs services.boards"),
    ],
)
def test_disabling_a_service_another_one_calls_is_refused(disabled: list[str], complaint: str) -> None:
    """The callers fail at start without the address (api-gateway requires all six)."""
    import helm_python as helm

    values = {"services": {name: {"enabled": False} for name in disabled}}
    with helm.Chart.load(chart_render.CHART) as chart, pytest.raises(helm.HelmError) as info:
        chart.render(values, name=chart_render.RELEASE)
    assert complaint in str(info.value)


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
        if name == "api-gateway":
            assert not {"DATABASE_URL", "SERVICE_CLIENT_ID"} & set(env), "a stateless edge"
        else:
            assert env["SERVICE_CLIENT_ID"]["value"] == name
        assert env["METRICS_PORT"]["value"] == "9464"
        if name in WITH_DATABASE:
            assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == f"{name}-database-url"
        else:
            assert "DATABASE_URL" not in env, f"{name} has no database"
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
    assert keys == SECRET_KEYS
    used = set()
    for _, tpl in pod_templates(objs):
        for c in tpl["spec"]["containers"]:
            for entry in c.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"]
                    assert ref["key"] in keys, ref["key"]
                    used.add(ref["key"])
    # And every key is read by some pod: none is dead.
    assert used == keys


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
        if name in GRPC_PORTS:
            # grpc.health.v1: startup and readiness on the overall health (service ""),
            # liveness on the "liveness" entry the kit keeps SERVING while the process
            # runs, so losing the database or NATS un-readies the pod but never restarts it.
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert set(c[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, f"{name} {probe}"
                assert c[probe]["grpc"]["port"] == GRPC_PORTS[name], f"{name} {probe}"
            assert c["startupProbe"]["grpc"].get("service", "") == ""
            assert c["readinessProbe"]["grpc"].get("service", "") == ""
            assert c["livenessProbe"]["grpc"]["service"] == "liveness"
        else:
            assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
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
    migrating = set(deployments(objs)) & WITH_DATABASE
    # One per service with a database; none for api-gateway (it has no `migrate`).
    assert set(jobs) == {f"{chart_render.RELEASE}-{name}-migrate" for name in migrating}
    assert migrating and "api-gateway" not in migrating
    for name in migrating:
        job = jobs[f"{chart_render.RELEASE}-{name}-migrate"]
        assert "DATABASE_URL" in env_of(container(job))
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
