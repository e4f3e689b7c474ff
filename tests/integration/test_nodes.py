"""Pods that run without a kubelet: kube-scheduler places them on kwok's fake nodes, kwok
makes them Running and Ready, and RSG sees real readiness."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from rsg_operator.local_cluster import LocalControlPlane
from tests.harness import ROOT
from tests.integration.conftest import Kubectl, Operator, control_plane_bin
from tests.integration.workloads import deployment
from tests.specs import group_spec, rsg

NODES = 3


@pytest.fixture(scope="module")
def with_nodes() -> Iterator[LocalControlPlane]:
    plane = LocalControlPlane(bin_dir=control_plane_bin(), nodes=NODES)
    plane.start()
    try:
        plane.apply(ROOT / "crds")
        yield plane
    finally:
        plane.stop()


def test_pods_are_scheduled_on_fake_nodes_and_groups_turn_ready_by_themselves(
    with_nodes: LocalControlPlane,
) -> None:
    kubectl = Kubectl(with_nodes.kubectl, with_nodes.kubeconfig)
    kubectl.run("create", "namespace", "ai")
    for name in ("prefill", "decode"):
        manifest = deployment(name, 2)
        container = manifest["spec"]["template"]["spec"]["containers"][0]
        container["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
        kubectl.apply(manifest, "ai")
    assert with_nodes.work_dir is not None
    operator = Operator(with_nodes.kubeconfig, with_nodes.work_dir / "logs" / "operator.log")
    operator.start()
    try:
        kubectl.apply(rsg("pool", group_spec(replicas=2)), "ai")
        status = operator.wait_for(
            lambda: (
                found
                if (found := (kubectl.get("rsg", "pool", "ai") or {}).get("status", {})).get(
                    "readyReplicas"
                )
                == 2
                else None
            ),
            timeout=90,
            what="both groups Ready",
        )
    finally:
        operator.stop()
    assert [g["phase"] for g in status["groups"]] == ["Ready", "Ready"]
    pods = json.loads(
        kubectl.run("get", "pods", "-n", "ai", "-o", "json", "--show-managed-fields").stdout
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
