"""kopf registrations: a few lines each, all dispatching to the reconcilers.

Each RSG has one daemon, its driver: it reconciles on start, whenever one of its members
changes (watches), when its spec changes (the update handler wakes it) and on a resync
period, one reconcile at a time. Members are only read and scaled: kopf keeps its
bookkeeping on the RSG alone.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import kopf

from rsg_operator import api, graph
from rsg_operator.kube import Kube, load_configuration
from rsg_operator.reconcilers import driver
from rsg_operator.settings import Settings

RSG = (api.GROUP, api.VERSION, api.PLURAL)


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register every handler of the operator in `registry`."""
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    kopf.index(*RSG, registry=registry)(rsg_claims)
    kopf.daemon(*RSG, registry=registry, cancellation_timeout=10.0)(drive)
    kopf.on.update(*RSG, field="spec", registry=registry)(wake)
    kopf.on.delete(*RSG, registry=registry)(release)


def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return kopf.login_with_service_account(settings=settings)
    return kopf.login_with_kubeconfig(settings=settings)


async def startup(memo: kopf.Memo, **_: Any) -> None:
    memo.kube = await Kube.connect(await load_configuration(memo.kubeconfig))
    memo.wakeups = {}


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("kube") is not None:
        await memo.kube.close()


def rsg_claims(
    body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[graph.RsgKey, graph.Claim] | None:
    """Index of every InplaceScaling RSG's Source->Target edges, for cross-RSG rules.

    When an RSG's edges change, every RSG is woken: a new edge can close a cycle or
    contest a Target of another RSG."""
    found = driver.claim_of(body)
    key = (body.metadata.namespace, body.metadata.name)
    if memo.setdefault("claims_seen", {}).get(key) != found:
        memo.claims_seen[key] = found
        _wake_all(memo)
    return None if found is None else {found.rsg: found}


async def wake(uid: str, memo: kopf.Memo, **_: Any) -> None:
    if (wakeup := memo.wakeups.get(uid)) is not None:
        wakeup.set()


async def release(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await driver.release(memo.kube, body)
    _wake_all(memo)  # its edges are gone: a cycle or a contested Target may be resolved


async def drive(
    body: kopf.Body,
    uid: str,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    **kwargs: Any,
) -> None:
    rsg_claims: kopf.Index[graph.RsgKey, graph.Claim] = kwargs["rsg_claims"]
    wakeup = memo.wakeups.setdefault(uid, asyncio.Event())
    try:
        await driver.drive(
            memo.kube,
            body,
            memo.settings,
            lambda: [claim for store in rsg_claims.values() for claim in store],
            wakeup,
            stopped,
            logger,
        )
    finally:
        memo.wakeups.pop(uid, None)


def _wake_all(memo: kopf.Memo) -> None:
    for wakeup in memo.get("wakeups", {}).values():
        wakeup.set()
