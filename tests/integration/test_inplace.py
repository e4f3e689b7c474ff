"""InplaceScaling on the real control plane: Targets follow their Source (SPEC §4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Kubectl, Operator
from tests.integration.workloads import (
    RBG_CRD,
    RBGS,
    WIDGET_CRD,
    deployment,
    install_crd,
    kopf_annotations,
    replicas,
    role_replicas,
    rolebasedgroup,
    scalable_crd,
    statefulset,
    widget,
    writers,
)
from tests.specs import rsg, target

EXAMPLES = Path(__file__).parents[2] / "examples"


def inplace(targets: list[dict[str, Any]], source: str, **ratios: Any) -> dict[str, Any]:
    bindings = [{"name": source, "role": "Source"}]
    bindings += [{"name": n, "role": "Target", "ratio": r} for n, r in ratios.items()]
    return {
        "targetResources": targets,
        "scalingStrategy": {"type": "InplaceScaling", "inplaceConfig": {"bindings": bindings}},
    }


def wait_replicas(
    operator: Operator, kubectl: Kubectl, kind: str, name: str, namespace: str, expected: int
) -> None:
    operator.wait_for(
        lambda: replicas(kubectl, kind, name, namespace) == expected,
        what=f"{kind} {name} at {expected} replicas",
    )


def assert_untouched_by_kopf(kubectl: Kubectl, kind: str, names: list[str], ns: str) -> None:
    for name in names:
        found = kubectl.get(kind, name, ns)
        assert found is not None
        assert kopf_annotations(found) == [], f"{kind} {name} got kopf annotations"
        assert not (found["metadata"].get("finalizers") or [])


@pytest.mark.parametrize(
    ("created_as", "named_as"),
    [("v1alpha1", "v1alpha1"), ("v1alpha1", "v1alpha2"), ("v1alpha2", "v1alpha2")],
    ids=["rbg-v1alpha1", "rsg-names-v1alpha2", "rbg-v1alpha2"],
)
def test_seed_example_drives_the_roles_of_a_real_rolebasedgroup(
    operator: Operator, kubectl: Kubectl, ai: str, created_as: str, named_as: str
) -> None:
    """The seed's `Decode` finds RBG's lowercase role `decode` (SPEC §4), with RBG's real
    CRD, whichever served version created the RBG or names it in the RSG (but see the
    next test)."""
    install_crd(kubectl, RBG_CRD)
    example = (EXAMPLES / "inplace-scaling.yaml").read_text()
    if named_as != "v1alpha1":  # otherwise the user's manifest, verbatim
        example = example.replace("workloads.x-k8s.io/v1alpha1", f"workloads.x-k8s.io/{named_as}")
    kubectl.apply(deployment("router", 3), ai)
    kubectl.apply(rolebasedgroup("rolebasedgroup1", {"prefill": 1, "decode": 1}, created_as), ai)
    kubectl.run("apply", "-n", ai, "-f", "-", input=example)
    try:
        operator.wait_for(
            lambda: role_replicas(kubectl, "rolebasedgroup1", ai) == {"prefill": 3, "decode": 6},
            what="roles prefill=3 decode=6",
        )
        kubectl.run("scale", "deployment/router", "--replicas=5", "-n", ai)
        operator.wait_for(
            lambda: role_replicas(kubectl, "rolebasedgroup1", ai) == {"prefill": 5, "decode": 10},
            what="roles prefill=5 decode=10",
        )
        status = (kubectl.get("rsg", "pd-pool", ai) or {})["status"]
        assert status["currentReplicas"] == 5
        # No RBG controller runs here: the roles report nothing, and status claims nothing.
        assert [(b["name"], b["desired"], b.get("current")) for b in status["bindings"]] == [
            ("router", 5, 5),
            ("prefill", 5, None),
            ("decode", 10, None),
        ]
        assert kubectl.condition("pd-pool", ai, "Ready")["status"] == "True"
        assert_untouched_by_kopf(kubectl, "deployment", ["router"], ai)
        assert_untouched_by_kopf(kubectl, RBGS, ["rolebasedgroup1"], ai)
    finally:
        for kind, name in (("rsg", "pd-pool"), (RBGS, "rolebasedgroup1"), ("deployment", "router")):
            kubectl.run("delete", kind, name, "-n", ai, "--wait=true", check=False)


def test_a_write_the_rbg_schema_refuses_is_reported_not_retried_as_a_conflict(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """An RBG made through v1alpha2 (a standalone pattern, no `template`) cannot be written
    through v1alpha1, whose schema requires `template` (RBG's CRDs carry no conversion):
    the API server refuses the patch (422, naming the fields). That is a failure to report,
    not a conflict to retry quietly forever (found when the tests moved to RBG's real
    CRDs)."""
    install_crd(kubectl, RBG_CRD)
    kubectl.apply(deployment("router", 2), namespace)
    kubectl.apply(rolebasedgroup("pool", {"decode": 1}, "v1alpha2"), namespace)
    rbg = target("pool", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha1")
    rbg["subResources"] = [{"roleName": "decode"}]
    kubectl.apply(rsg("pd", inplace([target("router"), rbg], "router", decode=2)), namespace)
    degraded = operator.wait_degraded(kubectl, "pd", namespace, "True", "ReconcileFailing")
    assert "template or templateRef must be set" in degraded["message"]
    assert "422" in kubectl.events(namespace, "type=Warning,reason=ReconcileFailed")
    assert role_replicas(kubectl, "pool", namespace) == {"decode": 1}


def test_role_patch_keeps_a_concurrent_change_of_another_role(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    install_crd(kubectl, RBG_CRD)
    kubectl.apply(deployment("router", 2), namespace)
    kubectl.apply(rolebasedgroup("pool", {"prefill": 0, "other": 7}), namespace)
    spec = inplace(
        [
            target("router"),
            {
                **target("pool", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha1"),
                "subResources": [{"roleName": "prefill"}],
            },
        ],
        "router",
        prefill=1,
    )
    kubectl.apply(rsg("pool", spec), namespace)
    operator.wait_for(
        lambda: role_replicas(kubectl, "pool", namespace) == {"prefill": 2, "other": 7},
        what="prefill follows router",
    )
    kubectl.run(
        "patch",
        f"{RBGS}/pool",
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/roles/1/replicas","value":9}]',
    )
    kubectl.run("scale", "deployment/router", "--replicas=4", "-n", namespace)
    operator.wait_for(
        lambda: role_replicas(kubectl, "pool", namespace) == {"prefill": 4, "other": 9},
        what="prefill=4 with other=9 kept",
    )


def test_deployment_source_drives_deployment_and_statefulset_targets(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("router", 4), namespace)
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(statefulset("decode", 1), namespace)
    kubectl.apply(deployment("cache", 1), namespace)
    spec = inplace(
        [target("router"), target("prefill"), target("decode", "StatefulSet"), target("cache")],
        "router",
        prefill=1,
        decode="0.5",
        cache=2.5,
    )
    kubectl.apply(rsg("pool", spec), namespace)
    wait_replicas(operator, kubectl, "deployment", "prefill", namespace, 4)
    wait_replicas(operator, kubectl, "statefulset", "decode", namespace, 2)
    wait_replicas(operator, kubectl, "deployment", "cache", namespace, 10)

    kubectl.run("scale", "deployment/router", "--replicas=3", "-n", namespace)
    wait_replicas(operator, kubectl, "deployment", "prefill", namespace, 3)
    wait_replicas(operator, kubectl, "statefulset", "decode", namespace, 2)  # ceil(1.5)
    wait_replicas(operator, kubectl, "deployment", "cache", namespace, 8)  # ceil(7.5)

    # Drift: a direct change of a Target is set back.
    kubectl.run("scale", "statefulset/decode", "--replicas=7", "-n", namespace)
    wait_replicas(operator, kubectl, "statefulset", "decode", namespace, 2)

    scaled = kubectl.events(namespace, "reason=Scaled")
    assert "decode (StatefulSet" in scaled and "7 -> 2" in scaled
    assert_untouched_by_kopf(kubectl, "deployment", ["router", "prefill", "cache"], namespace)
    assert_untouched_by_kopf(kubectl, "statefulset", ["decode"], namespace)


def test_scalable_custom_kind_is_a_target(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    install_crd(kubectl, WIDGET_CRD)
    kubectl.apply(deployment("router", 3), namespace)
    kubectl.apply(widget("lws", 1), namespace)
    spec = inplace([target("router"), target("lws", "Widget", "test.rsg.io/v1")], "router", lws=2)
    kubectl.apply(rsg("pool", spec), namespace)
    wait_replicas(operator, kubectl, "widgets.test.rsg.io", "lws", namespace, 6)


def test_deleting_the_rsg_retains_every_target_at_its_scale(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("router", 2), namespace)
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(
        rsg("pool", inplace([target("router"), target("prefill")], "router", prefill=3)), namespace
    )
    wait_replicas(operator, kubectl, "deployment", "prefill", namespace, 6)
    kubectl.run("delete", "rsg/pool", "-n", namespace, "--timeout=30s")

    prefill = kubectl.get("deployment", "prefill", namespace)
    assert prefill is not None and prefill["spec"]["replicas"] == 6
    kubectl.run("scale", "deployment/router", "--replicas=5", "-n", namespace)
    # No RSG drives it any more: it keeps 6. Waiting for the ReplicaSet of router to follow
    # gives the (deleted) operator side every chance to act wrongly first.
    operator.wait_for(
        lambda: (
            (kubectl.get("deployment", "router", namespace) or {}).get("status", {}).get("replicas")
            == 5
        ),
        what="router's ReplicaSet at 5",
    )
    assert replicas(kubectl, "deployment", "prefill", namespace) == 6
    assert_untouched_by_kopf(kubectl, "deployment", ["router", "prefill"], namespace)


@pytest.mark.parametrize(
    "missing, reason, named",
    [
        ("router", "TargetNotFound", "Deployment {ns}/router"),
        ("prefill", "TargetNotFound", "Deployment {ns}/prefill"),
        ("kind", "UnknownKind", "Gadget"),
    ],
    ids=["missing-source", "missing-target", "unknown-kind"],
)
def test_broken_reference_degrades_and_writes_nothing(
    operator: Operator, kubectl: Kubectl, namespace: str, missing: str, reason: str, named: str
) -> None:
    present = [n for n in ("router", "prefill", "decode") if n != missing]
    for name in present:
        kubectl.apply(deployment(name, 2), namespace)
    targets = [target("router"), target("prefill"), target("decode")]
    if missing == "kind":
        targets[2] = target("decode", "Gadget", "example.com/v1")
    kubectl.apply(rsg("pool", inplace(targets, "router", prefill=3, decode=1)), namespace)

    found = operator.wait_degraded(kubectl, "pool", namespace, "True", reason)
    assert named.format(ns=namespace) in found["message"]
    operator.wait_for(
        lambda: kubectl.events(namespace, f"type=Warning,reason={reason}"), what=f"a {reason} event"
    )
    for name in present:
        obj = kubectl.get("deployment", name, namespace)
        assert obj is not None and obj["spec"]["replicas"] == 2
        assert "rsg-operator" not in writers(obj)


def test_target_of_two_rsgs_stops_the_younger_one(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    for name in ("router", "gateway", "prefill"):
        kubectl.apply(deployment(name, 2), namespace)
    kubectl.apply(
        rsg("first", inplace([target("router"), target("prefill")], "router", prefill=1)), namespace
    )
    operator.wait_for(
        lambda: kubectl.condition("first", namespace, "Ready").get("status") == "True",
        what="first Ready",
    )
    kubectl.apply(
        rsg("second", inplace([target("gateway"), target("prefill")], "gateway", prefill=3)),
        namespace,
    )
    found = operator.wait_degraded(kubectl, "second", namespace, "True", "TargetConflict")
    assert f"{namespace}/first" in found["message"]
    kubectl.run("scale", "deployment/router", "--replicas=4", "-n", namespace)
    wait_replicas(operator, kubectl, "deployment", "prefill", namespace, 4)
    assert kubectl.condition("first", namespace, "Degraded").get("status") == "False"


def test_cycle_across_rsgs_degrades_and_writes_nothing(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("a", 2), namespace)
    kubectl.apply(deployment("b", 2), namespace)
    kubectl.apply(rsg("forward", inplace([target("a"), target("b")], "a", b=1)), namespace)
    kubectl.apply(rsg("back", inplace([target("b"), target("a")], "b", a=3)), namespace)
    # Whichever RSG the operator saw first may have scaled before the cycle closed; once
    # both exist, both stop, and neither scales any more.
    for name in ("forward", "back"):
        found = operator.wait_degraded(kubectl, name, namespace, "True", "SourceTargetCycle")
        assert "Deployment" in found["message"] and " -> " in found["message"]
    before = {n: replicas(kubectl, "deployment", n, namespace) for n in ("a", "b")}
    kubectl.run("scale", "deployment/a", "--replicas=5", "-n", namespace)
    operator.wait_for(
        lambda: (
            (kubectl.get("deployment", "a", namespace) or {}).get("status", {}).get("replicas") == 5
        ),
        what="a's ReplicaSet at 5",
    )
    assert replicas(kubectl, "deployment", "b", namespace) == before["b"]


# A Target write above 5 replicas fails every time: RSG cannot fix that.
CAPPED_CRD = scalable_crd("Capped", max_replicas=5)


def test_a_reconcile_that_keeps_failing_turns_degraded_and_recovers(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    install_crd(kubectl, CAPPED_CRD)
    kubectl.apply(deployment("router", 1), namespace)
    capped = {"apiVersion": "test.rsg.io/v1", "kind": "Capped", "metadata": {"name": "pool"}}
    kubectl.apply({**capped, "spec": {"replicas": 2}}, namespace)
    targets = [target("router"), target("pool", "Capped", "test.rsg.io/v1")]
    kubectl.apply(rsg("pool", inplace(targets, "router", pool=2)), namespace)
    operator.wait_for(
        lambda: (kubectl.get("rsg", "pool", namespace) or {}).get("status", {}).get("bindings"),
        what="bindings reported",
    )

    kubectl.run("scale", "deployment/router", "--replicas=3", "-n", namespace)  # pool: 6 > 5
    failing = operator.wait_degraded(kubectl, "pool", namespace, "True", "ReconcileFailing")
    assert "the last error: 422 Invalid" in failing["message"]
    assert "spec.replicas" in failing["message"]
    stored = (kubectl.get("rsg", "pool", namespace) or {})["status"]
    assert "bindings" not in stored  # not left standing as if they were current
    warned = kubectl.events(namespace, "type=Warning,reason=ReconcileFailed").splitlines()
    assert len(warned) == 1, warned  # one per failure streak

    kubectl.run("scale", "deployment/router", "--replicas=2", "-n", namespace)  # pool: 4
    operator.wait_degraded(kubectl, "pool", namespace, "False")
    assert replicas(kubectl, "cappeds.test.rsg.io", "pool", namespace) == 4


def test_a_write_of_one_rsg_wakes_the_next_in_a_chain(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """router -> prefill (pool-a), prefill -> decode (pool-b): pool-a's write of prefill
    wakes pool-b, every time, with no resync to fall back on (was: when the answer to
    the write reached the cache before its watch event, the event was dropped and
    pool-b woke only by chance)."""
    for name in ("router", "prefill", "decode"):
        kubectl.apply(deployment(name, 1), namespace)
    targets = [target("router"), target("prefill")]
    kubectl.apply(rsg("pool-a", inplace(targets, "router", prefill=2)), namespace)
    targets = [target("prefill"), target("decode")]
    kubectl.apply(rsg("pool-b", inplace(targets, "prefill", decode=3)), namespace)
    wait_replicas(operator, kubectl, "deployment", "decode", namespace, 6)
    for count in (2, 5, 3, 7):
        kubectl.run("scale", "deployment/router", f"--replicas={count}", "-n", namespace)
        wait_replicas(operator, kubectl, "deployment", "decode", namespace, count * 6)
