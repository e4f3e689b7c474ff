"""The test cluster is a real one: the controller-manager reconciles Deployments."""

from __future__ import annotations

from tests.integration.conftest import Kubectl, wait_for


def test_apiserver_reports_the_pinned_version(kubectl: Kubectl) -> None:
    version = kubectl.run("version", "-o", "json").stdout
    assert '"gitVersion": "v1.34.4"' in version


def test_deployment_gets_a_replicaset_from_the_controller_manager(
    kubectl: Kubectl, namespace: str
) -> None:
    kubectl.run(
        "create",
        "deployment",
        "web",
        "--image=registry.invalid/web:1",
        "--replicas=2",
        "-n",
        namespace,
    )
    replicasets = wait_for(
        lambda: kubectl.run(
            "get", "replicasets", "-n", namespace, "-l", "app=web", "-o", "name"
        ).stdout.split(),
        what="a ReplicaSet of Deployment web",
    )
    assert len(replicasets) == 1
    pods = wait_for(
        lambda: kubectl.run(
            "get", "pods", "-n", namespace, "-l", "app=web", "-o", "name"
        ).stdout.split(),
        what="pods of ReplicaSet web",
    )
    assert len(pods) == 2
