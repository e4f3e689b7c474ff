"""Leader election with a coordination.k8s.io/v1 Lease, as every Kubernetes controller
does it: only the leader reconciles; a standby takes over once the leader has not
renewed the Lease for its duration (it died, or lost the API server).

kubernetes_asyncio's leaderelection module does the election (acquire, renew, the
timing rules of client-go). Losing the lease ends the process: workers that may have
acted on stale leadership are not trusted to continue, and the Deployment restarts the
pod as a standby (client-go's controllers do the same). A leader that stops gracefully
(SIGTERM: a rolling upgrade, a drained node) releases the Lease once its workers have
stopped, as client-go's ReleaseOnCancel does, so a standby takes over at its next try
instead of a lease duration later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from rsg_operator import metrics, tasks
from rsg_operator.kube import Kube, KubeError

log = logging.getLogger("rsg_operator.leader")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class LeaseConfig:
    name: str = "rsg-operator"
    namespace: str | None = None  # default: the pod's namespace, else "default"
    # client-go's defaults: a standby takes over 15 s after the last renewal at most.
    # Whole seconds: the Lease stores leaseDurationSeconds as an integer.
    lease_seconds: int = 15
    renew_deadline_seconds: int = 10
    retry_seconds: int = 2

    def lease_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return "default"


def identity() -> str:
    """Unique per process: the pod's name (its hostname) and a random suffix."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Election:
    """Run `lead` once this process holds the Lease; end the process if it is lost."""

    def __init__(
        self, kube: Kube, config: LeaseConfig, lead: Callable[[], Awaitable[None]]
    ) -> None:
        self.identity = identity()
        self.config = config
        self._kube = kube
        self._lead = lead
        namespace = config.lease_namespace()
        self._lock = LeaseLock(config.name, namespace, self.identity, kube.api_client)
        self._task: asyncio.Task[None] | None = None
        self.leading = False

    def start(self) -> None:
        metrics.LEADER.set(0)
        log.info(
            "standby: waiting to acquire Lease %s/%s as %s",
            self._lock.namespace,
            self.config.name,
            self.identity,
        )
        election = leaderelection.LeaderElection(
            electionconfig.Config(
                self._lock,
                lease_duration=self.config.lease_seconds,
                renew_deadline=self.config.renew_deadline_seconds,
                retry_period=self.config.retry_seconds,
                onstarted_leading=self._started,
                onstopped_leading=self._stopped,
            )
        )
        self._task = asyncio.create_task(election.run(), name="leader election")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("leader election failed: %r", task.exception())

    async def stop(self) -> None:
        """Stop campaigning; a leader then releases the Lease. The caller stops the
        workers first: nothing may reconcile once another replica can lead."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.leading:
            await self._release()

    async def _release(self) -> None:
        """Clear the Lease's holder if it is still this process (guarded by its
        resourceVersion): a standby's next try acquires it."""
        self.leading = False
        metrics.LEADER.set(0)
        path = (
            f"/apis/coordination.k8s.io/v1/namespaces/{self._lock.namespace}"
            f"/leases/{self.config.name}"
        )
        try:
            lease = await self._kube.get(path)
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            spec.pop("holderIdentity")
            await self._kube.replace(path, lease)
        except KubeError as error:
            log.warning(
                "could not release Lease %s/%s (a standby takes over when it expires): %s",
                self._lock.namespace,
                self.config.name,
                error,
            )
            return
        log.info("released Lease %s/%s", self._lock.namespace, self.config.name)

    def died(self) -> str | None:
        """For the liveness probe: the election loop ended while it should run."""
        return tasks.ended(self._task, "leader election", "the lease was lost")

    async def _started(self) -> None:
        self.leading = True
        metrics.LEADER.set(1)
        log.info("leading: acquired Lease %s/%s", self._lock.namespace, self.config.name)
        await self._lead()

    async def _stopped(self) -> None:
        self.leading = False
        metrics.LEADER.set(0)
        log.error("lost Lease %s/%s: stopping the operator", self._lock.namespace, self.config.name)
        signal.raise_signal(signal.SIGTERM)  # kopf stops the operator gracefully
