"""kopf registrations: a few lines each, all handing over to the controller.

kopf watches the RSGs and hands every event to the controller (reconcilers/
controller.py), which keeps the RSGs it has seen, decides when each is reconciled, and
watches members through shared informers. kopf keeps no state on the RSGs (no
annotations, no finalizer of its own) and none on the members.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from rsg_operator import api, leader, metrics, serving, webhook
from rsg_operator.kube import Kube, load_configuration
from rsg_operator.reconcilers.controller import Controller
from rsg_operator.settings import Settings

RSG = (api.GROUP, api.VERSION, api.PLURAL)


def register(registry: kopf.OperatorRegistry) -> None:
    """Register every handler of the operator in `registry`."""
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    kopf.on.event(*RSG, registry=registry)(observe)


def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return kopf.login_with_service_account(settings=settings)
    return kopf.login_with_kubeconfig(settings=settings)


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf's own RSG watch: end a request that hangs (a half-open connection) and
    # reconnect, as our informers do.
    settings.watching.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    ours: Settings = memo.settings
    kube = await Kube.connect(await load_configuration(memo.kubeconfig))
    memo.controller = controller = Controller(kube, ours)
    probes = serving.Probes(alive=[controller.watches.dead])
    if ours.leader_election:
        config = leader.LeaseConfig(ours.lease_name, ours.lease_namespace)
        memo.election = election = leader.Election(kube, config, controller.lead)
        election.start()
        # A standby is alive and ready while its election runs: ready to take over.
        probes.alive.append(election.died)
        probes.ready.append(election.died)
    else:
        metrics.LEADER.set(1)
        controller.start()
    if ours.http_address is not None:
        memo.http = await serving.serve(ours.http_address, probes)
    if ours.webhook is not None:
        memo.webhook = await webhook.serve(ours.webhook, kube, controller.claims.related)


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for server in ("http", "webhook"):
        if memo.get(server) is not None:
            await memo[server].cleanup()
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()  # no reconcile runs from here on...
    if memo.get("election") is not None:
        await memo.election.stop()  # ...so the Lease can be handed over
    if controller is not None:
        await controller.kube.close()


async def observe(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    memo.controller.observe(event.get("type"), event["object"])
