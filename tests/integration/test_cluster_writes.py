"""The write path against the real API server: answers become the errors callers act on."""

from __future__ import annotations

import asyncio

import pytest

from rsg_operator.cluster import Cluster
from rsg_operator.informers import Watches
from rsg_operator.kube import Conflict, Kube, load_configuration
from rsg_operator.local_cluster import LocalControlPlane
from tests.integration.conftest import Kubectl
from tests.integration.workloads import deployment


async def _patch(
    control_plane: LocalControlPlane, namespace: str, ops: list[dict[str, object]]
) -> object:
    kube = await Kube.connect(await load_configuration(control_plane.kubeconfig))
    try:
        cluster = Cluster(kube, Watches(kube, lambda keys: None, cluster_wide=False))
        ref = {"apiVersion": "apps/v1", "kind": "Deployment"}
        web = await cluster.fetch({**ref, "metadata": {"name": "web", "namespace": namespace}})
        assert web is not None
        return await cluster.json_patch(web, ops)
    finally:
        await kube.close()


def test_a_failed_json_patch_test_is_a_conflict_and_changes_nothing(
    control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """The reconcilers guard their patches with `test` ops; the API server answers a
    failed one with a bare 422. It must read as "changed since read" (retry at once after
    a re-read), not as an invalid request (a Warning and backoff)."""
    kubectl.apply(deployment("web", 2), namespace)
    guarded = [
        {"op": "test", "path": "/spec/replicas", "value": 3},  # it is 2: someone changed it
        {"op": "replace", "path": "/spec/replicas", "value": 4},
    ]
    with pytest.raises(Conflict) as error:
        asyncio.run(_patch(control_plane, namespace, guarded))
    assert "changed since it was read" in str(error.value)
    assert (kubectl.get("deployment", "web", namespace) or {})["spec"]["replicas"] == 2

    guarded[0]["value"] = 2
    asyncio.run(_patch(control_plane, namespace, guarded))
    assert (kubectl.get("deployment", "web", namespace) or {})["spec"]["replicas"] == 4
