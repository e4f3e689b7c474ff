"""When a group member counts as rolled out and ready (gates the template rollout)."""

from __future__ import annotations

from typing import Any

import pytest

from rsg_operator.reconcilers.group_replication import _member_ready


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
    assert _member_ready(obj) is ready


def test_a_service_is_ready_at_once() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {}}
    assert _member_ready(service)
