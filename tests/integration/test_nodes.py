"""Pods that run without a kubelet: kube-scheduler places them on kwok's fake nodes, kwok
makes them Running and Ready, and RSG sees real readiness."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.conftest import Kubectl, Operator, wait_for
from tests.integration.workloads import deployment
from tests.specs import group_spec, rsg


def test_pods_are_scheduled_on_fake_nodes_and_groups_turn_ready_by_themselves(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    for name in ("prefill", "decode"):
        manifest = deployment(name, 2, runs=True)
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        container["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        kubectl.apply(manifest, namespace)
    kubectl.apply(rsg("pool", group_spec(replicas=2)), namespace)

    def ready_status() -> dict[str, Any] | None:
        found = (kubectl.get("rsg", "pool", namespace) or {}).get("status", {})
        return found if found.get("readyReplicas") == 2 else None

    status = operator.wait_for(ready_status, timeout=90, what="both groups Ready")
    assert [g["phase"] for g in status["groups"]] == ["Ready", "Ready"]
    pods = json.loads(
        kubectl.run("get", "pods", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )["items"]
    assert len(pods) == 8  # 2 groups x 2 Deployments x 2 replicas
    assert all(p["spec"]["nodeName"].startswith("kwok-node-") for p in pods)
    assert all(
        any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"])
        for p in pods
    )
    # Nobody but kwok wrote a pod's status: no manual readiness here.
    writers = {
        entry["manager"]
        for p in pods
        for entry in p["metadata"]["managedFields"]
        if entry.get("subresource") == "status"
    }
    assert writers <= {"kwok", "kube-scheduler"}, writers


def test_pods_that_do_not_tolerate_the_gpu_taint_stay_pending(
    kubectl: Kubectl, namespace: str
) -> None:
    """What the tests that report readiness by hand rely on."""
    kubectl.apply(deployment("idle", 1), namespace)

    def unschedulable() -> bool:
        pods = json.loads(kubectl.run("get", "pods", "-n", namespace, "-o", "json").stdout)
        return any(
            c.get("reason") == "Unschedulable"
            for p in pods["items"]
            for c in (p.get("status") or {}).get("conditions") or []
        )

    wait_for(unschedulable, what="the pod found unschedulable (the taint)")
    pods = json.loads(kubectl.run("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    assert [p["status"].get("phase") for p in pods] == ["Pending"]
    assert not pods[0]["spec"].get("nodeName")
