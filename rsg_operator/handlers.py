"""kopf registrations: a few lines each, all dispatching to the reconcilers."""

from __future__ import annotations

import os
from typing import Any

import kopf

from rsg_operator import api, status
from rsg_operator.kube import Kube, load_configuration
from rsg_operator.reconcilers import targets
from rsg_operator.settings import Settings

RSG = (api.GROUP, api.VERSION, api.PLURAL)


def register(registry: kopf.OperatorRegistry, settings: Settings) -> None:
    """Register every handler of the operator in `registry`."""
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
    for decorator in (
        kopf.on.resume(*RSG, registry=registry),
        kopf.on.create(*RSG, registry=registry),
        kopf.on.update(*RSG, field="spec", registry=registry),
        kopf.timer(*RSG, interval=settings.resync_seconds, idle=5, registry=registry),
    ):
        decorator(reconcile)


def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return kopf.login_with_service_account(settings=settings)
    return kopf.login_with_kubeconfig(settings=settings)


async def startup(memo: kopf.Memo, **_: Any) -> None:
    memo.kube = await Kube.connect(await load_configuration(memo.kubeconfig))


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("kube") is not None:
        await memo.kube.close()


async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Check the spec and targets; write status only where it changed."""
    namespace = body.metadata.namespace
    assert namespace is not None  # the CRD is namespaced
    _spec, problems = await targets.check(memo.kube, body.spec, namespace, memo.settings)
    result = status.outcome(
        dict(body.status),
        int(body.metadata.get("generation") or 0),
        problems,
        status.now_rfc3339(),
    )
    for key, value in result.patch.items():
        patch.status[key] = value
    if result.warning is not None:
        kopf.warn(body, reason=str(result.warning.reason), message=result.warning.message)
