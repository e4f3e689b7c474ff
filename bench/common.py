"""What the benchmarks share: a fresh control plane with the bench's namespace and
clients, the operator as a process, and the apiserver's audit log, which names each
request's client (so the operator's own requests are counted by the server)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from rsg_operator.local_cluster import LocalControlPlane

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))  # the manifests and the operator process the tests use
from tests.harness import OperatorProcess  # noqa: E402

NS = "bench"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
AUDIT_FLUSH_SECONDS = 2.0  # the audit log is written in batches, at least every second
# The operator's own requests, as the apiserver's audit log names their clients.
OPERATOR_AGENTS = ("rsg-operator/", "kopf/")


@dataclass
class World:
    """A fresh control plane with one namespace for the bench, and the bench's clients."""

    plane: LocalControlPlane
    namespace: str = NS
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.audit = Audit(self.plane.audit_log)
        self.api = config.new_client_from_config(config_file=str(self.plane.kubeconfig))
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)
        self.core.create_namespace({"metadata": {"name": self.namespace}})

    def create(self, manifests: list[dict[str, Any]], threads: int = 8) -> None:
        def one(manifest: dict[str, Any]) -> None:
            if manifest["kind"] == "Deployment":
                self.apps.create_namespaced_deployment(self.namespace, manifest)
            else:
                self.custom.create_namespaced_custom_object(
                    "resourcescalinggroup.com",
                    "v1",
                    self.namespace,
                    "resourcescalinggroups",
                    manifest,
                )

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, manifests))

    def rsgs(self) -> list[dict[str, Any]]:
        listing = self.custom.list_namespaced_custom_object(
            "resourcescalinggroup.com", "v1", self.namespace, "resourcescalinggroups"
        )
        return list(listing["items"])

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(
            name, self.namespace, {"spec": {"replicas": replicas}}
        )

    def scale_rsg(self, name: str, replicas: int) -> None:
        self.custom.patch_namespaced_custom_object_scale(
            "resourcescalinggroup.com",
            "v1",
            self.namespace,
            "resourcescalinggroups",
            name,
            {"spec": {"replicas": replicas}},
        )


def reconciled(obj: dict[str, Any], groups: int | None = None) -> bool:
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    return (
        status.get("observedGeneration") == obj["metadata"].get("generation")
        and ready.get("status") == "True"
        and (groups is None or status.get("currentReplicas") == groups)
    )


@dataclass
class Requests:
    """Requests the apiserver answered, from its audit log."""

    events: list[dict[str, Any]]

    def by_operator(self) -> Requests:
        return Requests(
            [e for e in self.events if e.get("userAgent", "").startswith(OPERATOR_AGENTS)]
        )

    def writes(self) -> Requests:
        return Requests([e for e in self.events if e.get("verb") in WRITE_VERBS])

    def about_workloads(self) -> Requests:
        """Not the control plane's heartbeats (leases, its own endpoints)."""
        beats = {"leases", "endpoints", "endpointslices"}
        return Requests(
            [e for e in self.events if (e.get("objectRef") or {}).get("resource") not in beats]
        )

    def throttled(self) -> Requests:
        return Requests(
            [e for e in self.events if (e.get("responseStatus") or {}).get("code") == 429]
        )

    def __len__(self) -> int:
        return len(self.events)


class Audit:
    """The apiserver's audit log, read from a mark onwards."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def since(self, mark: int) -> Requests:
        time.sleep(AUDIT_FLUSH_SECONDS)  # what was answered until now is on disk
        with self.path.open("rb") as log:
            log.seek(mark)
            return Requests([json.loads(line) for line in log if line.strip()])


class Operator(OperatorProcess):
    def reconciles(self) -> int:
        return self.log_text().count("] reconciled: ")


@contextlib.contextmanager
def world(resync_seconds: float) -> Iterator[tuple[World, Operator]]:
    """A fresh control plane that records an audit log, and an operator ready to start."""
    plane = LocalControlPlane(bin_dir=Path(os.environ["RSG_CONTROL_PLANE_BIN"]), audit=True)
    plane.start()
    try:
        plane.apply(ROOT / "crds")
        assert plane.work_dir is not None
        log = plane.work_dir / "logs" / "operator.log"
        flags = ("--verbose", f"--resync-seconds={resync_seconds}")
        yield World(plane), Operator(plane.kubeconfig, log, flags)
    except BaseException:
        plane.stop(keep_logs=True)
        print(f"\ncontrol-plane and operator logs kept in {plane.work_dir}", file=sys.stderr)
        raise
    else:
        plane.stop()


def until(what: str, done: Callable[[], bool], timeout: float, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def settle(w: World, quiet: float = 5.0, timeout: float = 120.0) -> None:
    """Until nobody has written for `quiet` seconds (status updates after the last
    reconcile, the controller-manager's own work on new objects)."""
    deadline = time.monotonic() + timeout
    mark = w.audit.mark()
    since_change = time.monotonic()
    while time.monotonic() - since_change < quiet and time.monotonic() < deadline:
        time.sleep(1.0)
        if len(w.audit.since(mark).writes().about_workloads()):
            mark, since_change = w.audit.mark(), time.monotonic()
