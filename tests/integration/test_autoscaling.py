"""The HPA on real metrics: kwok's kubelets report each pod's cpu usage (from the pod's
`kwok.x-k8s.io/usage-cpu` annotation), metrics-server serves it through the aggregation
layer, and the controller-manager's HPA controller decides from it. Usage is changed by
annotating the live pods (not the template, which would roll the pods out)."""

from __future__ import annotations

import json
import time
from ipaddress import ip_address
from typing import Any

import psutil
import pytest

from rsg_operator.local_cluster import LocalControlPlane
from tests.harness import deployment
from tests.integration.conftest import Kubectl, Operator, wait_for
from tests.integration.test_drain import phases
from tests.integration.test_group_replication import status
from tests.integration.workloads import hpa, replicas
from tests.specs import follow, group_spec, rsg, target

USAGE = "kwok.x-k8s.io/usage-cpu"
REQUEST = 1000  # millicores each pod requests
TARGET = 50  # the HPAs' averageUtilization target, %
METRICS_TIMEOUT = 150  # metrics-server's first two scrapes of a new pod, then the HPA's sync


def loaded(name: str, replicas: int, usage_m: int) -> dict[str, Any]:
    """A Deployment whose pods run on the kwok nodes, request 1 cpu and use `usage_m`."""
    manifest = deployment(name, replicas, runs=True)
    template = manifest["spec"]["template"]
    template["metadata"]["annotations"] = {USAGE: f"{usage_m}m"}
    template["spec"]["containers"][0]["resources"] = {"requests": {"cpu": f"{REQUEST}m"}}
    return manifest


def hpa_status(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    return (kubectl.get("hpa", name, namespace) or {}).get("status") or {}


def utilization(found: dict[str, Any]) -> int | None:
    for metric in found.get("currentMetrics") or []:
        if metric.get("type") == "Resource":
            return metric["resource"]["current"].get("averageUtilization")
    return None


def running_pods(kubectl: Kubectl, namespace: str, selector: str) -> list[dict[str, Any]]:
    listed = json.loads(
        kubectl.run("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    )["items"]
    return [
        p
        for p in listed
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def set_usage(kubectl: Kubectl, namespace: str, selector: str, usage_m: int) -> list[str]:
    """Annotate every running pod the selector matches with a new usage."""
    names = [p["metadata"]["name"] for p in running_pods(kubectl, namespace, selector)]
    for name in names:
        kubectl.run("annotate", "pod", name, "-n", namespace, f"{USAGE}={usage_m}m", "--overwrite")
    return names


def top(kubectl: Kubectl, namespace: str, selector: str) -> dict[str, int]:
    """Pod name -> cpu usage in millicores, as the metrics API serves it."""
    found = json.loads(
        kubectl.run(
            "get",
            "--raw",
            f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods?labelSelector={selector}",
        ).stdout
    )
    usage: dict[str, int] = {}
    for item in found["items"]:
        cpu = item["containers"][0]["usage"]["cpu"]
        usage[item["metadata"]["name"]] = _millicores(cpu)
    return usage


def _millicores(quantity: str) -> int:
    if quantity.endswith("n"):
        return round(int(quantity[:-1]) / 1_000_000)
    if quantity.endswith("u"):
        return round(int(quantity[:-1]) / 1_000)
    if quantity.endswith("m"):
        return int(quantity[:-1])
    return int(float(quantity) * 1000)


@pytest.mark.slow
def test_the_metrics_api_serves_each_pods_usage_over_loopback_only(
    control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(loaded("busy", 2, 700), namespace)
    usage = wait_for(
        lambda: (u := top(kubectl, namespace, "app=busy")) and len(u) == 2 and u,
        timeout=METRICS_TIMEOUT,
        what="usage of both pods in the metrics API",
    )
    assert all(abs(m - 700) <= 35 for m in usage.values()), usage  # kwok's rate, ±5 %

    # metrics-server scraped kwok's kubelet endpoints at the nodes' (loopback) address;
    # no node advertises anything else, and no process of the plane dials out of loopback.
    nodes = json.loads(kubectl.run("get", "nodes", "-o", "json").stdout)["items"]
    addresses = {a["address"] for n in nodes for a in n["status"].get("addresses", [])}
    assert addresses and all(ip_address(a).is_loopback for a in addresses), addresses
    for name, pid in control_plane.pids.items():
        for connection in psutil.Process(pid).net_connections(kind="inet"):
            if connection.raddr:
                assert ip_address(connection.raddr.ip).is_loopback, (name, connection)


@pytest.mark.slow
def test_an_hpa_on_cpu_scales_the_groups_and_its_scale_in_drains_them(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """router (1 pod a group, first target: the RSG's labelSelector selects its pods) and
    decode (2 pods a group, busier, and not selected). The HPA computes in pods matched,
    so one pod a group keeps its count in groups."""
    kubectl.apply(loaded("router", 1, 800), namespace)
    kubectl.apply(loaded("decode", 2, 950), namespace)
    spec = group_spec(target("router"), target("decode"), replicas=1, drainTimeoutSeconds=8)
    kubectl.apply(rsg("pool", spec), namespace)
    operator.wait_for(
        lambda: status(kubectl, "pool", namespace).get("readyReplicas") == 1, what="one group"
    )
    selector = status(kubectl, "pool", namespace)["labelSelector"]
    assert selector == "app=router"  # the router's pods, in every group (clones keep it)

    on_rsg = hpa("ResourceScalingGroup", "resourcescalinggroup.com/v1", "pool", 1, 3)
    kubectl.apply(on_rsg, namespace)
    # 80 % against 50 %: 1 group -> ceil(1.6 x 1) = 2 -> ceil(1.6 x 2) = 4, capped at 3.
    operator.wait_for(
        lambda: status(kubectl, "pool", namespace).get("readyReplicas") == 3,
        timeout=3 * METRICS_TIMEOUT,
        what="the HPA's three groups Ready",
    )
    seen = operator.wait_for(
        lambda: (
            (s := hpa_status(kubectl, "pool", namespace)).get("currentReplicas") == 3
            and 76 <= (utilization(s) or 0) <= 84
            and s
        ),
        timeout=METRICS_TIMEOUT,
        what="the HPA at 3 groups, seeing 80 %",
    )
    assert seen["desiredReplicas"] == 3  # ceil(1.6 x 3) = 5, capped at its maximum
    assert len(running_pods(kubectl, namespace, selector)) == 3  # one pod per group matched
    # decode's 6 pods at 95 % are not what it averages: had they been selected with the
    # routers, 9 pods at 90 % would have asked for ceil(1.8 x 9) = 17 "groups".
    assert len(running_pods(kubectl, namespace, "app=decode")) == 6
    groups = ["unit-01", "unit-02", "unit-03"]
    assert list(phases(kubectl, namespace)) == groups
    spec_now = (kubectl.get("rsg", "pool", namespace) or {})["spec"]["scalingStrategy"]
    assert spec_now["groupConfig"]["replicas"] == 3

    # The load falls to 10 %: ceil(0.2 x 3) = 1 group. Two victims drain, then go.
    lowered = time.time()
    set_usage(kubectl, namespace, selector, 100)
    operator.wait_for(
        lambda: (
            sorted(g for g, p in phases(kubectl, namespace).items() if p == "Draining")
            == ["unit-02", "unit-03"]
        ),
        timeout=METRICS_TIMEOUT,
        what="two groups Draining",
    )
    assert status(kubectl, "pool", namespace)["currentReplicas"] == 1
    drained = operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01"] and time.time(),
        timeout=METRICS_TIMEOUT,
        what="the drained groups removed",
    )
    assert drained - lowered >= 8  # not before their drain timeout
    assert operator.log_text().count("its drain deadline passed") >= 2
    low = hpa_status(kubectl, "pool", namespace)
    assert low["desiredReplicas"] == 1 and low["currentReplicas"] == 1
    assert (utilization(low) or 100) <= 15  # what it saw: unit-01's router at 10 %


@pytest.mark.slow
def test_an_hpa_on_the_source_moves_the_targets_at_their_ratios(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(loaded("router", 1, 900), namespace)
    kubectl.apply(deployment("decode", 0, runs=True), namespace)
    kubectl.apply(rsg("pool", follow("router", "decode", ratio=2)), namespace)
    operator.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 2)

    kubectl.apply(hpa("Deployment", "apps/v1", "router", 1, 4), namespace)
    # 90 % against 50 %: 1 -> 2 -> 4 routers; decode follows at 2 per router.
    operator.wait_for(
        lambda: replicas(kubectl, "deployment", "router", namespace) == 4,
        timeout=3 * METRICS_TIMEOUT,
        what="the HPA's four routers",
    )
    operator.wait_for(
        lambda: replicas(kubectl, "deployment", "decode", namespace) == 8, what="decode at 8"
    )

    set_usage(kubectl, namespace, "app=router", 100)  # 10 %: ceil(0.2 x 4) = 1
    operator.wait_for(
        lambda: replicas(kubectl, "deployment", "router", namespace) == 1,
        timeout=METRICS_TIMEOUT,
        what="the HPA back at one router",
    )
    operator.wait_for(
        lambda: replicas(kubectl, "deployment", "decode", namespace) == 2, what="decode at 2"
    )
    assert hpa_status(kubectl, "router", namespace)["desiredReplicas"] == 1
