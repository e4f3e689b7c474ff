"""The test cluster is a real one: the controller-manager reconciles Deployments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rsg_operator.local_cluster import LocalControlPlane
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


def test_no_process_is_left_behind_when_its_owner_is_killed(
    control_plane: LocalControlPlane,
) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(control_plane.bin_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    pids = json.loads(owner.stdout.readline())
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    owner.kill()  # SIGKILL: no cleanup code of the owner runs
    owner.wait()
    wait_for(
        lambda: not any(alive(pid) for pid in pids.values()),
        timeout=30,
        what="control-plane processes to exit",
    )


OWNER_SCRIPT = """
import json, sys, time
from pathlib import Path
from rsg_operator.local_cluster import LocalControlPlane
plane = LocalControlPlane(bin_dir=Path(sys.argv[1]))
plane.start()
print(json.dumps(plane.pids), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
