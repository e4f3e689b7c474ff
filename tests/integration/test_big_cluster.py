"""A cluster that holds more than RSG's objects: other apps' Deployments, each with the
tens of KB of `kubectl.kubernetes.io/last-applied-configuration` that `kubectl apply`
leaves. The operator watches Deployments cluster-wide; what it keeps of the others and
what their changes cost it are read from its metrics and its log."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rsg_operator.local_cluster import LocalControlPlane
from tests.integration.conftest import Kubectl
from tests.integration.test_operations import replica
from tests.integration.workloads import deployment, replicas
from tests.specs import follow, group_spec, rsg, target

FOREIGN = 200
APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def foreign_deployments(count: int, generation: int = 0) -> str:
    """`count` Deployments of another app, each annotated with 20 KB as kubectl apply
    would leave, as one List."""
    items = []
    for i in range(count):
        item = deployment(f"web-{i:04d}", 0)
        item["metadata"]["annotations"] = {
            APPLIED: json.dumps({"padding": "x" * 20_000, "generation": generation})
        }
        items.append(item)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def cached(single: Any, form: str) -> float:
    return float(single.metric("rsg_cached_objects", resource="deployments", form=form))


@pytest.mark.slow
def test_other_apps_objects_are_held_as_stubs_and_their_changes_wake_nothing(
    alone: None, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    other = f"{namespace}-other"
    kubectl.run("create", "namespace", other)
    single = replica(control_plane, namespace)  # every namespace: one Deployment watch
    try:
        kubectl.apply(deployment("router", 1), namespace)
        kubectl.apply(deployment("decode", 0), namespace)
        kubectl.apply(deployment("prefill", 1), namespace)
        single.wait_for(lambda: single.get("/readyz")[0] == 200, what="running")
        kubectl.apply(rsg("follow", follow("router", "decode")), namespace)
        kubectl.apply(rsg("pool", group_spec(target("prefill"), replicas=2)), namespace)
        single.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 2)
        single.wait_for(
            lambda: kubectl.get("deployment", "unit-02-prefill", namespace), what="the clone"
        )
        whole, stubs = cached(single, "whole"), cached(single, "stub")
        assert whole >= 4  # router, decode, prefill and its clone at least

        kubectl.run("create", "-n", other, "-f", "-", input=foreign_deployments(FOREIGN))
        single.wait_for(
            lambda: cached(single, "stub") >= stubs + FOREIGN,
            timeout=60,
            what="the other app's Deployments seen",
        )
        # Nothing of theirs is held whole (objects of earlier tests' namespaces may only
        # have gone meanwhile, never come).
        assert cached(single, "whole") <= whole

        # They change (a new apply each): nobody is woken, nothing is reconciled. The
        # router's change comes after theirs in the same watch: once it is reconciled,
        # theirs have all been through the operator.
        kubectl.run("apply", "-n", other, "-f", "-", input=foreign_deployments(FOREIGN, 1))
        kubectl.run("scale", "deployment/router", "--replicas=2", "-n", namespace)
        single.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 4)
        log = single.log_text()
        assert f"Deployment {namespace}/router changed: waking" in log
        assert f"Deployment {other}/" not in log
        assert cached(single, "whole") <= whole
    finally:
        single.stop()
        kubectl.run("delete", "namespace", other, "--wait=false", check=False)
