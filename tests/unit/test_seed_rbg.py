"""GroupReplication status says what runs (found by review): a seed group whose
member is a RoleBasedGroup, taken to 0 (its removal), while RBG still runs its pods."""

from __future__ import annotations

import json
from typing import Any

from rsg_operator import labels
from rsg_operator.reconcilers import group_replication


def seed_at_zero(running: int) -> dict[str, Any]:
    """RBG pool, removed with its group: RSG set decode to 0 and recorded 2. RBG still
    runs 2 pods of decode (terminating, or held by decode's scaling adapter, which RBG
    runs the role at whatever spec.roles[].replicas says)."""
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha2",
        "kind": "RoleBasedGroup",
        "metadata": {
            "name": "pool",
            "namespace": "ai",
            "generation": 3,
            "annotations": {labels.SEED_REPLICAS: json.dumps({"/spec/roles/0/replicas": 2})},
        },
        "spec": {"roles": [{"name": "decode", "replicas": 0, "scalingAdapter": {"enable": True}}]},
        "status": {
            "observedGeneration": 3,
            "roleStatuses": [{"name": "decode", "replicas": running, "readyReplicas": running}],
        },
    }


def test_a_removed_rbg_seed_whose_pods_still_run_is_still_reported() -> None:
    """A Deployment seed at 0 whose pods still run is listed Deleting (its status says
    replicas); an RBG seed reports them per role, which `_still_running` does not read:
    the seed group vanishes from status.groups[] while 2 of its pods run."""
    assert group_replication._still_running({"pool": seed_at_zero(running=2)}), (
        "the seed group is reported gone while RBG reports 2 decode pods running"
    )
