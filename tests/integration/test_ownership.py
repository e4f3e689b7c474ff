"""Never touch what is not ours; every group change is whole, through crashes (SPEC §3)."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

import pytest
from kubernetes import client, watch
from urllib3.exceptions import ProtocolError

from tests.integration.conftest import Kubectl, Operator
from tests.integration.test_group_replication import deployments, group_ids, scale, status
from tests.integration.workloads import deployment, replicas, writes_by
from tests.specs import follow, group_spec, rsg, target

NAME_LABEL = "resourcescalinggroup.com/name"
GROUP_ID = "resourcescalinggroup.com/group-id"
SEED_REPLICAS = "resourcescalinggroup.com/seed-replicas"
WEB = target("web")


def fingerprint_of(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    """The Deployment's fingerprint, read with its managedFields (kubectl hides them)."""
    out = kubectl.run(
        "get", "deployment", name, "-n", namespace, "-o", "json", "--show-managed-fields"
    )
    return fingerprint(json.loads(out.stdout))


def fingerprint(obj: dict[str, Any]) -> dict[str, Any]:
    """What a write to the object would change. Not its resourceVersion, which the
    controller-manager's status updates move too (a race CI hit); a write to the object
    itself moves its generation or shows in its labels, annotations, owners or writers."""
    meta = obj["metadata"]
    return {
        "generation": meta["generation"],
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "ownerReferences": meta.get("ownerReferences"),
        "managers": sorted(  # status: only the controller-manager reports it
            (e["manager"], e.get("subresource", ""))
            for e in meta.get("managedFields", [])
            if e.get("subresource") != "status"
        ),
        "spec": obj["spec"],
    }


def test_an_object_with_a_clone_name_that_is_not_ours_is_never_touched(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("web", 1), namespace)
    kubectl.apply(rsg("pool", group_spec(WEB, replicas=1)), namespace)
    operator.wait_for(lambda: group_ids(kubectl, "pool", namespace) == ["unit-01"], what="seed")
    # Another app's Deployment holds the name group unit-02 would give its clone; it even
    # carries RSG's labels (copied from a clone), but no controller reference to the RSG.
    foreign = deployment("unit-02-web", 5)
    foreign["metadata"]["labels"] = {NAME_LABEL: "pool", GROUP_ID: "unit-02", "app": "other"}
    kubectl.apply(foreign, namespace)
    # Once the controller-manager has taken it in (its revision annotation), only a
    # write by someone else could change it.
    operator.wait_for(
        lambda: (
            "deployment.kubernetes.io/revision"
            in (
                (kubectl.get("deployment", "unit-02-web", namespace) or {})["metadata"].get(
                    "annotations"
                )
                or {}
            )
        ),
        what="the foreign Deployment rolled out",
    )
    before = fingerprint_of(kubectl, "unit-02-web", namespace)
    assert before["managers"], "managedFields must be read for the writers check to mean anything"

    scale(kubectl, "pool", namespace, 3)
    degraded = operator.wait_degraded(kubectl, "pool", namespace, "True", "NameConflict")
    assert f"Deployment {namespace}/unit-02-web exists and is not owned" in degraded["message"]
    operator.wait_for(
        lambda: group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-03"],
        what="unit-03 made, unit-02 waiting",
    )
    assert status(kubectl, "pool", namespace)["currentReplicas"] == 2
    assert fingerprint_of(kubectl, "unit-02-web", namespace) == before
    warnings = kubectl.events(namespace, "type=Warning,reason=NameConflict").splitlines()
    assert len(warnings) == 1, warnings

    kubectl.run("delete", "deployment/unit-02-web", "-n", namespace)
    operator.wait_for(
        lambda: group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-02", "unit-03"],
        what="unit-02 made once its name is free",
    )
    clone = kubectl.get("deployment", "unit-02-web", namespace)
    assert clone is not None
    assert clone["metadata"]["ownerReferences"][0]["name"] == "pool"
    operator.wait_degraded(kubectl, "pool", namespace, "False")


def seed_at_zero(kubectl: Kubectl, name: str, namespace: str) -> bool:
    found = kubectl.get("deployment", name, namespace) or {"metadata": {}, "spec": {}}
    recorded = SEED_REPLICAS in (found["metadata"].get("annotations") or {})
    return recorded and found["spec"].get("replicas") == 0


def untouched_by_rsg(kubectl: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    """What would differ if the operator wrote the Deployment: its spec, generation and
    metadata, and when and what rsg-operator last wrote (managedFields). Not its
    resourceVersion: the controller-manager's status writes move it at any time."""
    obj = kubectl.get("deployment", name, namespace)
    assert obj is not None
    return {**fingerprint(obj), "rsg-operator": writes_by(obj, "rsg-operator")}


def crash_after(operator: Operator, namespace: str, writes: int, to: str = "") -> None:
    """Run an operator (alone: the session's is stopped) that dies, as by SIGKILL, right
    before its write number `writes` + 1 (counting writes to resource `to` only, if
    given)."""
    crashing = operator.start(
        f"--namespace={namespace}",
        env={"RSG_CRASH_AFTER_WRITES": str(writes), "RSG_CRASH_WRITES_TO": to},
    )
    assert crashing.wait(timeout=60) == 137
    operator.process = None


def two_groups_seed_candidate(operator: Operator, kubectl: Kubectl, namespace: str) -> None:
    """prefill (2) and decode (3) in group unit-01 beside unit-02; unit-01 the candidate."""
    kubectl.apply(deployment("prefill", 2), namespace)
    kubectl.apply(deployment("decode", 3), namespace)
    kubectl.apply(rsg("pool", group_spec(replicas=2, candidates=["unit-01"])), namespace)
    operator.wait_for(
        lambda: group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-02"], what="2 groups"
    )


def test_a_crash_between_the_members_of_a_seed_removal_ends_with_it_removed(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    two_groups_seed_candidate(operator, kubectl, namespace)
    operator.stop()
    try:
        scale(kubectl, "pool", namespace, 1)
        # Write 1 records the removal (unit-01 Deleting), write 2 takes prefill to 0; the
        # operator dies before decode.
        crash_after(operator, namespace, 2)
        assert seed_at_zero(kubectl, "prefill", namespace)
        assert not seed_at_zero(kubectl, "decode", namespace)
        phases = {g["id"]: g["phase"] for g in status(kubectl, "pool", namespace)["groups"]}
        assert phases["unit-01"] == "Deleting"
    finally:
        operator.start()
    operator.wait_for(
        lambda: (
            group_ids(kubectl, "pool", namespace) == ["unit-02"]
            and seed_at_zero(kubectl, "decode", namespace)
        ),
        what="the seed removal finished",
    )
    decode = kubectl.get("deployment", "decode", namespace) or {}
    assert json.loads(decode["metadata"]["annotations"][SEED_REPLICAS]) == {"/spec/replicas": 3}
    assert "finished removing unit-01" in kubectl.events(namespace, "reason=GroupRemoved")


def test_a_half_removed_seed_scaled_back_up_is_rolled_back(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """A seed removal stopped between its members, and the user scaled back up while the
    operator was down: the member still running is left alone, the other restored."""
    two_groups_seed_candidate(operator, kubectl, namespace)
    operator.stop()
    try:
        scale(kubectl, "pool", namespace, 1)
        crash_after(operator, namespace, 2)  # the removal recorded, prefill at 0
        assert seed_at_zero(kubectl, "prefill", namespace)
        decode = untouched_by_rsg(kubectl, "decode", namespace)
        # Back to 2, and unit-01 no longer listed (a listed id is never brought back).
        kubectl.apply(rsg("pool", group_spec(replicas=2)), namespace)
    finally:
        operator.start()
    operator.wait_for(
        lambda: (
            group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-02"]
            and not seed_at_zero(kubectl, "prefill", namespace)
        ),
        what="the removal rolled back",
    )
    assert replicas(kubectl, "deployment", "prefill", namespace) == 2
    assert untouched_by_rsg(kubectl, "decode", namespace) == decode  # never taken down
    assert deployments(kubectl, namespace) == {
        "prefill",
        "decode",
        "unit-02-prefill",
        "unit-02-decode",
    }
    assert "rolled back the unfinished removal of unit-01" in kubectl.events(
        namespace, "reason=GroupCreated"
    )


def test_a_half_restored_seed_named_for_removal_is_not_restored_first(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """A restore stopped half-way, then the gateway names the seed group for removal:
    the member still at 0 stays there (restoring it only to take it down again would
    start and kill its pods), the restored one goes back to 0."""
    kubectl.apply(deployment("prefill", 2), namespace)
    kubectl.apply(deployment("decode", 3), namespace)
    kubectl.apply(rsg("pool", group_spec(replicas=1, candidates=["unit-01"])), namespace)
    scale(kubectl, "pool", namespace, 2)
    operator.wait_for(lambda: group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-02"])
    scale(kubectl, "pool", namespace, 1)
    operator.wait_for(
        lambda: (
            group_ids(kubectl, "pool", namespace) == ["unit-02"]
            and seed_at_zero(kubectl, "decode", namespace)
        ),
        what="the seed group removed",
    )
    operator.stop()
    try:
        kubectl.apply(rsg("pool", group_spec(replicas=2)), namespace)  # unit-01 unlisted
        # Write 1 to a Deployment restores prefill; it dies before decode's. (Counting
        # every write, a status write of the RSG, when the session's operator was stopped
        # before its last status, came first: CI failed on it.)
        crash_after(operator, namespace, 1, to="deployments")
        assert not seed_at_zero(kubectl, "prefill", namespace)
        assert seed_at_zero(kubectl, "decode", namespace)
        decode = untouched_by_rsg(kubectl, "decode", namespace)
        # The gateway names unit-01 again.
        kubectl.apply(rsg("pool", group_spec(replicas=1, candidates=["unit-01"])), namespace)
    finally:
        operator.start()
    operator.wait_for(
        lambda: (
            group_ids(kubectl, "pool", namespace) == ["unit-02"]
            and seed_at_zero(kubectl, "prefill", namespace)
        ),
        what="the seed group removed again",
    )
    assert untouched_by_rsg(kubectl, "decode", namespace) == decode  # never restored


def test_a_crash_between_the_deletions_of_a_group_ends_with_it_removed(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(deployment("decode", 1), namespace)
    kubectl.apply(rsg("pool", group_spec(replicas=3)), namespace)
    clones = {f"unit-0{i}-{n}" for i in (2, 3) for n in ("prefill", "decode")}
    operator.wait_for(
        lambda: deployments(kubectl, namespace) == {"prefill", "decode"} | clones,
        what="3 groups",
    )
    operator.stop()
    try:
        scale(kubectl, "pool", namespace, 2)
        # Write 1 records unit-03's removal; the operator dies before deleting a member.
        crash_after(operator, namespace, 1)
        phases = {g["id"]: g["phase"] for g in status(kubectl, "pool", namespace)["groups"]}
        assert phases["unit-03"] == "Deleting"
        # As if its first delete had landed before it died: half of unit-03 is gone.
        kubectl.run("delete", "deployment/unit-03-prefill", "-n", namespace)
    finally:
        operator.start()
    operator.wait_for(
        lambda: (
            deployments(kubectl, namespace)
            == {"prefill", "decode", "unit-02-prefill", "unit-02-decode"}
        ),
        what="unit-03 removed whole, not completed",
    )
    assert group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-02"]
    assert "unit-03" not in kubectl.events(namespace, "reason=GroupCompleted")


def test_observed_generation_is_the_one_reconciled(
    operator: Operator, kubectl: Kubectl, namespace: str, k8s: client.ApiClient
) -> None:
    """A spec edit made while a reconcile runs is not claimed by that reconcile's status."""
    kubectl.apply(deployment("web", 0), namespace)
    kubectl.apply(rsg("pool", group_spec(WEB, replicas=1)), namespace)
    operator.wait_for(lambda: group_ids(kubectl, "pool", namespace) == ["unit-01"], what="seed")
    seen: list[tuple[int, int, int | None]] = []  # (generation, observed, currentReplicas)
    stream = watch.Watch()

    def follow() -> None:
        with contextlib.suppress(ProtocolError):  # the stream is stopped at the end
            for event in stream.stream(
                client.CustomObjectsApi(k8s).list_namespaced_custom_object,
                "resourcescalinggroup.com",
                "v1",
                namespace,
                "resourcescalinggroups",
                timeout_seconds=120,
            ):
                obj, found = event["object"], event["object"].get("status") or {}
                seen.append(
                    (
                        obj["metadata"]["generation"],
                        found.get("observedGeneration", 0),
                        found.get("currentReplicas"),
                    )
                )

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    generation = (kubectl.get("rsg", "pool", namespace) or {})["metadata"]["generation"]
    scale(kubectl, "pool", namespace, 150)  # a reconcile of ~150 creates: seconds long
    operator.wait_for(
        lambda: len(deployments(kubectl, namespace)) > 5, what="the scale-out under way"
    )
    scale(kubectl, "pool", namespace, 2)  # generation + 2, during that reconcile
    operator.wait_for(
        lambda: (
            status(kubectl, "pool", namespace).get("observedGeneration") == generation + 2
            and status(kubectl, "pool", namespace).get("currentReplicas") == 2
        ),
        timeout=120,
        what="the last edit reconciled",
    )
    stream.stop()
    # The reconcile of generation+1 ended after generation+2 existed, and said so.
    assert any(g == generation + 2 and o == generation + 1 for g, o, _ in seen), seen
    # No status ever claimed generation+2 with a count made for generation+1.
    claimed = [c for _, o, c in seen if o == generation + 2]
    assert claimed and all(c == 2 for c in claimed), seen


# Each RSG, if it acted on the shared Deployment `shared`, would leave a mark of its own:
# a GroupReplication RSG labels it with its name, an InplaceScaling one sets its replicas.
CLAIMS = {
    "group": lambda: group_spec(target("shared"), prefix="g"),
    "inplace": lambda: follow("router", "shared"),
}


@pytest.mark.parametrize(
    ("older", "younger", "reason"),
    [
        ("group", "group", "MemberConflict"),
        ("group", "inplace", "MemberConflict"),
        ("inplace", "group", "MemberConflict"),
        ("inplace", "inplace", "TargetConflict"),
    ],
)
def test_of_two_rsgs_claiming_one_deployment_the_older_keeps_it(
    operator: Operator, kubectl: Kubectl, namespace: str, older: str, younger: str, reason: str
) -> None:
    kubectl.apply(deployment("shared", 1), namespace)
    kubectl.apply(deployment("router", 3), namespace)
    kubectl.apply(rsg("first", CLAIMS[older]()), namespace)
    operator.wait_degraded(kubectl, "first", namespace, "False")
    mark = marks(kubectl, namespace)
    assert mark == ({"first"} if older == "group" else set(), 1 if older == "group" else 6)

    if younger == "inplace":  # a Source of its own, so that it would write another count
        kubectl.apply(deployment("router2", 4), namespace)
        kubectl.apply(rsg("second", follow("router2", "shared")), namespace)
    else:
        kubectl.apply(rsg("second", CLAIMS[younger]()), namespace)
    degraded = operator.wait_degraded(kubectl, "second", namespace, "True", reason)
    assert "RSG " + namespace + "/first" in degraded["message"]
    # A reconcile of the older one, woken by a change of the shared Deployment, keeps its
    # own mark and finds no one else's.
    kubectl.run("annotate", "deployment/shared", "-n", namespace, "touch=1")
    operator.wait_for(lambda: kubectl.condition("second", namespace, "Degraded"), what="status")
    assert marks(kubectl, namespace) == mark

    kubectl.run("delete", "rsg/first", "-n", namespace, "--timeout=60s")
    taken_over = ({"second"}, mark[1]) if younger == "group" else (set(), 8)
    operator.wait_for(
        lambda: marks(kubectl, namespace) == taken_over, what="the younger takes over"
    )
    operator.wait_degraded(kubectl, "second", namespace, "False")


def marks(kubectl: Kubectl, namespace: str) -> tuple[set[str], int]:
    """Which RSG labelled `shared`, and its replicas."""
    shared = kubectl.get("deployment", "shared", namespace) or {"metadata": {}, "spec": {}}
    labelled = (shared["metadata"].get("labels") or {}).get(NAME_LABEL)
    return ({labelled} if labelled else set()), shared["spec"].get("replicas")


def test_a_group_that_cannot_be_completed_stands_blocked_and_goes_first(
    operator: Operator, kubectl: Kubectl, namespace: str
) -> None:
    """unit-02 lost its decode clone while the operator was down, and another app's
    Deployment took the name: the group cannot be completed. It is listed Blocked with
    the foreign object named, counts toward replicas (its index is not reused), and is
    the first removed on scale-in; the foreign object is never touched."""
    kubectl.apply(deployment("prefill", 1), namespace)
    kubectl.apply(deployment("decode", 1), namespace)
    kubectl.apply(rsg("pool", group_spec(replicas=2)), namespace)
    operator.wait_for(lambda: group_ids(kubectl, "pool", namespace) == ["unit-01", "unit-02"])
    operator.stop()
    try:
        kubectl.run("delete", "deployment/unit-02-decode", "-n", namespace)
        kubectl.apply(deployment("unit-02-decode", 4), namespace)
    finally:
        operator.start()

    def phases() -> dict[str, str]:
        return {g["id"]: g["phase"] for g in status(kubectl, "pool", namespace).get("groups", [])}

    operator.wait_for(lambda: phases().get("unit-02") == "Blocked", what="unit-02 Blocked")
    degraded = operator.wait_degraded(kubectl, "pool", namespace, "True", "NameConflict")
    assert f"Deployment {namespace}/unit-02-decode exists and is not owned" in degraded["message"]
    assert "stands Blocked" in degraded["message"]
    assert status(kubectl, "pool", namespace)["currentReplicas"] == 1  # it serves nothing
    foreign = fingerprint_of(kubectl, "unit-02-decode", namespace)

    scale(kubectl, "pool", namespace, 3)  # counted: a new group gets index 3, not 2
    operator.wait_for(
        lambda: phases() == {"unit-01": "Creating", "unit-02": "Blocked", "unit-03": "Creating"},
        what="unit-03 made beside the blocked unit-02",
    )
    scale(kubectl, "pool", namespace, 2)  # the blocked group goes first, whatever the policy
    operator.wait_for(
        lambda: (
            list(phases()) == ["unit-01", "unit-03"]
            and "unit-02-prefill" not in deployments(kubectl, namespace)
        ),
        what="unit-02 removed",
    )
    assert "unit-03-prefill" in deployments(kubectl, namespace)
    assert fingerprint_of(kubectl, "unit-02-decode", namespace) == foreign
    operator.wait_degraded(kubectl, "pool", namespace, "False")
