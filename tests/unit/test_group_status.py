"""When a group member counts as rolled out and ready (gates the template rollout)."""

from __future__ import annotations

from typing import Any

import pytest

from rsg_operator.members import entry, member_ready


def deployment(generation: int, **status: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "generation": generation},
        "spec": {"replicas": 1},
        "status": status,
    }


@pytest.mark.parametrize(
    "obj, ready",
    [
        (deployment(1, observedGeneration=1, replicas=1, updatedReplicas=1, readyReplicas=1), True),
        # The controller has not seen the new template yet.
        (
            deployment(2, observedGeneration=1, replicas=1, updatedReplicas=1, readyReplicas=1),
            False,
        ),
        # New template seen, no new pod yet: updatedReplicas 0 is omitted from status.
        (deployment(2, observedGeneration=2, replicas=1, readyReplicas=1), False),
        # A new pod exists, the old one is still there (and still the ready one).
        (
            deployment(2, observedGeneration=2, replicas=2, updatedReplicas=1, readyReplicas=1),
            False,
        ),
        (deployment(2, observedGeneration=2, replicas=1, updatedReplicas=1), False),
    ],
    ids=["settled", "unobserved", "no-new-pod", "old-pod-left", "not-ready"],
)
def test_member_is_ready_only_when_its_rollout_is_complete(
    obj: dict[str, Any], ready: bool
) -> None:
    assert member_ready(obj) is ready


def test_a_service_is_ready_at_once() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    assert member_ready(service)


def rbg(generation: int, roles: dict[str, int], statuses: dict[str, tuple[int, int]]) -> Any:
    """A RoleBasedGroup: roles -> replicas; statuses: role -> (ready, updated)."""
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha2",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "pool", "generation": generation},
        "spec": {"roles": [{"name": n, "replicas": r} for n, r in roles.items()]},
        "status": {
            "observedGeneration": 1,
            "roleStatuses": [
                {"name": n, "readyReplicas": ready, "updatedReplicas": updated}
                for n, (ready, updated) in statuses.items()
            ],
        },
    }


def test_a_rolebasedgroup_is_ready_when_every_role_is() -> None:
    roles = {"prefill": 2, "decode": 3}
    assert member_ready(rbg(1, roles, {"prefill": (2, 2), "decode": (3, 3)}))
    # One role short, though the sum of ready replicas would cover the other's excess.
    assert not member_ready(rbg(1, roles, {"prefill": (4, 4), "decode": (2, 3)}))
    assert not member_ready(rbg(1, roles, {"prefill": (2, 2)}))  # a role not reported yet
    assert not member_ready(rbg(1, roles, {"prefill": (2, 1), "decode": (3, 3)}))  # rolling
    assert not member_ready(rbg(2, roles, {"prefill": (2, 2), "decode": (3, 3)}))  # unobserved


def test_a_rolebasedgroup_reports_its_roles_summed() -> None:
    found = entry(rbg(1, {"prefill": 2, "decode": 3}, {"prefill": (5, 5), "decode": (1, 1)}))
    assert (found["replicas"], found["readyReplicas"]) == (5, 3)
    defaulted = rbg(1, {"prefill": 1}, {})
    del defaulted["spec"]["roles"][0]["replicas"]  # RBG defaults a role to 1 replica
    assert entry(defaulted)["replicas"] == 1
