"""Leader election with a coordination.k8s.io/v1 Lease, as every Kubernetes controller
does it: only the leader reconciles; a standby takes over once the leader has not
renewed the Lease for its duration (it died, or lost the API server).

kubernetes_asyncio's leaderelection module does the election (acquire, renew, the
timing rules of client-go). Losing the lease ends the process: workers that may have
acted on stale leadership are not trusted to continue, and the Deployment restarts the
pod as a standby (client-go's controllers do the same).
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

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from rsg_operator import metrics

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
        self, api_client: ApiClient, config: LeaseConfig, lead: Callable[[], Awaitable[None]]
    ) -> None:
        self.identity = identity()
        self.config = config
        self._lead = lead
        namespace = config.lease_namespace()
        self._lock = LeaseLock(config.name, namespace, self.identity, api_client)
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
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def died(self) -> str | None:
        """For the liveness probe: the election loop ended while it should run."""
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return f"leader election ended: {task.exception() or 'the lease was lost'}"

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
