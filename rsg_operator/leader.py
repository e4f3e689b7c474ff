"""Leader election with a coordination.k8s.io/v1 Lease, by client-go's rules: only the
leader reconciles; a standby takes over once the Lease has not changed for its duration
(the leader died, or lost the API server).

Leadership must never overlap, also when the API server stops answering without
closing the connection (a dead instance behind a load balancer, a partition):

- The Lease is read and written on a connection pool of its own (reconciles cannot
  hold it up), and every attempt is bounded: it ends by the renew deadline at the
  latest, and each attempt by half of it, so a hung request cannot keep the renew loop
  from noticing that time is up.
- Leadership is held *until* a moment: the start of the last successful renewal plus
  the renew deadline (monotonic clock). A standby takes over no earlier than a lease
  duration after it saw that renewal (dated from when its read answered, so a slow
  read does not age it), which came after the renewal's start; with the renew deadline
  shorter than the lease duration, this process has stopped before.
- At that moment a timer stops the workers, and `fence` refuses every write from then
  on: checked when a write is sent and again once it has its connection (kube.py), so
  a write queued before the loss is not sent after it. Then the process ends (SIGTERM
  to itself), as client-go's controllers do, and is restarted as a standby.

kubernetes_asyncio's leaderelection module is not used: its Lease requests have no
timeout (a hung renewal never returns, so its renew deadline is never checked), it
shares the reconciles' connections, and it gives no way to fence writes.

A leader stopped gracefully (SIGTERM: a rolling upgrade, a drained node) releases the
Lease once its workers have stopped, as client-go's ReleaseOnCancel does, so a standby
takes over at its next try instead of a lease duration later.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsg_operator import metrics, tasks
from rsg_operator.kube import PROCESS, Conflict, Kube, KubeError

log = logging.getLogger("rsg_operator.leader")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
# Connections of the Lease's own pool: one request at a time, one spare.
LEASE_CONNECTIONS = 2
JITTER = 1.2  # a standby retries every retry period x [1, 1.2], as client-go's acquire


@dataclass(frozen=True)
class LeaseConfig:
    name: str = "rsg-operator"
    namespace: str | None = None  # default: the pod's namespace, else "default"
    # client-go's defaults: a standby takes over 15 s after the last renewal it saw.
    # Whole seconds: the Lease stores leaseDurationSeconds as an integer.
    lease_seconds: int = 15
    renew_deadline_seconds: float = 10
    retry_seconds: float = 2

    def __post_init__(self) -> None:
        if not self.retry_seconds < self.renew_deadline_seconds < self.lease_seconds:
            raise ValueError("leader election needs retry < renew deadline < lease duration")

    def lease_namespace(self) -> str:
        if self.namespace:
            return self.namespace
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        if SERVICE_ACCOUNT_NAMESPACE.exists():
            return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return "default"

    @property
    def attempt_seconds(self) -> float:
        """The most one acquire or renew attempt (a GET and a PUT) may take."""
        return self.renew_deadline_seconds / 2


def identity() -> str:
    """Unique per process: the pod's name (its hostname) and a random suffix, the same
    that the process's user agent carries."""
    return PROCESS


class Election:
    """Run `lead` while this process holds the Lease; stop it, fence every write and end
    the process once it may no longer hold it.

    `kube` should be a client of its own (`Kube.connect(..., LEASE_CONNECTIONS)`), so
    that the Lease never waits behind reconciles."""

    def __init__(
        self,
        kube: Kube,
        config: LeaseConfig,
        lead: Callable[[], Coroutine[Any, Any, None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity()
        self.config = config
        self._kube = kube
        self._lead = lead
        self._clock = clock
        self.namespace = config.lease_namespace()
        self._path = f"{LEASES.format(namespace=self.namespace)}/{config.name}"
        self._until = 0.0  # (clock) leadership holds until then, unless renewed
        self._observed: dict[str, Any] | None = None  # the Lease's spec as last seen
        self._observed_at = 0.0  # (clock) when it was seen to change
        self._task: asyncio.Task[None] | None = None
        self._leading: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.leading = False
        self.lost = False

    # ------------------------------------------------------------------ for the rest

    def fence(self) -> str | None:
        """Whether writes may be sent now: None if this process leads, else why not."""
        if not self.leading:
            return "this process is not the leader" + (" any more" if self.lost else "")
        if self._clock() >= self._until:
            return (
                f"leadership expired: the Lease was not renewed within "
                f"{self.config.renew_deadline_seconds:g}s"
            )
        return None

    def start(self) -> None:
        metrics.LEADER.set(0)
        log.info(
            "standby: waiting to acquire Lease %s/%s as %s",
            self.namespace,
            self.config.name,
            self.identity,
        )
        self._task = asyncio.create_task(self._run(), name="leader election")

    def died(self) -> str | None:
        """For the liveness probe: the election loop ended while it should run."""
        return tasks.ended(self._task, "leader election", "the lease was lost")

    async def stop(self) -> None:
        """Stop campaigning; a leader then releases the Lease. The caller stops the
        workers first: nothing may reconcile once another replica can lead."""
        leading = self.leading and self.fence() is None
        for task in (self._task, self._leading):
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in (self._task, self._leading) if t is not None), return_exceptions=True
        )
        if self._expiry is not None:
            self._expiry.cancel()
        self.leading = False
        metrics.LEADER.set(0)
        if leading:
            await self._release()

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        retry = self.config.retry_seconds
        while not await self._attempt():
            await asyncio.sleep(retry * random.uniform(1.0, JITTER))
        self.leading = True
        metrics.LEADER.set(1)
        log.info("leading: acquired Lease %s/%s", self.namespace, self.config.name)
        self._leading = asyncio.create_task(self._lead(), name="leading")
        while self.fence() is None:
            await asyncio.sleep(retry)
            await self._attempt()
        # The expiry timer has stopped the workers already (or does so now).

    async def _attempt(self) -> bool:
        """One acquire-or-renew, bounded in time; True if this process holds the Lease
        for another renew deadline from the attempt's start."""
        began = self._clock()
        budget = self.config.attempt_seconds
        if self.leading:
            budget = min(budget, self._until - began)
        try:
            async with asyncio.timeout(max(budget, 0.0)):
                held = await self._acquire_or_renew()
        except (KubeError, TimeoutError) as error:
            log.log(
                logging.WARNING if self.leading else logging.DEBUG,
                "could not %s Lease %s/%s: %s",
                "renew" if self.leading else "acquire",
                self.namespace,
                self.config.name,
                str(error) or f"no answer within {budget:.1f}s",
            )
            return False
        if held and (not self.leading or self.fence() is None):
            self._until = began + self.config.renew_deadline_seconds
            self._arm()
        return held

    async def _acquire_or_renew(self) -> bool:
        lease = await self._kube.get(self._path)
        # A change is dated from when its answer came (however slow), never from when it
        # was asked for: the other holder may have renewed while the read was on its way.
        now = self._clock()
        stamp = _micro_time()
        if lease is None:
            created = await self._kube.create(
                LEASES.format(namespace=self.namespace),
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.config.name, "namespace": self.namespace},
                    "spec": self._record(stamp, stamp, 0),
                },
            )
            self._see(created, now)
            return True
        self._see(lease, now)
        spec = dict(lease.get("spec") or {})
        holder = spec.get("holderIdentity")
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_seconds)
        if holder and holder != self.identity and now < self._observed_at + duration:
            return False  # another holds it, and it has not expired
        mine = holder == self.identity
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine else 1)
        acquired = spec.get("acquireTime") if mine else stamp
        lease["spec"] = self._record(str(acquired or stamp), stamp, transitions)
        try:
            updated = await self._kube.replace(self._path, lease)  # guarded: resourceVersion
        except Conflict:
            return False  # another replica wrote it first
        self._see(updated, now)
        return True

    def _record(self, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.config.lease_seconds,
            "acquireTime": acquired,
            "renewTime": renewed,
            "leaseTransitions": transitions,
        }

    def _see(self, lease: dict[str, Any], now: float) -> None:
        """A Lease's expiry is judged by when it was last seen to change (local clock),
        never by the times written in it (other hosts' clocks)."""
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = dict(spec), now

    # ------------------------------------------------------------------ losing it

    def _arm(self) -> None:
        """(Re)schedule the end of leadership at `_until`."""
        if self._expiry is not None:
            self._expiry.cancel()
        delay = max(self._until - self._clock(), 0.0)
        self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        if not self.leading or self.fence() is None:
            return  # renewed meanwhile (the timer raced the renewal)
        self.lost = True
        self.leading = False
        metrics.LEADER.set(0)
        if self._leading is not None:
            self._leading.cancel()  # the workers stop at once; the fence stops writes
        log.error(
            "lost Lease %s/%s (not renewed within %gs): stopped reconciling, stopping the operator",
            self.namespace,
            self.config.name,
            self.config.renew_deadline_seconds,
        )
        signal.raise_signal(signal.SIGTERM)  # kopf stops the operator gracefully

    async def _release(self) -> None:
        """Clear the Lease's holder if it is still this process (guarded by its
        resourceVersion): a standby's next try acquires it."""
        try:
            async with asyncio.timeout(self.config.attempt_seconds):
                lease = await self._kube.get(self._path)
                spec = (lease or {}).get("spec") or {}
                if lease is None or spec.get("holderIdentity") != self.identity:
                    return
                spec.pop("holderIdentity")
                await self._kube.replace(self._path, lease)
        except (KubeError, TimeoutError) as error:
            log.warning(
                "could not release Lease %s/%s (a standby takes over when it expires): %s",
                self.namespace,
                self.config.name,
                str(error) or "no answer",
            )
            return
        log.info("released Lease %s/%s", self.namespace, self.config.name)


def _micro_time() -> str:
    """Now as a Kubernetes MicroTime (RFC 3339, microseconds, UTC)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
