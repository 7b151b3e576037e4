"""The NetworkPolicies let exactly the real call graph through, and nothing else.

A small evaluator of Kubernetes NetworkPolicy semantics (selectors, namespaceSelector,
ipBlock, ports, policyTypes; a connection needs the source's egress and the destination's
ingress) is run over every pair of pods the chart renders and a set of outside endpoints.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass, field
from typing import Any

import chart_render
import pytest
from chartlib import WITH_DATABASE, merged_values, of_kind, pod_templates, render_objects, selects

NS = chart_render.NAMESPACE
GRPC = {
    "identity": 50051,
    "boards": 50052,
    "issues": 50053,
    "grid-gateway": 50054,
    "volunteers": 50055,
    "insights": 50056,
}
# The call graph between our pods (client, server, port): the ground truth, kept apart
# from the chart's own catalog on purpose.
CALLS = (
    {("api-gateway", s, p) for s, p in GRPC.items()}
    | {(c, "identity", 50051) for c in ("boards", "issues", "grid-gateway", "volunteers", "insights")}
    | {("test", "api-gateway", 8080)}
)
# Who talks to NATS: every gRPC service (the kit connects each to JetStream), and the
# api-gateway (it follows identity.session.revoked). Who talks to PostgreSQL: the services with
# a database (those that ship migrations; not api-gateway) and their migration Jobs.
USES_NATS = set(GRPC) | {"api-gateway"}
USES_POSTGRESQL = WITH_DATABASE | {f"{s}-migrate" for s in WITH_DATABASE}
HTTP = {"api-gateway": 8080, "grid-gateway": 8081}
POLICY_CASES = ["production-values.yaml", "disabled-service-values.yaml"]


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    ports: list[tuple[int, str]] = field(default_factory=list)


def namespace_labels(ns: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": ns}


def peer_matches(peer: dict[str, Any], policy_ns: str, pod: Pod) -> bool:
    if "ipBlock" in peer:
        ip = ipaddress.ip_address(pod.ip)
        block = peer["ipBlock"]
        return ip in ipaddress.ip_network(block["cidr"]) and not any(
            ip in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels(pod.namespace)):
            return False
    elif pod.namespace != policy_ns:
        return False
    return selects(peer.get("podSelector", {}), pod.labels)


def port_matches(rule_ports: list[dict[str, Any]] | None, port: int, proto: str) -> bool:
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != proto:
            continue
        assert isinstance(p.get("port"), int), "named ports are not used by this chart"
        if p["port"] <= port <= p.get("endPort", p["port"]):
            return True
    return False


def direction_allows(policies: list[dict[str, Any]], pod: Pod, other: Pod, port: int, proto: str, kind: str) -> bool:
    """Whether the policies selecting `pod` let it talk to (Egress) / hear from (Ingress) `other`."""
    key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
    applying = [
        p
        for p in policies
        if p["metadata"]["namespace"] == pod.namespace
        and kind in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], pod.labels)
    ]
    if not applying:
        return True
    for policy in applying:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            if peers is not None and not any(peer_matches(x, policy["metadata"]["namespace"], other) for x in peers):
                continue
            if port_matches(rule.get("ports"), port, proto):
                return True
    return False


def allowed(policies: list[dict[str, Any]], src: Pod, dst: Pod, port: int, proto: str = "TCP") -> bool:
    return direction_allows(policies, src, dst, port, proto, "Egress") and direction_allows(
        policies, dst, src, port, proto, "Ingress"
    )


def our_pods(objs: list[dict[str, Any]]) -> list[Pod]:
    pods = []
    for i, (_owner, tpl) in enumerate(pod_templates(objs)):
        ports = [
            (p["containerPort"], p.get("protocol", "TCP"))
            for c in tpl["spec"]["containers"]
            for p in c.get("ports", [])
        ]
        pods.append(
            Pod(
                tpl["metadata"]["labels"]["app.kubernetes.io/component"],
                NS,
                tpl["metadata"]["labels"],
                f"10.244.0.{i + 10}",
                ports,
            )
        )
    return pods


def outside(case: str) -> dict[str, Pod]:
    grid_cidr = merged_values(case)["networkPolicy"]["gridPlatform"]["to"][0]["ipBlock"]["cidr"]
    grid_ip = str(next(ipaddress.ip_network(grid_cidr).hosts()))
    return {
        "ingress": Pod("ingress", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"}, "10.245.0.2"),
        "ingress-other-pod": Pod("ingress-other-pod", "ingress-nginx", {"app": "x"}, "10.245.0.3"),
        "prometheus": Pod("prometheus", "monitoring", {"app": "prometheus"}, "10.245.1.2"),
        "dns": Pod("dns", "kube-system", {"k8s-app": "kube-dns"}, "10.245.2.2", [(53, "UDP"), (53, "TCP")]),
        "nats": Pod("nats", "nats", {"app": "nats"}, "10.245.3.2", [(4222, "TCP")]),
        "postgresql": Pod("postgresql", "postgresql", {"cnpg.io/cluster": "pg"}, "10.245.4.2", [(5432, "TCP")]),
        "otlp": Pod("otlp", "observability", {"app": "otel"}, "10.245.5.2", [(4317, "TCP"), (4318, "TCP")]),
        "grid": Pod("grid", "", {}, grid_ip, [(443, "TCP")]),
        "internet": Pod("internet", "", {}, "8.8.8.8", [(443, "TCP"), (80, "TCP")]),
        "stranger": Pod("stranger", "default", {"app.kubernetes.io/component": "api-gateway"}, "10.245.9.2"),
    }


@pytest.mark.parametrize("case", POLICY_CASES)
def test_between_our_pods_exactly_the_call_graph(case: str) -> None:
    objs = render_objects(case)
    policies = of_kind(objs, "NetworkPolicy")
    pods = our_pods(objs)
    names = {p.name for p in pods}
    expected = {(c, s, p) for c, s, p in CALLS if c in names and s in names}
    got = set()
    for src, dst in itertools.product(pods, pods):
        for port, proto in dst.ports:
            if allowed(policies, src, dst, port, proto):
                got.add((src.name, dst.name, port))
    assert got == expected
    if case == "disabled-service-values.yaml":
        assert not any("insights" in edge or "api-gateway" in edge for edge in got)


@pytest.mark.parametrize("case", POLICY_CASES)
def test_with_the_outside_world(case: str) -> None:
    objs = render_objects(case)
    policies = of_kind(objs, "NetworkPolicy")
    pods = {p.name: p for p in our_pods(objs)}
    out = outside(case)
    servers = [n for n in pods if not n.endswith("-migrate") and n != "test"]

    # Into the cluster: the ingress controller reaches the gateways' HTTP ports only.
    reach = {
        (n, port) for n in servers for port, _ in pods[n].ports if allowed(policies, out["ingress"], pods[n], port)
    }
    assert reach == {(n, port) for n, port in HTTP.items() if n in pods}
    for n, port in HTTP.items():
        if n in pods:
            assert not allowed(policies, out["ingress-other-pod"], pods[n], port), n
    assert not allowed(policies, out["stranger"], pods["identity"], 50051)
    # Prometheus scrapes every server's metrics port, nothing else.
    for n in servers:
        for port, _ in pods[n].ports:
            assert allowed(policies, out["prometheus"], pods[n], port) == (port == 9464), (n, port)

    # Out of the cluster.
    for n, pod in pods.items():
        is_server = n in servers
        assert allowed(policies, pod, out["dns"], 53, "UDP") and allowed(policies, pod, out["dns"], 53, "TCP"), n
        assert allowed(policies, pod, out["postgresql"], 5432) == (n in USES_POSTGRESQL), n
        assert allowed(policies, pod, out["nats"], 4222) == (n in USES_NATS), n
        assert allowed(policies, pod, out["otlp"], 4317) == is_server, n
        assert allowed(policies, pod, out["otlp"], 4318) == is_server, n
        assert allowed(policies, pod, out["grid"], 443) == (n == "grid-gateway"), n
        assert not allowed(policies, pod, out["internet"], 443), n
        assert not allowed(policies, pod, out["postgresql"], 6379), n


def test_a_deny_all_policy_covers_every_pod_of_the_release() -> None:
    objs = render_objects("production-values.yaml")
    deny = [p for p in of_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("-default-deny")]
    (deny,) = deny
    assert set(deny["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert not deny["spec"].get("ingress") and not deny["spec"].get("egress")
    for _, tpl in pod_templates(objs):
        assert selects(deny["spec"]["podSelector"], tpl["metadata"]["labels"])


def test_policies_only_when_enabled() -> None:
    assert not of_kind(render_objects("default"), "NetworkPolicy")
    assert not of_kind(render_objects("minimal-values.yaml"), "NetworkPolicy")


def test_the_evaluator_notices_an_extra_edge() -> None:
    """Guard: a policy that opens identity to everyone in the namespace is caught."""
    objs = render_objects("production-values.yaml")
    policies = of_kind(objs, "NetworkPolicy")
    pods = {p.name: p for p in our_pods(objs)}
    assert not allowed(policies, pods["boards"], pods["issues"], 50053)
    leaky = {
        "metadata": {"namespace": NS, "name": "leak"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{}], "egress": [{}]},
    }
    assert allowed([*policies, leaky], pods["boards"], pods["issues"], 50053)
