"""A real HPA (metrics-server, kwok's usage) on a GroupReplication RSG whose first member
is a RoleBasedGroup (found by review: its labelSelector matched the seed group's pods
only, and the HPA removed a group under load). RBG's controller is played
by the test as in test_drain.py: each group's RBG gets a pod labelled with the RBG's name
(rbg.workloads.x-k8s.io/group-name), and its roles reported Ready."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Kubectl, Operator
from tests.integration.test_autoscaling import (
    METRICS_TIMEOUT,
    REQUEST,
    USAGE,
    hpa_status,
    utilization,
)
from tests.integration.test_drain import rbg_pod
from tests.integration.test_group_replication import status
from tests.integration.workloads import (
    RBG_CRD,
    RBGS,
    hpa,
    install_crd,
    report_roles,
    rolebasedgroup,
)
from tests.specs import group_spec, rsg, target

RBG_V2 = "workloads.x-k8s.io/v1alpha2"


def loaded_pod(name: str, rbg: str, usage_m: int) -> dict[str, Any]:
    pod = rbg_pod(name, rbg)
    pod["metadata"]["annotations"] = {USAGE: f"{usage_m}m"}
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": f"{REQUEST}m"}}
    return pod


@pytest.mark.slow
def test_an_hpa_on_an_rsg_whose_first_member_is_an_rbg_sees_every_group(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """3 groups of one RBG (1 router pod each), every pod at 60 % of its cpu against a
    50 % target: the selector names every group's RBG, and the HPA asks for
    ceil(1.2 x 3) = 4 groups (with the seed's name alone it saw one pod: 2)."""
    install_crd(kubectl, RBG_CRD)
    kubectl.apply(rolebasedgroup("pool", {"router": 1}, "v1alpha2"), namespace)
    spec = group_spec(target("pool", "RoleBasedGroup", RBG_V2), replicas=3)
    kubectl.apply(rsg("pd", spec), namespace)
    names = ["pool", "unit-02-pool", "unit-03-pool"]
    for name in names[1:]:
        operator.wait_for(lambda n=name: kubectl.get(RBGS, n, namespace), what=f"clone {name}")
    for name in names:  # RBG's controller, played: one router pod per group, and status
        kubectl.apply(loaded_pod(f"{name}-router-0", name, 600), namespace)
        report_roles(kubectl, name, namespace, {"router": 1})
    operator.wait_for(
        lambda: status(kubectl, "pd", namespace).get("readyReplicas") == 3,
        timeout=60,
        what="3 Ready groups",
    )
    selector = status(kubectl, "pd", namespace)["labelSelector"]
    assert selector == "rbg.workloads.x-k8s.io/group-name in (pool,unit-02-pool,unit-03-pool)"

    kubectl.apply(hpa("ResourceScalingGroup", "resourcescalinggroup.com/v1", "pd", 1, 6), namespace)
    # Until every pod has a metric the HPA counts the missing ones as idle and holds
    # the count; then it sees 3 pods at 60 %: ceil(1.2 x 3) = 4 (the seed's name alone
    # matched one pod: ceil(1.2 x 1) = 2, and it stayed there).
    seen = operator.wait_for(
        lambda: (
            (s := hpa_status(kubectl, "pd", namespace)).get("desiredReplicas") == 4
            and utilization(s) is not None
            and s
        ),
        timeout=3 * METRICS_TIMEOUT,
        what="the HPA asking for 4 groups",
    )
    assert 55 <= (utilization(seen) or 0) <= 65
