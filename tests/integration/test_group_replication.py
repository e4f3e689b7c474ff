"""GroupReplication on the real control plane: whole groups cloned and removed (SPEC §3)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kubectl, Operator, wait_for
from tests.integration.workloads import (
    RBG_CRD,
    RBGS,
    deployment,
    install_crd,
    report_roles,
    rolebasedgroup,
    statefulset,
)
from tests.specs import group_spec, rsg, target

EXAMPLES = Path(__file__).parents[2] / "examples"
GROUP_ID = "resourcescalinggroup.com/group-id"
SEED_REPLICAS = "resourcescalinggroup.com/seed-replicas"


PREFILL = target("prefill")


def deployments(kubectl: Kubectl, namespace: str) -> set[str]:
    out = kubectl.run(
        "get", "deployments", "-n", namespace, "-o", "jsonpath={.items[*].metadata.name}"
    ).stdout
    return set(out.split())


def status(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    return (kubectl.get("rsg", name, namespace) or {}).get("status") or {}


def group_ids(kubectl: Kubectl, name: str, namespace: str) -> list[str]:
    return [g["id"] for g in status(kubectl, name, namespace).get("groups", [])]


def wait_groups(
    operator: Operator,
    kubectl: Kubectl,
    name: str,
    namespace: str,
    expected: list[str],
    deployments_expected: set[str],
) -> None:
    operator.wait_for(
        lambda: (
            group_ids(kubectl, name, namespace) == expected
            and deployments(kubectl, namespace) == deployments_expected
        ),
        what=f"groups {expected} and deployments {sorted(deployments_expected)}",
    )


def scale(kubectl: Kubectl, name: str, namespace: str, count: int) -> None:
    kubectl.run("scale", f"rsg/{name}", f"--replicas={count}", "-n", namespace)


def test_seed_example_scales_whole_groups(operator: Operator, kubectl: Kubectl, ai: str) -> None:
    kubectl.apply(deployment("prefill", 2), ai)
    kubectl.apply(deployment("decode", 4), ai)
    before = {n: kubectl.get("deployment", n, ai) for n in ("prefill", "decode")}
    kubectl.run("apply", "-n", ai, "-f", str(EXAMPLES / "group-replication.yaml"))
    name, seeds = "pd-cluster", {"prefill", "decode"}
    others = deployments(kubectl, ai) - seeds  # e.g. router, from the inplace example

    # replicas 1: only the seed group, labelled; its spec untouched.
    operator.wait_for(
        lambda: group_ids(kubectl, name, ai) == ["inference-unit-01"], what="the seed group"
    )
    for n, original in before.items():
        now = kubectl.get("deployment", n, ai)
        assert now is not None and original is not None
        assert now["metadata"]["labels"][GROUP_ID] == "inference-unit-01"
        assert now["metadata"]["generation"] == original["metadata"]["generation"]
        assert now["spec"]["template"] == original["spec"]["template"]

    # The example lists inference-unit-02 as a scale-down candidate: while it is listed,
    # no new group takes that id (a stale candidate must not remove a new group).
    clones = {f"inference-unit-{i:02d}-{n}" for i in (3, 4) for n in ("prefill", "decode")}
    three_groups = ["inference-unit-01", "inference-unit-03", "inference-unit-04"]
    scale(kubectl, name, ai, 3)
    wait_groups(operator, kubectl, name, ai, three_groups, seeds | others | clones)
    for clone in clones:
        owned = wait_for(
            lambda c=clone: kubectl.run(
                "get",
                "replicasets",
                "-n",
                ai,
                "-l",
                f"{GROUP_ID}={c.rsplit('-', 1)[0]}",
                "-o",
                "jsonpath={.items[*].metadata.ownerReferences[0].name}",
            ).stdout.split(),
            what=f"ReplicaSets of {clone}",
        )
        assert clone in owned
    cloned = kubectl.get("deployment", "inference-unit-03-decode", ai)
    assert cloned is not None
    assert cloned["spec"]["selector"]["matchLabels"][GROUP_ID] == "inference-unit-03"
    assert cloned["metadata"]["ownerReferences"][0]["kind"] == "ResourceScalingGroup"
    assert cloned["spec"]["replicas"] == 4

    # To 2: the candidate does not exist (a Warning says so); Ordered takes -04.
    scale(kubectl, name, ai, 2)
    three = {c for c in clones if c.startswith("inference-unit-03")}
    wait_groups(
        operator,
        kubectl,
        name,
        ai,
        ["inference-unit-01", "inference-unit-03"],
        seeds | others | three,
    )
    ignored = kubectl.events(ai, "involvedObject.name=pd-cluster,reason=CandidateIgnored")
    assert "inference-unit-02 is not an existing group" in ignored
    # Back to 3: -04 is created again.
    scale(kubectl, name, ai, 3)
    wait_groups(operator, kubectl, name, ai, three_groups, seeds | others | clones)

    # To 0: the seed members go to 0 with their counts recorded; back to 1 restores them.
    scale(kubectl, name, ai, 0)
    wait_groups(operator, kubectl, name, ai, [], seeds | others)
    for n, count in (("prefill", 2), ("decode", 4)):
        seed = kubectl.get("deployment", n, ai)
        assert seed is not None and seed["spec"]["replicas"] == 0
        assert json.loads(seed["metadata"]["annotations"][SEED_REPLICAS]) == {
            "/spec/replicas": count
        }
    scale(kubectl, name, ai, 1)
    wait_groups(operator, kubectl, name, ai, ["inference-unit-01"], seeds | others)
    for n, count in (("prefill", 2), ("decode", 4)):
        seed = kubectl.get("deployment", n, ai)
        assert seed is not None and seed["spec"]["replicas"] == count
        assert SEED_REPLICAS not in (seed["metadata"].get("annotations") or {})
        assert seed["spec"]["template"] == (before[n] or {})["spec"]["template"]

    on_rsg = "involvedObject.name=pd-cluster"
    assert "created inference-unit-04" in kubectl.events(ai, f"{on_rsg},reason=GroupCreated")
    assert "removed inference-unit-04" in kubectl.events(ai, f"{on_rsg},reason=GroupRemoved")
    assert "inference-unit-02" not in kubectl.events(ai, f"{on_rsg},reason=GroupCreated")


def second_passed(since: str) -> bool:
    started = dt.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return dt.datetime.now(dt.UTC) >= started + dt.timedelta(seconds=1.1)


@pytest.mark.parametrize(
    "policy, candidates, removed",
    [
        ("Ordered", [], "unit-04"),
        ("Ordered", ["unit-03"], "unit-03"),
        ("Newest", [], "unit-02"),
        ("Newest", ["unit-04"], "unit-04"),
        ("Oldest", [], "unit-01"),
        ("Oldest", ["unit-09", "unit-03"], "unit-03"),
    ],
)
def test_policy_picks_the_victim(
    operator: Operator,
    kubectl: Kubectl,
    namespace: str,
    policy: str,
    candidates: list[str],
    removed: str,
) -> None:
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(rsg("pool", group_spec(PREFILL, replicas=4, policy=policy)), namespace)
    everything = ["unit-01", "unit-02", "unit-03", "unit-04"]
    operator.wait_for(
        lambda: group_ids(kubectl, "pool", namespace) == everything, what="four groups"
    )
    # Make group 02 the newest: remove it, let the clock pass a second, create it again.
    created = max(g["creationTime"] for g in status(kubectl, "pool", namespace)["groups"])
    kubectl.apply(
        rsg("pool", group_spec(PREFILL, replicas=3, policy=policy, candidates=["unit-02"])),
        namespace,
    )
    operator.wait_for(
        lambda: "unit-02" not in group_ids(kubectl, "pool", namespace), what="unit-02 removed"
    )
    wait_for(lambda: second_passed(created), what="a new second")
    kubectl.apply(rsg("pool", group_spec(PREFILL, replicas=4, policy=policy)), namespace)
    operator.wait_for(
        lambda: group_ids(kubectl, "pool", namespace) == everything, what="unit-02 back"
    )

    kubectl.apply(
        rsg("pool", group_spec(PREFILL, replicas=3, policy=policy, candidates=candidates)),
        namespace,
    )
    operator.wait_for(lambda: len(group_ids(kubectl, "pool", namespace)) == 3, what="three groups")
    assert removed not in group_ids(kubectl, "pool", namespace)
    if "unit-09" in candidates:
        ignored = kubectl.events(namespace, "type=Warning,reason=CandidateIgnored")
        assert "unit-09" in ignored


def test_hpa_on_the_rsg_sets_the_group_count(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(rsg("pool", group_spec(PREFILL, replicas=1)), namespace)
    operator.wait_for(
        lambda: status(kubectl, "pool", namespace).get("labelSelector"), what="status.labelSelector"
    )
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "pool"},
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "resourcescalinggroup.com/v1",
                "kind": "ResourceScalingGroup",
                "name": "pool",
            },
            "minReplicas": 4,
            "maxReplicas": 8,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    kubectl.apply(hpa, namespace)
    operator.wait_for(
        lambda: (
            group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-02", "unit-03", "unit-04"]
        ),
        timeout=60,
        what="four groups made by the HPA",
    )
    spec = (kubectl.get("rsg", "pool", namespace) or {})["spec"]
    assert spec["scalingStrategy"]["groupConfig"]["replicas"] == 4


def test_deleting_the_rsg_collects_clones_and_leaves_the_seed(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("prefill", 2), namespace)
    original = kubectl.get("deployment", "prefill", namespace)
    kubectl.apply(rsg("pool", group_spec(PREFILL, replicas=3)), namespace)
    wait_groups(
        operator,
        kubectl,
        "pool",
        namespace,
        ["unit-01", "unit-02", "unit-03"],
        {"prefill", "unit-02-prefill", "unit-03-prefill"},
    )
    kubectl.run("delete", "rsg/pool", "-n", namespace, "--timeout=60s")
    operator.wait_for(
        lambda: deployments(kubectl, namespace) == {"prefill"},
        timeout=60,
        what="clones garbage-collected",
    )
    seed = kubectl.get("deployment", "prefill", namespace)
    assert seed is not None and original is not None
    assert seed["metadata"].get("labels") == original["metadata"].get("labels")
    assert seed["spec"] == original["spec"]
    assert seed["metadata"]["generation"] == original["metadata"]["generation"]


def test_operator_killed_mid_scale_out_ends_with_exactly_the_groups(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(deployment("decode", 1), namespace)
    spec = group_spec(replicas=1)
    kubectl.apply(rsg("pool", spec), namespace)
    operator.wait_for(
        lambda: group_ids(kubectl, "pool", namespace) == ["unit-01"], what="the seed group"
    )
    operator.stop()
    try:
        scale(kubectl, "pool", namespace, 6)
        # This operator dies (as by SIGKILL) before its 6th write: groups 02 and 03 are
        # complete, 04 has its prefill clone only.
        crashing = operator.start(f"--namespace={namespace}", env={"RSG_CRASH_AFTER_WRITES": "5"})
        assert crashing.wait(timeout=60) == 137
        operator.process = None
        half = deployments(kubectl, namespace)
        assert "unit-04-prefill" in half and "unit-04-decode" not in half
    finally:
        operator.start()
    ids = [f"unit-{i:02d}" for i in range(1, 7)]
    expected = {"prefill", "decode"} | {f"{g}-{n}" for g in ids[1:] for n in ("prefill", "decode")}
    wait_groups(operator, kubectl, "pool", namespace, ids, expected)
    completed = kubectl.events(namespace, "reason=GroupCompleted")
    assert "unit-04" in completed


def test_a_deleted_clone_is_recreated(operator: Operator, kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(deployment("decode", 1), namespace)
    spec = group_spec(replicas=2)
    kubectl.apply(rsg("pool", spec), namespace)
    wait_groups(
        operator,
        kubectl,
        "pool",
        namespace,
        ["unit-01", "unit-02"],
        {"prefill", "decode", "unit-02-prefill", "unit-02-decode"},
    )
    first = kubectl.get("deployment", "unit-02-decode", namespace)
    assert first is not None
    kubectl.run("delete", "deployment/unit-02-decode", "-n", namespace)
    operator.wait_recreated(kubectl, "deployment", "unit-02-decode", namespace, first)
    completed = kubectl.events(namespace, "reason=GroupCompleted")
    assert "completed unit-02: created Deployment decode" in completed


def mark_pods_ready(kubectl: Kubectl, namespace: str, selector: str = "") -> int:
    """Stand in for a kubelet: report the selected pods Running and Ready."""
    pods = kubectl.run("get", "pods", "-n", namespace, "-l", selector, "-o", "name").stdout.split()
    for pod in pods:  # a pod may be gone by now (rolling update): no check
        kubectl.run(
            "patch",
            pod,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}',
            check=False,
        )
    return len(pods)


def test_groups_turn_ready_when_their_pods_are_ready(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("prefill", 2), namespace)
    kubectl.apply(rsg("pool", group_spec(PREFILL, replicas=2)), namespace)
    wait_groups(
        operator, kubectl, "pool", namespace, ["unit-01", "unit-02"], {"prefill", "unit-02-prefill"}
    )
    assert [g["phase"] for g in status(kubectl, "pool", namespace)["groups"]] == [
        "Creating",
        "Creating",
    ]
    assert kubectl.condition("pool", namespace, "Progressing")["status"] == "True"
    operator.wait_for(lambda: mark_pods_ready(kubectl, namespace) == 4, what="four pods")

    operator.wait_for(
        lambda: status(kubectl, "pool", namespace).get("readyReplicas") == 2,
        what="both groups ready",
    )
    groups = status(kubectl, "pool", namespace)["groups"]
    assert [g["phase"] for g in groups] == ["Ready", "Ready"]
    assert groups[1]["members"] == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": "unit-02-prefill",
            "replicas": 2,
            "readyReplicas": 2,
            "podSelector": "app=prefill,resourcescalinggroup.com/group-id=unit-02,"
            "resourcescalinggroup.com/group-index=2,resourcescalinggroup.com/name=pool",
        }
    ]
    assert status(kubectl, "pool", namespace)["labelSelector"] == "app=prefill"
    assert kubectl.condition("pool", namespace, "Progressing")["status"] == "False"
    row = kubectl.run("get", "rsg", "pool", "-n", namespace, "--no-headers").stdout.split()
    assert row[1:5] == ["GroupReplication", "2", "2", "2"]


def image(kubectl: Kubectl, name: str, namespace: str) -> str:
    found = kubectl.get("deployment", name, namespace) or {}
    return str(found["spec"]["template"]["spec"]["containers"][0]["image"])


def wait_held_back_by(operator: Operator, kubectl: Kubectl, namespace: str, group: str) -> None:
    """Wait until Progressing says the template rollout waits for `group`."""
    operator.wait_for(
        lambda: (
            f"wait until {group}"
            in kubectl.condition("pool", namespace, "Progressing").get("message", "")
        ),
        what=f"the rollout held back by {group}",
    )


def test_a_seed_template_change_rolls_through_groups_one_at_a_time(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(rsg("pool", group_spec(PREFILL, replicas=3)), namespace)
    operator.wait_for(
        lambda: (
            mark_pods_ready(kubectl, namespace) >= 0
            and status(kubectl, "pool", namespace).get("readyReplicas") == 3
        ),
        what="three ready groups",
    )
    kubectl.run(
        "set", "image", "deployment/prefill", "prefill=registry.invalid/x:2", "-n", namespace
    )
    # The seed's new pods are not ready: no clone may change yet.
    wait_held_back_by(operator, kubectl, namespace, "unit-01")
    assert image(kubectl, "unit-02-prefill", namespace) == "registry.invalid/x:1"
    assert image(kubectl, "unit-03-prefill", namespace) == "registry.invalid/x:1"

    # The seed's new pod turns ready: the first clone group follows, and only that one.
    seed_pods = f"app=prefill,!{GROUP_ID}"
    operator.wait_for(
        lambda: (
            mark_pods_ready(kubectl, namespace, seed_pods) >= 0
            and image(kubectl, "unit-02-prefill", namespace) == "registry.invalid/x:2"
        ),
        what="unit-02 updated",
    )
    wait_held_back_by(operator, kubectl, namespace, "unit-02")
    assert image(kubectl, "unit-03-prefill", namespace) == "registry.invalid/x:1"

    operator.wait_for(
        lambda: (
            mark_pods_ready(kubectl, namespace) >= 0
            and image(kubectl, "unit-03-prefill", namespace) == "registry.invalid/x:2"
        ),
        what="unit-03 updated",
    )
    assert "updated unit-02" in kubectl.events(namespace, "reason=GroupUpdated")
    clone = kubectl.get("deployment", "unit-03-prefill", namespace)
    assert clone is not None
    assert clone["spec"]["selector"]["matchLabels"][GROUP_ID] == "unit-03"


def test_a_group_of_statefulset_and_headless_service_is_cloned_whole(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db-headless"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
    }
    kubectl.apply(service, namespace)
    database = statefulset("db", 1)
    database["spec"]["serviceName"] = "db-headless"
    kubectl.apply(database, namespace)
    spec = group_spec(
        target("db", "StatefulSet"),
        target("db-headless", "Service", "v1"),
        prefix="shard",
        replicas=2,
    )
    kubectl.apply(rsg("shards", spec), namespace)
    operator.wait_for(
        lambda: group_ids(kubectl, "shards", namespace) == ["shard-01", "shard-02"],
        what="two shards",
    )
    clone = kubectl.get("statefulset", "shard-02-db", namespace)
    headless = kubectl.get("service", "shard-02-db-headless", namespace)
    assert clone is not None and headless is not None
    assert clone["spec"]["serviceName"] == "shard-02-db-headless"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == {"app": "db", GROUP_ID: "shard-02"}


def report_roles_ready(kubectl: Kubectl, name: str, namespace: str, roles: dict[str, int]) -> None:
    """Stand in for RBG's controller: report every role's replicas ready."""
    report_roles(kubectl, name, namespace, roles)


def test_a_rolebasedgroup_group_is_ready_by_its_role_statuses(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    install_crd(kubectl, RBG_CRD)
    roles = {"prefill": 2, "decode": 3}
    kubectl.apply(rolebasedgroup("pool", roles, "v1alpha2"), namespace)
    rbg = {**target("pool", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha2")}
    kubectl.apply(rsg("units", group_spec(rbg, replicas=2)), namespace)
    operator.wait_for(lambda: kubectl.get(RBGS, "unit-02-pool", namespace), what="the clone")
    groups = status(kubectl, "units", namespace)["groups"]
    assert [(g["phase"], g["members"][0]["replicas"]) for g in groups] == [
        ("Creating", 5),
        ("Creating", 5),
    ]
    report_roles_ready(kubectl, "pool", namespace, roles)
    report_roles_ready(kubectl, "unit-02-pool", namespace, roles)
    operator.wait_for(
        lambda: status(kubectl, "units", namespace).get("readyReplicas") == 2,
        what="both RBG groups ready from roleStatuses",
    )
    member = status(kubectl, "units", namespace)["groups"][1]["members"][0]
    assert (member["replicas"], member["readyReplicas"]) == (5, 5)


def reconciled(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any] | None:
    """The RSG, once its current generation has been reconciled."""
    found = kubectl.get("rsg", name, namespace) or {}
    observed = (found.get("status") or {}).get("observedGeneration")
    return found if observed == found.get("metadata", {}).get("generation") else None


def test_moving_a_target_to_another_version_of_its_kind_keeps_every_clone(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """RoleBasedGroup is served as v1alpha1 and v1alpha2: the same objects. Moving the
    target from one to the other deletes nothing and rolls nothing (was: every clone a
    stray, deleted and made again, every group's pods restarted)."""
    install_crd(kubectl, RBG_CRD)
    kubectl.apply(rolebasedgroup("pool", {"prefill": 1, "decode": 2}, "v1alpha1"), namespace)
    old = target("pool", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha1")
    kubectl.apply(rsg("units", group_spec(old, replicas=3)), namespace)
    operator.wait_for(lambda: kubectl.get(RBGS, "unit-03-pool", namespace), what="the clones")
    before = {n: kubectl.get(RBGS, f"unit-0{n}-pool", namespace) for n in (2, 3)}

    new = target("pool", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha2")
    kubectl.apply(rsg("units", group_spec(new, replicas=3)), namespace)
    operator.wait_for(
        lambda: (
            (found := reconciled(kubectl, "units", namespace))
            and found["status"].get("cloneKinds")
            == [{"apiVersion": "workloads.x-k8s.io/v1alpha2", "kind": "RoleBasedGroup"}]
        ),
        what="the move reconciled",
    )
    for n, obj in before.items():
        after = kubectl.get(RBGS, f"unit-0{n}-pool", namespace)
        assert after is not None and obj is not None
        assert after["metadata"]["uid"] == obj["metadata"]["uid"]
        assert "deletionTimestamp" not in after["metadata"]
        assert after["metadata"]["generation"] == obj["metadata"]["generation"]
        assert after["metadata"]["annotations"] == obj["metadata"]["annotations"]
    assert group_ids(kubectl, "units", namespace) == ["unit-01", "unit-02", "unit-03"]
    assert not kubectl.events(namespace, "reason=StrayRemoved")
    assert not kubectl.events(namespace, "reason=GroupUpdated")


def leaderworkerset_crd() -> dict[str, Any]:
    """A LeaderWorkerSet CRD (cloneable), for a test that uninstalls it."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "leaderworkersets.leaderworkerset.x-k8s.io"},
        "spec": {
            "group": "leaderworkerset.x-k8s.io",
            "scope": "Namespaced",
            "names": {"kind": "LeaderWorkerSet", "plural": "leaderworkersets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def test_deleting_an_rsg_whose_seed_kind_is_gone_ends_and_says_so(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """The seed member's CRD is uninstalled first: the labels cannot be taken off a kind
    that is not served. The RSG goes all the same, with a Warning saying what was left
    (was: its finalizer failed forever with UnknownKind; RSG and namespace stayed
    Terminating)."""
    crd = leaderworkerset_crd()
    install_crd(kubectl, crd)
    try:
        lws = {
            "apiVersion": "leaderworkerset.x-k8s.io/v1",
            "kind": "LeaderWorkerSet",
            "metadata": {"name": "serve"},
            "spec": {"replicas": 1, "leaderWorkerTemplate": {"workerTemplate": {}}},
        }
        kubectl.apply(lws, namespace)
        seed = target("serve", "LeaderWorkerSet", "leaderworkerset.x-k8s.io/v1")
        kubectl.apply(rsg("units", group_spec(seed, replicas=1)), namespace)
        operator.wait_for(
            lambda: (
                "resourcescalinggroup.com/release"
                in (kubectl.get("rsg", "units", namespace) or {})["metadata"].get("finalizers", [])
            ),
            what="the finalizer",
        )
        operator.stop()  # it comes back to find the kind gone (nothing cached of it)
        kubectl.run("delete", "crd", crd["metadata"]["name"])
        kubectl.run("delete", "rsg", "units", "-n", namespace, "--wait=false")
    finally:
        kubectl.run("delete", "crd", crd["metadata"]["name"], "--ignore-not-found")
        operator.start()
    operator.wait_for(lambda: kubectl.get("rsg", "units", namespace) is None, what="the RSG gone")
    warning = kubectl.events(namespace, "type=Warning,reason=ReleaseIncomplete")
    assert "serve" in warning and "LeaderWorkerSet" in warning
