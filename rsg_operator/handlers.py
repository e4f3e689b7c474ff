"""kopf registrations: a few lines each, all handing over to the runtime.

kopf runs the process (login, signals, logging) and its start-up and clean-up
activities; everything else is ours (runtime.py): the controller watches the RSGs and
their members with its own informers (a relist forgets what is gone, which kopf's
watch does not tell). kopf keeps no state on the RSGs (no annotations, no finalizer of
its own) and none on the members.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from rsg_operator.runtime import Startup

# A start-up that fails is undone and tried again this many times in all, this many
# seconds apart; then kopf stops the process (the pod restarts, CrashLoopBackOff).
STARTUP_ATTEMPTS = 3
STARTUP_BACKOFF = 5.0


def register(registry: kopf.OperatorRegistry) -> None:
    """Register every handler of the operator in `registry`."""
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry, retries=STARTUP_ATTEMPTS, backoff=STARTUP_BACKOFF)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)


def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo | None:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return kopf.login_with_service_account(settings=settings)
    return kopf.login_with_kubeconfig(settings=settings)


async def startup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("startup") is None:
        memo.startup = Startup()
    await memo.startup.attempt(memo.settings, memo.kubeconfig)


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("startup") is not None:
        await memo.startup.stop()
