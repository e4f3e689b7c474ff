"""Two-phase scale-down on Pods that run (kwok nodes): a victim group drains first, and
goes at the gateway's acknowledgement or at its deadline (SPEC §3)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from typing import Any

from rsg_operator.local_cluster import GPU_TOLERATION
from tests.integration import workloads
from tests.integration.conftest import ROOT, Kubectl, Operator, wait_for
from tests.integration.test_group_replication import status
from tests.integration.workloads import (
    RBG_CRD,
    RBGS,
    deployment,
    install_crd,
    report_roles,
    rolebasedgroup,
)
from tests.specs import group_spec, rsg, target

DRAINING = "resourcescalinggroup.com/draining"
DRAIN_STARTED = "resourcescalinggroup.com/drain-started"
DRAINED = "resourcescalinggroup.com/drained"
SEED_REPLICAS = "resourcescalinggroup.com/seed-replicas"
HOLD = "test.rsg.io/hold"  # a finalizer that keeps a pod from going away
LONG = 600  # a drain timeout no test waits for


def phases(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    return {g["id"]: g["phase"] for g in status(kubectl, "pool", namespace).get("groups", [])}


def group(kubectl: Kubectl, namespace: str, group_id: str) -> dict[str, Any]:
    found = [g for g in status(kubectl, "pool", namespace).get("groups", []) if g["id"] == group_id]
    return found[0] if found else {}


def pods(kubectl: Kubectl, namespace: str, selector: str) -> dict[str, str]:
    """Pod name -> uid of the running pods a selector matches."""
    listed = json.loads(
        kubectl.run("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    )["items"]
    return {
        p["metadata"]["name"]: p["metadata"]["uid"]
        for p in listed
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    }


def meta(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    return (kubectl.get("deployment", name, namespace) or {}).get("metadata") or {}


def set_finalizers(kubectl: Kubectl, namespace: str, pod: str, finalizers: Any) -> None:
    patch = json.dumps({"metadata": {"finalizers": finalizers}})
    kubectl.run("patch", "pod", pod, "-n", namespace, "--type=merge", "-p", patch)


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def running_groups(
    operator: Operator, kubectl: Kubectl, namespace: str, count: int, **scale_down: Any
) -> None:
    """prefill and decode (1 running pod each) and an RSG `pool` of `count` Ready groups."""
    kubectl.apply(deployment("prefill", 1, runs=True), namespace)
    kubectl.apply(deployment("decode", 1, runs=True), namespace)
    kubectl.apply(rsg("pool", group_spec(replicas=count, **scale_down)), namespace)
    operator.wait_for(
        lambda: status(kubectl, "pool", namespace).get("readyReplicas") == count,
        timeout=60,
        what=f"{count} Ready groups",
    )


def scale_to(kubectl: Kubectl, namespace: str, count: int, **scale_down: Any) -> None:
    kubectl.apply(rsg("pool", group_spec(replicas=count, **scale_down)), namespace)


def wait_draining(operator: Operator, kubectl: Kubectl, namespace: str, group_id: str) -> None:
    operator.wait_for(
        lambda: phases(kubectl, namespace).get(group_id) == "Draining",
        what=f"{group_id} Draining",
    )


def test_a_drained_group_goes_at_the_gateways_acknowledgement(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    running_groups(operator, kubectl, namespace, 3, drainTimeoutSeconds=LONG)
    group_pods = "resourcescalinggroup.com/group-id=unit-03"
    before = pods(kubectl, namespace, group_pods)
    template = (kubectl.get("deployment", "unit-03-decode", namespace) or {})["spec"]["template"]
    assert len(before) == 2

    scale_to(kubectl, namespace, 2, drainTimeoutSeconds=LONG)
    wait_draining(operator, kubectl, namespace, "unit-03")
    began = time.time()
    found = status(kubectl, "pool", namespace)
    assert found["currentReplicas"] == 2  # a draining group is on its way out
    deadline = epoch(group(kubectl, namespace, "unit-03")["drainDeadline"])
    assert began - 30 < deadline - LONG <= began  # the drain began just now
    for name in ("unit-03-prefill", "unit-03-decode"):
        marked = meta(kubectl, name, namespace)
        assert marked["labels"][DRAINING] == "true"
        assert epoch(marked["annotations"][DRAIN_STARTED]) == deadline - LONG
    # Still serving what it has: same pods, running; the template untouched.
    assert pods(kubectl, namespace, group_pods) == before
    assert (kubectl.get("deployment", "unit-03-decode", namespace) or {})["spec"][
        "template"
    ] == template
    assert "draining unit-03" in kubectl.events(namespace, "reason=GroupDraining")
    progressing = kubectl.condition("pool", namespace, "Progressing")
    assert progressing["status"] == "True" and "draining unit-03" in progressing["message"]

    # A finalizer holds one pod, so that the group is seen Deleting while it goes.
    held = sorted(before)[0]
    set_finalizers(kubectl, namespace, held, [HOLD])
    kubectl.run("annotate", "deployment/unit-03-decode", "-n", namespace, f"{DRAINED}=true")
    operator.wait_for(
        lambda: phases(kubectl, namespace).get("unit-03") == "Deleting",
        what="unit-03 Deleting while its pods go",
    )
    assert time.time() < deadline  # the acknowledgement, not the deadline
    assert status(kubectl, "pool", namespace)["currentReplicas"] == 2
    # Its index stays taken while it goes: a new group gets the next one.
    scale_to(kubectl, namespace, 3, drainTimeoutSeconds=LONG)
    operator.wait_for(lambda: "unit-04" in phases(kubectl, namespace), what="unit-04")
    assert phases(kubectl, namespace)["unit-03"] == "Deleting"

    set_finalizers(kubectl, namespace, held, None)
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01", "unit-02", "unit-04"],
        what="unit-03 gone",
    )
    assert kubectl.get("deployment", "unit-03-decode", namespace) is None
    removed = kubectl.events(namespace, "reason=GroupRemoved")
    assert "removed unit-03: its drain was acknowledged" in removed


def test_a_drain_without_acknowledgement_ends_at_its_deadline(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    running_groups(operator, kubectl, namespace, 2, drainTimeoutSeconds=4)
    scale_to(kubectl, namespace, 1, drainTimeoutSeconds=4)
    wait_draining(operator, kubectl, namespace, "unit-02")
    deadline = epoch(group(kubectl, namespace, "unit-02")["drainDeadline"])
    operator.wait_for(
        lambda: "unit-02" not in phases(kubectl, namespace), timeout=30, what="unit-02 removed"
    )
    assert time.time() >= deadline  # not before its deadline
    assert kubectl.get("deployment", "unit-02-prefill", namespace) is None
    removed = kubectl.events(namespace, "reason=GroupRemoved")
    assert "removed unit-02: its drain deadline passed" in removed


def test_a_group_wanted_back_while_it_drains_is_revived(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    running_groups(operator, kubectl, namespace, 3, drainTimeoutSeconds=LONG)
    group_pods = "resourcescalinggroup.com/group-id=unit-03"
    before = pods(kubectl, namespace, group_pods)
    uid = meta(kubectl, "unit-03-prefill", namespace)["uid"]
    scale_to(kubectl, namespace, 2, drainTimeoutSeconds=LONG)
    wait_draining(operator, kubectl, namespace, "unit-03")

    scale_to(kubectl, namespace, 3, drainTimeoutSeconds=LONG)
    operator.wait_for(
        lambda: (
            phases(kubectl, namespace)
            == {"unit-01": "Ready", "unit-02": "Ready", "unit-03": "Ready"}
        ),
        what="unit-03 Ready again",
    )
    revived = meta(kubectl, "unit-03-prefill", namespace)
    assert revived["uid"] == uid  # the same group, not a new one
    assert DRAINING not in revived.get("labels", {})
    assert DRAIN_STARTED not in (revived.get("annotations") or {})
    assert pods(kubectl, namespace, group_pods) == before  # its pods never stopped
    assert kubectl.get("deployment", "unit-04-prefill", namespace) is None
    assert "unit-03 serves again" in kubectl.events(namespace, "reason=GroupRevived")


def test_the_seed_group_drains_before_it_is_scaled_to_zero(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    drain = {"drainTimeoutSeconds": LONG, "candidates": ["unit-01"]}
    running_groups(operator, kubectl, namespace, 2, **drain)
    scale_to(kubectl, namespace, 1, **drain)
    wait_draining(operator, kubectl, namespace, "unit-01")
    seed = kubectl.get("deployment", "prefill", namespace) or {}
    assert seed["metadata"]["labels"][DRAINING] == "true"
    assert seed["spec"]["replicas"] == 1  # still serving
    assert SEED_REPLICAS not in (seed["metadata"].get("annotations") or {})
    seed_pods = group(kubectl, namespace, "unit-01")["members"][0]["podSelector"]
    assert seed_pods == "app=prefill,!resourcescalinggroup.com/group-id"
    assert len(pods(kubectl, namespace, seed_pods)) == 1  # its own pod, not unit-02's

    kubectl.run("annotate", "deployment/prefill", "-n", namespace, f"{DRAINED}=true")
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-02"], what="the seed group removed"
    )
    for name in ("prefill", "decode"):
        removed = kubectl.get("deployment", name, namespace) or {}
        assert removed["spec"]["replicas"] == 0
        assert json.loads(removed["metadata"]["annotations"][SEED_REPLICAS]) == {
            "/spec/replicas": 1
        }
        # The drain's marks went with the drain.
        assert DRAINING not in removed["metadata"]["labels"]
        assert DRAIN_STARTED not in removed["metadata"]["annotations"]
        assert DRAINED not in removed["metadata"]["annotations"]


def test_an_operator_killed_mid_drain_keeps_the_original_deadline(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    timeout = 12
    running_groups(operator, kubectl, namespace, 2, drainTimeoutSeconds=timeout)
    scale_to(kubectl, namespace, 1, drainTimeoutSeconds=timeout)
    wait_draining(operator, kubectl, namespace, "unit-02")
    deadline = group(kubectl, namespace, "unit-02")["drainDeadline"]
    operator.kill()  # SIGKILL: nothing is cleaned up
    try:
        # Down for a good part of the drain.
        wait_for(lambda: time.time() > epoch(deadline) - timeout / 2, what="half the drain")
    finally:
        restarted = time.time()
        operator.start()
    operator.wait_for(
        lambda: "unit-02" not in phases(kubectl, namespace), timeout=30, what="unit-02 removed"
    )
    gone = time.time()
    assert epoch(deadline) <= gone < restarted + timeout  # the old deadline, not a new one
    assert "GroupRemoved: removed unit-02: its drain deadline passed" in operator.log_text()


def hpa(name: str, low: int, high: int) -> dict[str, Any]:
    """An HPA on the RSG `name` on cpu, with the HPA's default behaviour."""
    return workloads.hpa(
        "ResourceScalingGroup", "resourcescalinggroup.com/v1", name, low, high, quick_down=False
    )


def test_scale_in_by_the_hpa_drains_first_and_its_scale_out_revives(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    running_groups(operator, kubectl, namespace, 4, drainTimeoutSeconds=LONG)
    kubectl.apply(hpa("pool", 1, 3), namespace)  # above its maximum: the HPA takes one away
    wait_draining(operator, kubectl, namespace, "unit-04")
    assert kubectl.get("deployment", "unit-04-prefill", namespace) is not None

    def hpa_status() -> dict[str, Any] | None:
        found = (kubectl.get("hpa", "pool", namespace) or {}).get("status") or {}
        return found if found.get("currentReplicas") == 3 else None

    seen = operator.wait_for(hpa_status, what="the HPA at 3")
    assert seen["desiredReplicas"] == 3
    assert status(kubectl, "pool", namespace)["currentReplicas"] == 3
    assert phases(kubectl, namespace)["unit-04"] == "Draining"

    # Its next evaluation, with the drain under way, asks for metrics (which this cluster
    # does not serve; a count outside its bounds would have been corrected without them):
    # it sees its decision carried out and leaves the count alone.
    def evaluated_again() -> bool:
        found = (kubectl.get("hpa", "pool", namespace) or {}).get("status") or {}
        return any(
            c["type"] == "ScalingActive" and c.get("reason") == "FailedGetResourceMetric"
            for c in found.get("conditions") or []
        )

    operator.wait_for(evaluated_again, what="the HPA's next evaluation")
    after = (kubectl.get("hpa", "pool", namespace) or {}).get("status") or {}
    assert after.get("lastScaleTime") == seen.get("lastScaleTime")
    spec = (kubectl.get("rsg", "pool", namespace) or {})["spec"]["scalingStrategy"]
    assert spec["groupConfig"]["replicas"] == 3
    assert phases(kubectl, namespace)["unit-04"] == "Draining"

    kubectl.apply(hpa("pool", 4, 4), namespace)  # back to 4: the draining group returns
    operator.wait_for(
        lambda: phases(kubectl, namespace).get("unit-04") == "Ready", what="unit-04 revived"
    )
    assert list(phases(kubectl, namespace)) == ["unit-01", "unit-02", "unit-03", "unit-04"]
    assert kubectl.get("deployment", "unit-05-prefill", namespace) is None


def test_a_stale_candidate_is_never_given_to_a_new_group(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    running_groups(operator, kubectl, namespace, 3)
    scale_to(kubectl, namespace, 2, candidates=["unit-02"])
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01", "unit-03"], what="unit-02 removed"
    )
    # The gateway never cleared its list. A new group must not be unit-02, or the stale
    # entry would make it the next victim.
    scale_to(kubectl, namespace, 3, candidates=["unit-02"])
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01", "unit-03", "unit-04"],
        what="unit-04 made instead of unit-02",
    )
    unit_04 = meta(kubectl, "unit-04-prefill", namespace)["uid"]
    scale_to(kubectl, namespace, 2, candidates=["unit-02"])  # Ordered: the highest goes
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01", "unit-03"], what="back to 2"
    )
    assert "unit-02 is not an existing group" in kubectl.events(
        namespace, "reason=CandidateIgnored"
    )
    # Once the list no longer names it, the id is free again.
    scale_to(kubectl, namespace, 3)
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01", "unit-02", "unit-03"],
        what="unit-02 made again",
    )
    assert meta(kubectl, "unit-04-prefill", namespace).get("uid") != unit_04


def pod_ips(kubectl: Kubectl, namespace: str, selector: str) -> list[str]:
    out = kubectl.run(
        "get", "pods", "-n", namespace, "-l", selector, "-o", "jsonpath={.items[*].status.podIP}"
    ).stdout
    return out.split()


def gateway(kubectl: Kubectl, namespace: str, *args: str) -> str:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "gateway.py"),
            "pool",
            "-n",
            namespace,
            f"--kubeconfig={kubectl.kubeconfig}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_the_gateway_example_routes_around_a_drain_and_acknowledges_it(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    running_groups(operator, kubectl, namespace, 3, drainTimeoutSeconds=LONG)
    ips = {
        g["id"]: sorted(
            ip
            for member in g["members"]
            for ip in pod_ips(kubectl, namespace, member["podSelector"])
        )
        for g in status(kubectl, "pool", namespace)["groups"]
    }
    assert sorted(ips) == ["unit-01", "unit-02", "unit-03"]
    assert all(len(addresses) == 2 for addresses in ips.values())
    routes = gateway(kubectl, namespace, "--once")
    for group_id, addresses in ips.items():
        assert f"route {group_id}: {' '.join(addresses)}" in routes

    assert "asked for unit-02 to be removed" in gateway(kubectl, namespace, "--remove", "unit-02")
    wait_draining(operator, kubectl, namespace, "unit-02")
    spec = (kubectl.get("rsg", "pool", namespace) or {})["spec"]["scalingStrategy"]["groupConfig"]
    assert spec["replicas"] == 2 and spec["scaleDown"]["candidates"] == ["unit-02"]

    out = gateway(kubectl, namespace, "--once")
    assert "stop routing to unit-02" in out
    assert "acknowledged unit-02: drained" in out
    assert "route unit-02" not in out
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01", "unit-03"],
        what="unit-02 removed at the acknowledgement",
    )
    # Still listed while it drained and went: never reported as a missing candidate.
    assert "unit-02" not in kubectl.events(namespace, "reason=CandidateIgnored")


def rbg_pod(name: str, rbg: str) -> dict[str, Any]:
    """A pod as RBG's controller would make for a v1alpha2 RoleBasedGroup `rbg` (its
    group-name label), on a GPU node: it runs."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"rbg.workloads.x-k8s.io/group-name": rbg}},
        "spec": {
            "containers": [{"name": "engine", "image": "registry.invalid/x:1"}],
            "tolerations": [GPU_TOLERATION],
        },
    }


def test_the_gateway_routes_to_and_drains_a_group_whose_member_is_a_rolebasedgroup(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """status.groups[] gives an RBG member the selector of the pods RBG labels with its
    name, so a gateway finds an RBG group's pods, stops routing to it when it drains, and
    acknowledges through the RBG itself."""
    install_crd(kubectl, RBG_CRD)
    kubectl.apply(rolebasedgroup("engine", {"worker": 1}, "v1alpha2"), namespace)
    kubectl.apply(deployment("router", 1, runs=True), namespace)
    engine = target("engine", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha2")
    spec = group_spec(engine, target("router"), replicas=2, drainTimeoutSeconds=LONG)
    kubectl.apply(rsg("pool", spec), namespace)
    operator.wait_for(lambda: kubectl.get(RBGS, "unit-02-engine", namespace), what="the clone")
    for rbg in ("engine", "unit-02-engine"):  # RBG's controller, played: pods, and status
        kubectl.apply(rbg_pod(f"{rbg}-worker-0", rbg), namespace)
        report_roles(kubectl, rbg, namespace, {"worker": 1})
    operator.wait_for(
        lambda: status(kubectl, "pool", namespace).get("readyReplicas") == 2,
        timeout=60,
        what="2 Ready groups",
    )
    selectors = {
        g["id"]: g["members"][0]["podSelector"]
        for g in status(kubectl, "pool", namespace)["groups"]
    }
    assert selectors["unit-02"] == "rbg.workloads.x-k8s.io/group-name=unit-02-engine"
    routes = gateway(kubectl, namespace, "--once")
    for group_id, rbg in (("unit-01", "engine"), ("unit-02", "unit-02-engine")):
        ips = pod_ips(kubectl, namespace, f"rbg.workloads.x-k8s.io/group-name={rbg}")
        assert len(ips) == 1 and ips[0] in routes.split(f"route {group_id}:")[1].split("\n")[0]

    gateway(kubectl, namespace, "--remove", "unit-02")
    wait_draining(operator, kubectl, namespace, "unit-02")
    out = gateway(kubectl, namespace, "--once")
    assert "stop routing to unit-02" in out and "acknowledged unit-02: drained" in out
    assert "route unit-02" not in out
    operator.wait_for(
        lambda: list(phases(kubectl, namespace)) == ["unit-01"],
        what="unit-02 removed at the acknowledgement through its RBG",
    )
    assert "removed unit-02: its drain was acknowledged" in kubectl.events(
        namespace, "reason=GroupRemoved"
    )
