"""Fixtures for tests against the real local control plane.

One control plane (etcd + kube-apiserver + kube-controller-manager, with kube-scheduler
and three kwok nodes; built by hack/build-control-plane.sh) serves the whole session;
each test gets its own namespace. Logs of the control plane and the operator are kept
when a test fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client, config

from rsg_operator.local_cluster import LocalControlPlane
from tests.harness import OperatorProcess
from tests.integration.proxy import TcpProxy

ROOT = Path(__file__).parents[2]
CRD_NAME = "resourcescalinggroups.resourcescalinggroup.com"
NODES = 3
T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.integration)


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition") -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@dataclass
class Kubectl:
    binary: Path
    kubeconfig: Path

    def run(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    def apply(
        self, manifest: dict[str, Any] | str, namespace: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self.run("apply", "-n", namespace, "-f", "-", input=text, check=check)

    def events(self, namespace: str, field_selector: str) -> str:
        """Messages of the namespace's events matching a field selector, one per line."""
        return self.run(
            "get",
            "events",
            "-n",
            namespace,
            "--field-selector",
            field_selector,
            "-o",
            "jsonpath={range .items[*]}{.message}{'\\n'}{end}",
        ).stdout

    def condition(self, name: str, namespace: str, type_: str) -> dict[str, Any]:
        """A condition of an RSG's status ({} when absent)."""
        found = self.get("rsg", name, namespace) or {}
        conditions = (found.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        """The object as stored, managedFields included (kubectl hides them by default;
        the tests read them to tell which writer changed what)."""
        result = self.run(
            "get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields", check=False
        )
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        found: dict[str, Any] = json.loads(result.stdout)
        return found


def control_plane_bin() -> Path:
    if os.environ.get("RSG_CONTROL_PLANE_BIN"):
        return Path(os.environ["RSG_CONTROL_PLANE_BIN"])
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "build-control-plane.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[LocalControlPlane]:
    # Three kwok nodes, tainted as GPU nodes: Pods that tolerate the taint run
    # (workloads.deployment(runs=True)); the others stay Pending, for the tests that
    # report pods ready by hand.
    # Every write is audited (control_plane.audit_log): which process wrote what, when.
    plane = LocalControlPlane(
        bin_dir=control_plane_bin(),
        nodes=NODES,
        gpu_taint=True,
        audit=True,
        audit_writes_only=True,
    )
    plane.start()
    yield plane
    failed = request.session.testsfailed > 0
    plane.stop(keep_logs=failed)
    if failed:
        sys.stderr.write(f"\ncontrol-plane and operator logs kept in {plane.work_dir}\n")


@pytest.fixture(scope="session")
def kubectl(control_plane: LocalControlPlane) -> Kubectl:
    return Kubectl(control_plane.kubectl, control_plane.kubeconfig)


@pytest.fixture(scope="session")
def k8s(control_plane: LocalControlPlane) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def crd(kubectl: Kubectl) -> str:
    kubectl.run("apply", "-f", str(ROOT / "crds"))
    kubectl.run("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=30s")
    return CRD_NAME


@pytest.fixture(scope="session")
def ai(kubectl: Kubectl, crd: str) -> str:
    """Namespace `ai`, where the seed examples' targets live."""
    kubectl.run("create", "namespace", "ai")
    return "ai"


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


@dataclass
class Operator(OperatorProcess):
    """The operator of the tests, with a resync so long (an hour) that every reaction a
    test waits for must come from a watch."""

    flags: tuple[str, ...] = ("--verbose", "--resync-seconds=3600")

    def wait_for(
        self, probe: Callable[[], T | None], timeout: float = 30.0, what: str = "condition"
    ) -> T:
        """wait_for, failing at once (with the log's tail) if the operator has exited."""

        def alive_probe() -> T | None:
            if self.process is not None and self.process.poll() is not None:
                tail = "\n".join(self.log_text().splitlines()[-30:])
                raise AssertionError(f"operator exited ({self.process.returncode}):\n{tail}")
            return probe()

        return wait_for(alive_probe, timeout, what)

    def wait_degraded(
        self, kubectl: Kubectl, name: str, namespace: str, status: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Wait until the RSG's Degraded condition has this status (and reason)."""

        def probe() -> dict[str, Any] | None:
            found = kubectl.condition(name, namespace, "Degraded")
            if found.get("status") == status and reason in (None, found.get("reason")):
                return found
            return None

        return self.wait_for(probe, what=f"Degraded={status} {reason or ''} on {name}")

    def wait_recreated(
        self, kubectl: Kubectl, kind: str, name: str, namespace: str, gone: dict[str, Any]
    ) -> dict[str, Any]:
        """Wait until `kind/name` exists again as a new object (not `gone`'s uid)."""

        def probe() -> dict[str, Any] | None:
            found = kubectl.get(kind, name, namespace)
            return found if found and found["metadata"]["uid"] != gone["metadata"]["uid"] else None

        return self.wait_for(probe, what=f"{kind} {name} recreated")


@pytest.fixture(scope="session")
def proxy(control_plane: LocalControlPlane) -> Iterator[TcpProxy]:
    """A TCP proxy in front of kube-apiserver, through which the operator connects."""
    running = TcpProxy(control_plane.api_port).start()
    yield running
    running.stop()


def kubeconfig_through(
    proxy: TcpProxy, control_plane: LocalControlPlane, name: str = "kubeconfig-proxied"
) -> Path:
    """The admin kubeconfig, pointed at the proxy (written to the work dir as `name`)."""
    assert control_plane.work_dir is not None
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = control_plane.work_dir / name
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def operator(control_plane: LocalControlPlane, crd: str, proxy: TcpProxy) -> Iterator[Operator]:
    """The operator of the whole session, connected through `proxy`."""
    assert control_plane.work_dir is not None
    running = Operator(
        kubeconfig_through(proxy, control_plane), control_plane.work_dir / "logs" / "operator.log"
    )
    running.start()
    yield running
    running.stop()


@pytest.fixture
def alone(operator: Operator) -> Iterator[None]:
    """The session's operator is stopped: the test's own processes are the only ones."""
    operator.stop()
    try:
        yield
    finally:
        operator.start()
