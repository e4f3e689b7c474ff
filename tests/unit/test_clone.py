"""clone: a template object becomes group i's clone, with nothing the server set."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from rsg_operator import kinds
from rsg_operator.clone import Owner, clone, outdated, replica_counts, template_hash, updated

HASH = "resourcescalinggroup.com/template-hash"
TEMPLATE_HASH = "resourcescalinggroup.com/template-hash"
OWNER = Owner("resourcescalinggroup.com/v1", "ResourceScalingGroup", "pd", "uid-1")
GROUP = {
    "resourcescalinggroup.com/name": "pd",
    "resourcescalinggroup.com/group-id": "unit-03",
    "resourcescalinggroup.com/group-index": "3",
}


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "prefill",
            "namespace": "ai",
            "uid": "u",
            "resourceVersion": "9",
            "generation": 4,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"app": "prefill"},
            "annotations": {
                "deployment.kubernetes.io/revision": "2",
                "team": "ml",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
            },
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "prefill"}},
            "template": {
                "metadata": {"labels": {"app": "prefill"}},
                "spec": {"containers": [{"name": "c", "image": "vllm:1"}]},
            },
        },
        "status": {"replicas": 2},
    }


def test_deployment_clone_is_renamed_labelled_owned_and_clean() -> None:
    template = deployment()
    original = copy.deepcopy(template)
    obj = clone(template, OWNER, "unit", 3)
    assert template == original  # the template is not modified
    assert obj["metadata"] == {
        "name": "unit-03-prefill",
        "namespace": "ai",
        "labels": {"app": "prefill", **GROUP},
        "annotations": {"team": "ml", HASH: template_hash(obj)},
        "ownerReferences": [
            {
                "apiVersion": OWNER.api_version,
                "kind": OWNER.kind,
                "name": "pd",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    assert "status" not in obj
    assert obj["spec"]["selector"]["matchLabels"] == {"app": "prefill", **GROUP}
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app": "prefill", **GROUP}
    assert obj["spec"]["template"]["spec"] == template["spec"]["template"]["spec"]
    assert obj["spec"]["replicas"] == 2


def test_service_clone_selects_its_group_and_gets_new_addresses() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "router", "namespace": "ai"},
        "spec": {
            "selector": {"app": "router"},
            "clusterIP": "10.0.0.7",
            "clusterIPs": ["10.0.0.7"],
            "type": "NodePort",
            "ports": [{"port": 80, "nodePort": 30080}],
        },
    }
    obj = clone(service, OWNER, "unit", 3)
    assert obj["spec"]["selector"] == {
        "app": "router",
        "resourcescalinggroup.com/group-id": "unit-03",
    }
    assert "clusterIP" not in obj["spec"] and "clusterIPs" not in obj["spec"]
    assert obj["spec"]["ports"] == [{"port": 80}]


def test_headless_service_stays_headless() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}},
    }
    assert clone(service, OWNER, "unit", 2)["spec"]["clusterIP"] == "None"


def test_rolebasedgroup_clone_labels_every_role_template() -> None:
    rbg = {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "g"},
        "spec": {
            "roles": [
                {"name": "a", "replicas": 1, "template": {"spec": {}}},
                {"name": "b", "replicas": 2, "template": {"spec": {}}},
            ]
        },
    }
    obj = clone(rbg, OWNER, "unit", 3)
    assert [r["template"]["metadata"]["labels"] for r in obj["spec"]["roles"]] == [GROUP, GROUP]


def test_clone_of_a_seed_taken_to_zero_gets_the_recorded_replicas() -> None:
    seed = deployment()
    seed["spec"]["replicas"] = 0
    seed["metadata"]["annotations"]["resourcescalinggroup.com/seed-replicas"] = json.dumps(
        {"/spec/replicas": 2}
    )
    obj = clone(seed, OWNER, "unit", 2)
    assert obj["spec"]["replicas"] == 2
    assert "resourcescalinggroup.com/seed-replicas" not in obj["metadata"]["annotations"]


def test_replica_counts_by_pointer() -> None:
    rbg = {
        "apiVersion": "workloads.x-k8s.io/v1alpha1",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "g"},
        "spec": {"roles": [{"name": "a", "replicas": 3}, {"name": "b"}]},
    }
    assert replica_counts(rbg) == {"/spec/roles/0/replicas": 3, "/spec/roles/1/replicas": 1}
    assert replica_counts(deployment()) == {"/spec/replicas": 2}


def test_a_kind_outside_the_allowlist_has_no_layout() -> None:
    assert not kinds.is_cloneable("batch/v1", "Job")
    with pytest.raises(kinds.NotCloneable, match=r"cannot clone kind Job .* Deployment"):
        clone({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}, OWNER, "u", 2)


def test_the_template_hash_changes_with_the_seed_and_only_then() -> None:
    seed = deployment()
    first = clone(seed, OWNER, "unit", 2)
    seed["metadata"]["resourceVersion"] = "10"  # server bookkeeping: not a change
    seed["status"] = {"replicas": 5}
    assert not outdated(first, clone(seed, OWNER, "unit", 2))
    seed["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm:2"
    assert outdated(first, clone(seed, OWNER, "unit", 2))
    seed = deployment()
    seed["spec"]["replicas"] = 3
    assert outdated(first, clone(seed, OWNER, "unit", 2))


def rbg(version: str) -> dict[str, Any]:
    return {
        "apiVersion": f"workloads.x-k8s.io/{version}",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "g"},
        "spec": {"roles": [{"name": "a", "replicas": 1, "template": {"spec": {}}}]},
    }


def test_the_template_hash_is_the_same_through_every_version_of_a_kind() -> None:
    made = clone(rbg("v1alpha1"), OWNER, "unit", 2)
    assert not outdated(made, clone(rbg("v1alpha2"), OWNER, "unit", 2))
    changed = rbg("v1alpha2")
    changed["spec"]["roles"][0]["replicas"] = 2
    assert outdated(made, clone(changed, OWNER, "unit", 2), ["workloads.x-k8s.io/v1alpha1"])


def legacy_digest(made: dict[str, Any]) -> str:
    """The digest as releases before the version-free one wrote it: over the clone as
    made, with its apiVersion, before its annotations held the digest (so without an
    `annotations` key when the seed had none left)."""
    content = copy.deepcopy(made)
    annotations = content["metadata"]["annotations"]
    annotations.pop(TEMPLATE_HASH)
    if not annotations:
        del content["metadata"]["annotations"]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "annotations",
    [
        None,  # kubectl create
        {"deployment.kubernetes.io/revision": "3"},  # dropped from clones
        {"kubectl.kubernetes.io/last-applied-configuration": "{}"},  # dropped from clones
        {"team": "ml"},  # kept
    ],
    ids=["none", "revision-only", "last-applied-only", "user-annotation"],
)
def test_a_clone_made_by_the_previous_release_is_current(
    annotations: dict[str, str] | None,
) -> None:
    """An upgrade of the operator rolls no group (found by review: a seed whose every
    annotation is dropped from its clones made every old clone look outdated)."""
    seed = deployment()
    seed["metadata"].pop("annotations", None)
    if annotations is not None:
        seed["metadata"]["annotations"] = annotations
    old = clone(seed, OWNER, "unit", 2)
    old["metadata"]["annotations"][TEMPLATE_HASH] = legacy_digest(old)
    assert not outdated(old, clone(seed, OWNER, "unit", 2), ["apps/v1"])
    assert template_hash(old, "apps/v1") == legacy_digest(old)


def test_a_digest_made_with_its_version_in_it_is_still_current() -> None:
    """Clones made before digests left the version out: no rollout on an upgrade of the
    operator, nor when their target moves to another served version."""
    old = clone(rbg("v1alpha1"), OWNER, "unit", 2)
    old["metadata"]["annotations"][TEMPLATE_HASH] = legacy_digest(old)
    assert not outdated(old, clone(rbg("v1alpha1"), OWNER, "unit", 2))
    moved = clone(rbg("v1alpha2"), OWNER, "unit", 2)
    assert outdated(old, moved)  # without the versions served, it cannot tell...
    served = ["workloads.x-k8s.io/v1alpha1", "workloads.x-k8s.io/v1alpha2"]
    assert not outdated(old, moved, served)  # ...with them, it can


def test_a_draining_seed_lends_its_clones_none_of_its_drain() -> None:
    """The seed group's drain is its own: clones made meanwhile do not start draining,
    and existing clones are not seen as outdated (no rollout)."""
    seed = deployment()
    before = clone(seed, OWNER, "unit", 2)
    seed["metadata"]["labels"]["resourcescalinggroup.com/draining"] = "true"
    seed["metadata"]["annotations"] |= {
        "resourcescalinggroup.com/drain-started": "2026-11-28T10:00:00.000Z",
        "resourcescalinggroup.com/drained": "true",
    }
    during = clone(seed, OWNER, "unit", 2)
    assert during == before
    assert not outdated(before, during)


def test_an_update_keeps_what_the_server_allocated() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "router"},
        "spec": {
            "selector": {"app": "r"},
            "type": "NodePort",
            "ports": [{"name": "http", "port": 80}],
        },
    }
    wanted = clone(service, OWNER, "unit", 2)
    current = copy.deepcopy(wanted)
    current["metadata"]["resourceVersion"] = "42"
    current["spec"].update(clusterIP="10.0.0.9", clusterIPs=["10.0.0.9"])
    current["spec"]["ports"][0]["nodePort"] = 30080
    replacement = updated(current, wanted)
    assert replacement["metadata"]["resourceVersion"] == "42"
    assert replacement["spec"]["clusterIP"] == "10.0.0.9"
    assert replacement["spec"]["ports"] == [{"name": "http", "port": 80, "nodePort": 30080}]


def test_statefulset_clone_uses_its_groups_service() -> None:
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db-headless",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {}},
        },
    }
    assert clone(sts, OWNER, "unit", 3, {"db", "db-headless"})["spec"]["serviceName"] == (
        "unit-03-db-headless"
    )
    # A Service that is not part of the group is shared, as the seed shares it.
    assert clone(sts, OWNER, "unit", 3, {"db"})["spec"]["serviceName"] == "db-headless"
