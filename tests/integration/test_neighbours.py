"""The real neighbours of an RSG: RoleBasedGroup's controller (played by the test, with
RBG's real CRDs: it writes what RBG's controller would) and other writers of the same
replicas (an HPA, a GitOps sync)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from rsg_operator.contest import MIN_INTERVAL
from rsg_operator.local_cluster import LocalControlPlane
from tests.integration.conftest import Kubectl, Operator
from tests.integration.test_failures import audited_writes
from tests.integration.workloads import (
    ADAPTERS,
    RBG_ADAPTER_CRD,
    RBG_CRD,
    deployment,
    install_crd,
    replicas,
    report_roles,
    role_replicas,
    rolebasedgroup,
    scaling_adapter,
    writes_by,
)
from tests.specs import follow, rsg, target

RBG_V2 = "workloads.x-k8s.io/v1alpha2"


def roles_follow_router(**ratios: Any) -> dict[str, Any]:
    """pool's roles follow the Deployment router at these ratios."""
    rbg = target("pool", "RoleBasedGroup", RBG_V2)
    rbg["subResources"] = [{"roleName": role} for role in ratios]
    bindings = [{"name": "router", "role": "Source"}]
    bindings += [{"name": r, "role": "Target", "ratio": n} for r, n in ratios.items()]
    return {
        "targetResources": [target("router"), rbg],
        "scalingStrategy": {"type": "InplaceScaling", "inplaceConfig": {"bindings": bindings}},
    }


def adapter_replicas(kubectl: Kubectl, name: str, namespace: str) -> int | None:
    found = kubectl.get(ADAPTERS, name, namespace)
    return None if found is None else found["spec"].get("replicas")


def bindings(kubectl: Kubectl, name: str, namespace: str) -> dict[str, tuple[int, int, int | None]]:
    """name -> (desired, current, ready) of the RSG's status.bindings[]."""
    found = (kubectl.get("rsg", name, namespace) or {}).get("status") or {}
    return {
        b["name"]: (b["desired"], b["current"], b.get("ready")) for b in found.get("bindings") or []
    }


@pytest.fixture
def rbg_crds(kubectl: Kubectl) -> None:
    install_crd(kubectl, RBG_CRD)
    install_crd(kubectl, RBG_ADAPTER_CRD)


def test_a_role_with_rbgs_scaling_adapter_is_scaled_through_the_adapter(
    operator: Operator, kubectl: Kubectl, namespace: str, rbg_crds: None
) -> None:
    """RBG runs a role whose scaling adapter is enabled at the adapter's count, so that
    is what RSG writes, through the adapter's /scale (as the HPA would); the role's own
    replicas are left alone. An adapter going away or appearing is followed."""
    kubectl.apply(deployment("router", 2), namespace)
    roles = {"prefill": 1, "decode": 1}
    kubectl.apply(
        rolebasedgroup("pool", roles, "v1alpha2", adapters=("prefill", "decode")), namespace
    )
    for role in roles:  # what RBG's controller makes for such a role
        kubectl.apply(scaling_adapter("pool", role, 1), namespace)
    kubectl.apply(rsg("pd", roles_follow_router(prefill=1, decode=2)), namespace)
    operator.wait_for(
        lambda: (
            adapter_replicas(kubectl, "pool-prefill", namespace) == 2
            and adapter_replicas(kubectl, "pool-decode", namespace) == 4
        ),
        what="the adapters at 2 and 4",
    )
    assert role_replicas(kubectl, "pool", namespace) == roles  # untouched
    stored = kubectl.get("rolebasedgroups.workloads.x-k8s.io", "pool", namespace)
    assert stored is not None and not writes_by(stored, "rsg-operator")

    # RBG runs the adapters' counts: the status says so, from the roles' status.
    report_roles(
        kubectl, "pool", namespace, {"prefill": 2, "decode": 4}, {"prefill": 2, "decode": 3}
    )
    operator.wait_for(
        lambda: (
            {k: v for k, v in bindings(kubectl, "pd", namespace).items() if k != "router"}
            == {"prefill": (2, 2, 2), "decode": (4, 4, 3)}
        ),
        what="bindings from what runs",
    )
    assert kubectl.condition("pd", namespace, "Ready")["reason"] == "InSync"

    # The decode adapter goes away (the role's adapter disabled): its own replicas again.
    kubectl.run("delete", ADAPTERS, "pool-decode", "-n", namespace)
    kubectl.run("scale", "deployment/router", "--replicas=3", "-n", namespace)
    operator.wait_for(
        lambda: (
            role_replicas(kubectl, "pool", namespace)["decode"] == 6
            and adapter_replicas(kubectl, "pool-prefill", namespace) == 3
        ),
        what="decode through its role, prefill through its adapter",
    )
    # It appears again: followed, without a change of router.
    kubectl.apply(scaling_adapter("pool", "decode", 1), namespace)
    operator.wait_for(
        lambda: adapter_replicas(kubectl, "pool-decode", namespace) == 6,
        what="the new adapter set to 6",
    )


def test_a_count_rbg_does_not_run_is_reported_naming_who_holds_it(
    operator: Operator, kubectl: Kubectl, namespace: str, rbg_crds: None
) -> None:
    """The role enables RBG's scaling adapter, which does not exist yet: RSG writes the
    role, but RBG keeps running 1 (it runs the adapter's count). Status says what runs,
    and Ready is False naming the adapter, with one Warning, not one per reconcile."""
    kubectl.apply(deployment("router", 2), namespace)
    kubectl.apply(
        rolebasedgroup("pool", {"decode": 1}, "v1alpha2", adapters=("decode",)), namespace
    )
    kubectl.apply(rsg("pd", roles_follow_router(decode=2)), namespace)
    operator.wait_for(lambda: role_replicas(kubectl, "pool", namespace) == {"decode": 4})
    report_roles(kubectl, "pool", namespace, {"decode": 1})
    ready = operator.wait_for(
        lambda: (
            found
            if (found := kubectl.condition("pd", namespace, "Ready")).get("reason")
            == "ReplicasNotTakenUp"
            else None
        ),
        what="Ready False ReplicasNotTakenUp",
    )
    assert ready["status"] == "False"
    assert "RSG set 4 replicas, it runs 1" in ready["message"]
    assert "scaling adapter pool-decode" in ready["message"]
    assert kubectl.condition("pd", namespace, "Degraded")["status"] == "False"
    assert bindings(kubectl, "pd", namespace)["decode"] == (4, 1, 1)
    marker = f"[{namespace}/pd] reconciled:"
    seen = operator.log_text().count(marker)
    for n in range(2):  # more reconciles of the same world
        kubectl.run("annotate", "deployment/router", "-n", namespace, f"touch={n}", "--overwrite")
    operator.wait_for(
        lambda: operator.log_text().count(marker) >= seen + 2, what="two more reconciles"
    )
    events = kubectl.events(namespace, "type=Warning,reason=ReplicasNotTakenUp").splitlines()
    assert len(events) == 1, events

    report_roles(kubectl, "pool", namespace, {"decode": 4})  # it runs them now
    operator.wait_for(
        lambda: kubectl.condition("pd", namespace, "Ready").get("reason") == "InSync",
        what="Ready again",
    )


@pytest.mark.slow
def test_another_writer_that_keeps_setting_a_target_back_is_not_fought(
    operator: Operator, kubectl: Kubectl, namespace: str, control_plane: LocalControlPlane
) -> None:
    """A GitOps sync keeps decode at 1 while RSG wants 4: after two set-backs RSG writes
    decode at most once every 30 s, names the other writer (from managedFields), and says
    so once."""
    kubectl.apply(deployment("router", 2), namespace)
    kubectl.apply(deployment("decode", 1), namespace)
    kubectl.apply(rsg("pd", follow("router", "decode")), namespace)
    operator.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 4)

    stop, setbacks = threading.Event(), [0]

    def gitops() -> None:  # as a GitOps tool syncing decode to its manifest's 1
        while not stop.is_set():
            if replicas(kubectl, "deployment", "decode", namespace) != 1:
                kubectl.run(
                    "patch", "deployment/decode", "-n", namespace, "--subresource=scale",
                    "--type=merge", "-p", json.dumps({"spec": {"replicas": 1}}),
                    "--field-manager=gitops-sync",
                )  # fmt: skip
                setbacks[0] += 1
            time.sleep(0.2)  # a sync interval, not a wait for anything

    fighter = threading.Thread(target=gitops, daemon=True)
    fighter.start()
    try:
        ready = operator.wait_for(
            lambda: (
                found
                if (found := kubectl.condition("pd", namespace, "Ready")).get("reason")
                == "ReplicasContested"
                else None
            ),
            what="Ready False ReplicasContested",
        )
        contested = time.time()
        assert "set back by gitops-sync (Update, scale)" in ready["message"]
        # While the sync goes on, RSG's writes of decode are rationed.
        operator.wait_for(lambda: time.time() - contested > 2.5 * MIN_INTERVAL, timeout=120)
    finally:
        stop.set()
        fighter.join()
    ours = [
        w
        for w in audited_writes(control_plane)
        if w["namespace"] == namespace
        and w["name"] == "decode"
        and "rsg-operator" in w["agent"]
        and w["at"] > contested
    ]
    print(f"{setbacks[0]} set-backs; {len(ours)} writes by RSG in the rationed 75 s")
    assert len(ours) <= 3  # at most one every 30 s (+ one at the boundary)
    events = kubectl.events(namespace, "type=Warning,reason=ReplicasContested").splitlines()
    assert len(events) == 1, events
    assert kubectl.condition("pd", namespace, "Degraded")["status"] == "False"
