"""The operator skeleton: status.observedGeneration and conditions, never a write to a target."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from tests.integration.conftest import Kubectl, Operator
from tests.integration.workloads import writers, writes_by
from tests.specs import group_spec, inplace_spec, rsg


def deployment(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    kubectl.run("create", "deployment", name, "--image=registry.invalid/x:1", "-n", namespace)
    found = kubectl.get("deployment", name, namespace)
    assert found is not None
    return found


def test_missing_target_degrades_naming_it_and_writes_no_target(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    prefill = deployment(kubectl, "prefill", namespace)
    kubectl.apply(rsg("units", group_spec()), namespace)

    degraded = operator.wait_degraded(kubectl, "units", namespace, "True", "TargetNotFound")
    assert f"Deployment {namespace}/decode" in degraded["message"]
    stored = kubectl.get("rsg", "units", namespace)
    assert stored is not None
    assert stored["status"]["observedGeneration"] == stored["metadata"]["generation"]
    ready = kubectl.condition("units", namespace, "Ready")
    assert ready is not None and ready["status"] == "False"
    operator.wait_for(
        lambda: kubectl.events(namespace, "type=Warning,reason=TargetNotFound"),
        what="a TargetNotFound Warning event",
    )

    after = kubectl.get("deployment", "prefill", namespace)
    assert after is not None
    assert after["metadata"]["generation"] == prefill["metadata"]["generation"]
    assert writers(after) <= {"kubectl-create", "kube-controller-manager"}
    assert not any("kopf" in key for key in after["metadata"].get("annotations", {}))


def test_target_created_later_clears_degraded(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    deployment(kubectl, "prefill", namespace)
    kubectl.apply(rsg("units", group_spec()), namespace)
    operator.wait_degraded(kubectl, "units", namespace, "True", "TargetNotFound")

    deployment(kubectl, "decode", namespace)
    healed = operator.wait_degraded(kubectl, "units", namespace, "False")
    assert healed["reason"] == "AsExpected"


def test_new_generation_is_observed(operator: Operator, kubectl: Kubectl, namespace: str) -> None:
    deployment(kubectl, "prefill", namespace)
    deployment(kubectl, "decode", namespace)
    kubectl.apply(rsg("units", group_spec()), namespace)
    operator.wait_degraded(kubectl, "units", namespace, "False")
    kubectl.run("scale", "rsg/units", "--replicas=2", "-n", namespace)

    def observed() -> bool:
        found = kubectl.get("rsg", "units", namespace) or {}
        return (found.get("status") or {}).get("observedGeneration") == 2

    operator.wait_for(observed, what="observedGeneration 2")


@pytest.mark.parametrize(
    "edit, reason, named",
    [
        (
            lambda s: s["targetResources"][0].update(kind="Widget", apiVersion="example.com/v1"),
            "UnknownKind",
            "Widget",
        ),
        (
            lambda s: s["targetResources"][0].update(namespace="elsewhere"),
            "CrossNamespaceTarget",
            "elsewhere",
        ),
        (
            lambda s: s["scalingStrategy"]["inplaceConfig"]["bindings"][1].update(ratio="two"),
            "InvalidSpec",
            "bindings[1].ratio",
        ),
    ],
    ids=["unknown-kind", "cross-namespace", "invalid-ratio"],
)
def test_runtime_problem_degrades_with_its_reason(
    operator: Operator, kubectl: Kubectl, namespace: str, edit: Any, reason: str, named: str
) -> None:
    spec = inplace_spec()
    edit(spec)
    kubectl.apply(rsg("pool", spec), namespace)
    degraded = operator.wait_degraded(kubectl, "pool", namespace, "True", reason)
    assert named in degraded["message"]


def test_group_replication_refuses_a_kind_it_cannot_clone(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    spec = group_spec()
    spec["targetResources"][1] = {"name": "decode", "apiVersion": "batch/v1", "kind": "Job"}
    kubectl.apply(rsg("units", spec), namespace)
    degraded = operator.wait_degraded(kubectl, "units", namespace, "True", "KindNotCloneable")
    assert "Job" in degraded["message"]


def rsg_writes(obj: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """When and what the operator last wrote on each part of the object."""
    assert obj is not None
    return writes_by(obj, "rsg-operator")


@pytest.mark.parametrize("strategy", ["degraded", "inplace", "group"])
def test_reconciles_of_an_unchanged_world_write_nothing(
    operator: Operator, kubectl: Kubectl, namespace: str, strategy: str
) -> None:
    deployment(kubectl, "prefill", namespace)
    if strategy == "inplace":
        deployment(kubectl, "decode", namespace)
        spec = inplace_spec()
        spec["targetResources"] = spec["targetResources"][:2]
        spec["targetResources"][0]["name"] = "decode"
        spec["scalingStrategy"]["inplaceConfig"]["bindings"] = [
            {"name": "decode", "role": "Source"},
            {"name": "prefill", "role": "Target", "ratio": 2},
        ]
    else:
        spec = group_spec()
        if strategy == "group":
            spec["targetResources"].pop()
            spec["scalingStrategy"]["groupConfig"]["replicas"] = 2
    kubectl.apply(rsg("units", spec), namespace)
    problems = 1 if strategy == "degraded" else 0
    marker = f"[{namespace}/units] reconciled: {problems} problem(s), status unchanged"
    others = {"inplace": ["decode"], "group": ["unit-02-prefill"]}.get(strategy, [])
    watched = ["prefill", *others]
    # A change of a seed's metadata is a template change (clones follow it), so for a
    # group the touched member is a clone, whose metadata RSG does not manage.
    touched = watched[-1]
    operator.wait_for(
        lambda: kubectl.get("deployment", touched, namespace), what=f"deployment {touched}"
    )

    def touch(value: str) -> None:
        kubectl.run(
            "annotate", f"deployment/{touched}", "-n", namespace, f"touch={value}", "--overwrite"
        )

    # Settled: a change of a member woke a reconcile that found nothing to write. (Until
    # the RSG has converged, a woken reconcile may still write; then touch again.)
    for attempt in range(10):
        seen = operator.log_text().count(marker)
        touch(f"settle-{attempt}")
        with contextlib.suppress(AssertionError):
            operator.wait_for(
                lambda seen=seen: operator.log_text().count(marker) > seen,
                timeout=5,
                what="a settled reconcile",
            )
            break
    else:
        raise AssertionError(f"no reconcile settled: {marker!r} never logged")
    before = {name: rsg_writes(kubectl.get("deployment", name, namespace)) for name in watched}
    rsg_before = kubectl.get("rsg", "units", namespace)
    assert rsg_before is not None

    for count in range(3):  # each change of a member wakes a reconcile through its watch
        seen = operator.log_text().count(marker)
        touch(str(count))
        operator.wait_for(
            lambda seen=seen: operator.log_text().count(marker) > seen,
            what=f"reconcile after touch {count}",
        )

    rsg_after = kubectl.get("rsg", "units", namespace)
    assert rsg_after is not None
    # Only the operator writes this RSG's status (and only kubectl its spec).
    assert rsg_writes(rsg_after) == rsg_writes(rsg_before)
    assert rsg_after["status"] == rsg_before["status"]
    for name in watched:
        assert rsg_writes(kubectl.get("deployment", name, namespace)) == before[name]
