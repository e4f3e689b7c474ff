"""What the operator runs, started as one transaction.

`Runtime.start` builds the clients, the controller with its RSG watch, the webhook and
the leader election (or the workers), in that order: what can fail for reasons outside
the process (the webhook configuration's update, a port taken) comes before the
election, which must never be left running by a start that failed. If any step fails,
everything already started is stopped again, in reverse order, and the error is
raised: the caller may try again from nothing (kopf retries the start-up a few times,
then the process exits and the pod restarts). The probes' server (`Probes`) lives
outside the attempts, so /healthz can say that start-up is failing while it retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from rsg_operator import leader, metrics, serving, webhook
from rsg_operator.kube import Kube, load_configuration
from rsg_operator.reconcilers.controller import Controller
from rsg_operator.settings import Settings

log = logging.getLogger("rsg_operator")


@dataclass
class Runtime:
    """Every part of a running operator; `stop` undoes whatever `start` got to."""

    settings: Settings
    kube: Kube | None = None
    lease_kube: Kube | None = None
    controller: Controller | None = None
    election: leader.Election | None = None
    webhook: webhook.Webhook | None = None
    checks: serving.Probes = field(default_factory=serving.Probes)

    @classmethod
    async def start(cls, settings: Settings, kubeconfig: Path | None) -> Runtime:
        """Start everything, or nothing: on failure, what was started is stopped and the
        error raised."""
        runtime = cls(settings)
        try:
            await runtime._start(kubeconfig)
        except BaseException:
            await runtime.stop()
            raise
        return runtime

    async def _start(self, kubeconfig: Path | None) -> None:
        settings = self.settings
        configuration = await load_configuration(kubeconfig)
        self.kube = kube = await Kube.connect(configuration)
        controller_kube = kube
        if settings.leader_election:
            self.lease_kube = await Kube.connect(configuration, leader.LEASE_CONNECTIONS)
            self.election = leader.Election(
                self.lease_kube,
                leader.LeaseConfig(settings.lease_name, settings.lease_namespace),
                self._lead,
            )
            # Reconciles write only while this process leads; the webhook's own write
            # (its CA, done by every replica) goes through the unfenced client.
            controller_kube = kube.fenced(self.election.fence)
        self.controller = controller = Controller(controller_kube, settings)
        controller.watch_rsgs()
        self.checks.alive.append(controller.dead)
        if settings.webhook is not None:
            self.webhook = await webhook.serve(settings.webhook, kube, controller.claims.related)
            self.checks.alive.append(self.webhook.died)
        # Last: nothing that can fail comes after the election starts.
        if self.election is not None:
            self.election.start()
            # A standby is alive and ready while its election runs: ready to take over.
            self.checks.alive.append(self.election.died)
            self.checks.ready.append(self.election.died)
        else:
            metrics.LEADER.set(1)
            controller.start()

    async def _lead(self) -> None:
        assert self.controller is not None
        await self.controller.lead()

    async def stop(self) -> None:
        """Stop in reverse order: no reconcile runs once the Lease is handed over."""
        if self.webhook is not None:
            await self.webhook.stop()
            self.webhook = None
        if self.controller is not None:
            await self.controller.stop()  # no reconcile runs from here on...
        if self.election is not None:
            await self.election.stop()  # ...so the Lease can be handed over
        metrics.LEADER.set(0)
        for client in (self.kube, self.lease_kube):
            if client is not None:
                await client.close()
        self.kube = self.lease_kube = None


@dataclass
class Startup:
    """The process's start-up, attempt after attempt, and the probes' server that
    outlives the attempts: /healthz fails while start-up keeps failing, /readyz until
    one attempt has completed; then they ask the running parts."""

    failures: int = 0
    last_error: str | None = None
    runtime: Runtime | None = None
    http: web.AppRunner | None = None

    async def attempt(self, settings: Settings, kubeconfig: Path | None) -> Runtime:
        """One attempt: everything started, or nothing (the error is raised)."""
        if self.http is None and settings.http_address is not None:
            probes = serving.Probes(alive=[self.alive], ready=[self.ready])
            self.http = await serving.serve(settings.http_address, probes)
        try:
            self.runtime = await Runtime.start(settings, kubeconfig)
        except Exception as error:
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            log.error("start-up attempt %d failed, all of it undone: %s", self.failures, error)
            raise
        log.info("started")
        return self.runtime

    def alive(self) -> str | None:
        if self.runtime is not None:
            return _first(self.runtime.checks.alive)
        if self.failures:
            return (
                f"start-up failed {self.failures} time(s) and is retried; "
                f"the last error: {self.last_error}"
            )
        return None

    def ready(self) -> str | None:
        if self.runtime is None:
            return "starting"
        return _first(self.runtime.checks.ready)

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        if self.http is not None:
            await self.http.cleanup()
            self.http = None


def _first(checks: list[serving.Check]) -> str | None:
    return next((problem for check in checks if (problem := check()) is not None), None)
