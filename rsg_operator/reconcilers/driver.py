"""The driver of one RSG: when to reconcile, and one reconcile (resolve, dispatch by
strategy, write status and events).

Run by the RSG's kopf daemon (handlers.py). Truth is read from the cluster each time;
nothing is carried over between reconciles but what the status says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from kubernetes_asyncio.client.exceptions import ApiException

from rsg_operator import api, graph, labels, status
from rsg_operator.kube import Kube, Selection
from rsg_operator.reconcilers import group_replication, inplace, targets
from rsg_operator.reconcilers.report import Report
from rsg_operator.settings import Settings
from rsg_operator.watching import Watches

Logger = logging.Logger | logging.LoggerAdapter[logging.Logger]
RETRY_SECONDS = 1.0


async def drive(
    kube: Kube,
    body: kopf.Body,
    settings: Settings,
    claims: Callable[[], list[graph.Claim]],
    wakeup: asyncio.Event,
    stopped: kopf.DaemonStopped,
    logger: Logger,
) -> None:
    """Reconcile on start, on `wakeup` (member watches, spec changes) and every resync
    period, one reconcile at a time, until `stopped`."""
    watches = Watches(kube, wakeup, logger)
    failures = 0
    try:
        while not stopped:
            wakeup.clear()
            try:
                selections = await reconcile(kube, body, settings, claims(), logger)
            except ApiException as error:
                # Retried with a doubling delay (1 s up to the resync period); the event
                # tells the user why, once per failure streak.
                message = f"reconcile failed: {error.status} {error.reason}"
                logger.error(message)
                if failures == 0:
                    kopf.warn(body, reason="ReconcileFailed", message=message)
                delay = min(RETRY_SECONDS * 2**failures, settings.resync_seconds)
                failures += 1
                await _first_of(stopped.wait(), timeout=delay)
                continue
            failures = 0
            watches.watch(selections)
            await _first_of(wakeup.wait(), stopped.wait(), timeout=settings.resync_seconds)
    finally:
        await watches.stop()


async def _first_of(*waits: Awaitable[Any], timeout: float) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def claim_of(body: kopf.Body) -> graph.Claim | None:
    """The Source->Target edges of an InplaceScaling RSG with a valid spec, else None."""
    try:
        spec = api.parse_spec(body.spec)
    except api.SpecError:
        return None
    if not isinstance(spec.strategy, api.InplaceScaling):
        return None
    namespace, name = body.metadata.namespace, body.metadata.name
    assert namespace is not None and name is not None
    return inplace.claim(spec, spec.strategy, (namespace, name), _created(body))


def _created(body: kopf.Body) -> str:
    return str(body.metadata.get("creationTimestamp") or "")


def watched(spec: api.RSGSpec | None, namespace: str, name: str) -> list[Selection]:
    """Every object whose change should wake this RSG: its targets, and for
    GroupReplication its clones (by label, one selection per kind)."""
    if spec is None:
        return []
    selections = [
        Selection(t.api_version, t.kind, t.namespace_or(namespace), name=t.name)
        for t in spec.targets
    ]
    if isinstance(spec.strategy, api.GroupReplication):
        clones = labels.clones_selector(name)
        selections += sorted(
            {
                Selection(t.api_version, t.kind, namespace, label_selector=clones)
                for t in spec.targets
            },
            key=Selection.describe,
        )
    return selections


async def reconcile(
    kube: Kube, body: kopf.Body, settings: Settings, claims: list[graph.Claim], logger: Logger
) -> list[Selection]:
    """Reconcile the RSG in `body`; return what to watch."""
    namespace, name = body.metadata.namespace, body.metadata.name
    assert namespace is not None and name is not None
    if body.metadata.get("deletionTimestamp"):
        return []  # being deleted: the delete handler releases; no more scaling
    resolution = await targets.check(kube, body.spec, namespace, settings)
    spec = resolution.spec
    result = Report(problems=resolution.problems)
    if spec is not None and not result.problems:
        if isinstance(spec.strategy, api.InplaceScaling):
            mine = inplace.claim(spec, spec.strategy, (namespace, name), _created(body))
            result = await inplace.reconcile(
                kube, spec, spec.strategy, resolution.objects, mine, claims
            )
        else:
            rsg = group_replication.Rsg(namespace, name, str(body.metadata.uid))
            result = await group_replication.reconcile(
                kube, spec, spec.strategy, resolution.objects, rsg
            )
    for reason, message in result.events:
        logger.info("%s: %s", reason, message)
        kopf.info(body, reason=reason, message=message)
    for reason, message in result.warnings:
        logger.warning("%s: %s", reason, message)
        kopf.warn(body, reason=reason, message=message)
    written = await write_status(kube, body, result.problems, result.fields, result.healthy)
    logger.debug(
        "reconciled: %d problem(s), status %s",
        len(result.problems),
        "patched" if written else "unchanged",
    )
    return watched(spec, namespace, name)


async def write_status(
    kube: Kube,
    body: kopf.Body,
    problems: list[status.Problem],
    fields: dict[str, Any],
    healthy: status.Healthy,
) -> bool:
    """Patch the status fields that changed (none: no write); warn on a new problem.

    Returns whether the status was written."""
    outcome = status.outcome(
        dict(body.status),
        int(body.metadata.get("generation") or 0),
        problems,
        status.now_rfc3339(),
        {key: value for key, value in fields.items() if value is not None},
        healthy,
    )
    if outcome.patch:
        path = (
            f"/apis/{api.API_VERSION}/namespaces/{body.metadata.namespace}/"
            f"{api.PLURAL}/{body.metadata.name}/status"
        )
        await kube.merge_patch(path, {"status": outcome.patch})
    if outcome.warning is not None:
        kopf.warn(body, reason=str(outcome.warning.reason), message=outcome.warning.message)
    return bool(outcome.patch)


async def release(kube: Kube, body: kopf.Body) -> None:
    """On deletion: undo what RSG added to objects it does not own."""
    try:
        spec = api.parse_spec(body.spec)
    except api.SpecError:
        return
    namespace = body.metadata.namespace
    assert namespace is not None
    if isinstance(spec.strategy, api.GroupReplication):
        await group_replication.release(kube, spec, namespace)
