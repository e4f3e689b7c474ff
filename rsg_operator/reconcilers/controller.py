"""The controller: which RSG to reconcile when, and one reconcile (resolve, dispatch by
strategy, write status, post events).

Every RSG the operator sees (its own informers watch them: `watch_rsgs`) is a key in
one work queue, served by a bounded number of workers. A key is queued when its spec changes,
when an object it concerns changes (shared watches, informers.py), when a claim it is
connected to changes, after a failure (backoff), and once per resync period (jittered)
as a safety net. Truth is read from the cluster (the watch caches); nothing is carried
between reconciles but what the status says.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import time
from collections.abc import Iterable
from typing import Any

from rsg_operator import api, contest, graph, labels, metrics, status
from rsg_operator.adapters import adapter_selections
from rsg_operator.cluster import Cluster
from rsg_operator.informers import (
    WRITER,
    Informer,
    Object,
    RsgKey,
    Scope,
    Selection,
    Watches,
    backoff,
    newer,
)
from rsg_operator.kube import ApiResource, Conflict, Kube, KubeError, NotFound
from rsg_operator.reconcilers import group_replication, inplace, targets
from rsg_operator.reconcilers.report import Report
from rsg_operator.settings import Settings
from rsg_operator.workqueue import WorkQueue

log = logging.getLogger("rsg_operator")

# Kinds the controller writes without discovering them.
RSGS = ApiResource(api.API_VERSION, api.KIND, api.PLURAL, True, frozenset({"status", "scale"}))
EVENTS = ApiResource("v1", "Event", "events", True, frozenset())

# Held by a GroupReplication RSG once it has labelled seed members, so that the labels
# are taken off before the RSG is gone, even if the operator was down at the time.
FINALIZER = f"{labels.PREFIX}/release"
RESYNC_JITTER = 0.1  # each resync is drawn from resync x [0.9, 1.1]
# After a failed reconcile: about 1 s, doubling (jittered) up to the resync period.
FAILURE_RETRY_SCALE = 4.0  # x informers.backoff(n), which starts at a quarter second
# After a conflict: 0.2 s, doubling up to 5 s, no failure counted.
CONFLICT_RETRY = 0.1
# After this many failed reconciles in a row, the RSG turns Degraded ReconcileFailing.
FAILING_AFTER = 3
MAX_CONFLICT_RETRY = 5.0


class RsgLogger(logging.LoggerAdapter[logging.Logger]):
    """Every line names the RSG: `[namespace/name] message`."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['rsg'] if self.extra else '?'}] {msg}", kwargs


def rsg_key(obj: Object) -> RsgKey:
    meta = obj["metadata"]
    return (str(meta["namespace"]), str(meta["name"]))


def claim_of(obj: Object) -> graph.Claim | None:
    """The members an RSG with a valid spec declares (graph.py), else None."""
    try:
        spec = api.parse_spec(obj.get("spec"))
    except api.SpecError:
        return None
    return graph.claim(rsg_key(obj), str(obj["metadata"].get("creationTimestamp") or ""), spec)


def watched(
    spec: api.RSGSpec, namespace: str, name: str, stored: dict[str, Any]
) -> list[Selection]:
    """Every object whose change should wake this RSG: its targets by name, and for
    GroupReplication its clones (by the RSG's name label, one selection per kind it
    clones or has cloned, as its status records)."""
    selections = [
        Selection(t.api_version, t.kind, t.namespace_or(namespace), name=t.name)
        for t in spec.targets
    ]
    if isinstance(spec.strategy, api.GroupReplication):
        selections += [
            Selection(k.api_version, k.kind, namespace, labelled=name)
            for k in group_replication.all_kinds(spec, stored)
        ]
    return selections


class Controller:
    def __init__(self, kube: Kube, settings: Settings) -> None:
        self.kube = kube
        self.settings = settings
        self.queue: WorkQueue[RsgKey] = WorkQueue()
        self.watches = Watches(kube, self.wake, settings.cluster_wide)
        self.cluster = Cluster(kube, self.watches)
        self.rsgs: dict[RsgKey, Object] = {}
        self.claims = graph.ClaimIndex()
        self._failures: dict[RsgKey, int] = {}
        self._conflicts: dict[RsgKey, int] = {}
        # What each InplaceScaling RSG knows of its own writes to its members (contest.py).
        self._writes: dict[RsgKey, contest.Members] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._rsg_informers: dict[str | None, Informer] = {}
        metrics.QUEUE_DEPTH.set_function(lambda: len(self.queue))

    # ------------------------------------------------------------------ lifecycle

    def watch_rsgs(self) -> None:
        """Watch the RSGs, in every replica, leader or not (a standby keeps them queued;
        the webhook checks against their claims). An informer, not kopf's watch: after
        a relist it reports the RSGs deleted meanwhile, which are then forgotten."""
        scopes = [None] if self.settings.cluster_wide else list(self.settings.namespaces)
        for namespace in scopes:
            scope = Scope(api.API_VERSION, api.KIND, namespace)
            informer = Informer(self.kube, scope, self._seen, report_first_list=True)
            self._rsg_informers[namespace] = informer
            informer.start()

    def dead(self) -> str | None:
        """For the liveness probe: a watch task that ended on its own (a bug: informers
        reconnect after every error), else None."""
        deaths = [d for i in self._rsg_informers.values() if (d := i.died()) is not None]
        members = self.watches.dead()
        return "; ".join([*deaths, *([members] if members else [])]) or None

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"reconciler {i}")
            for i in range(self.settings.max_concurrent_reconciles)
        ]

    async def lead(self) -> None:
        """Reconcile while leading: until cancelled (the lease is lost), then stop the
        workers at once."""
        self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self._stop_workers()

    async def stop(self) -> None:
        await self._stop_workers()
        await self.watches.stop()
        await asyncio.gather(*(i.stop() for i in self._rsg_informers.values()))
        self._rsg_informers.clear()

    async def _stop_workers(self) -> None:
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    # ------------------------------------------------------------------ inputs

    def wake(self, keys: Iterable[RsgKey]) -> None:
        """Reconcile these RSGs soon (coalesced with any pending wake-up)."""
        for key in keys:
            if key in self.rsgs:
                self.queue.add(key)

    def _seen(
        self, _: Informer, old: Object | None, new: Object | None, writer: RsgKey | None
    ) -> None:
        if new is None:
            if old is not None:
                self.observe("DELETED", old)
        else:
            # Also for the answer to our own write: it may carry someone else's change
            # (a new generation, a deletion) whose watch event, older, is then dropped.
            self.observe("MODIFIED", new)

    def observe(self, event: str | None, obj: Object) -> None:
        """An RSG as its watch delivered it (event None: listed), or as our write's answer
        showed it. A change of generation, deletion or finalizers wakes it (our status
        writes change none of them)."""
        key = rsg_key(obj)
        if event == "DELETED":
            if key in self.rsgs:
                log.info("[%s/%s] deleted: forgotten", *key)
            metrics.forget_rsg(*key)
            self.rsgs.pop(key, None)
            self.queue.forget(key)
            self.watches.drop(key)
            self._failures.pop(key, None)
            self._conflicts.pop(key, None)
            self._writes.pop(key, None)
            self.wake(self.claims.put(key, None))
            return
        old = self.rsgs.get(key)
        if old is not None and not newer(obj, old):
            return  # our own status write got here first
        self.rsgs[key] = obj
        if old is None or _identity(old) != _identity(obj):
            self.wake(self.claims.put(key, claim_of(obj)) | {key})

    # ------------------------------------------------------------------ the loop

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._reconcile_key(key)
            finally:
                self.queue.done(key)

    async def _reconcile_key(self, key: RsgKey) -> None:
        body = self.rsgs.get(key)
        if body is None:
            return
        logger = RsgLogger(log, {"rsg": f"{key[0]}/{key[1]}"})
        began = time.perf_counter()
        writer = WRITER.set(key)  # the changes our writes make wake the others concerned
        try:
            again = await self.reconcile(body, logger)
        except Conflict as error:
            metrics.RECONCILES.labels("conflict").inc()
            # Something changed what we read (our cache was a moment behind): no failure,
            # no Warning; again shortly, when the watch has delivered the change.
            self._conflicts[key] = conflicts = self._conflicts.get(key, 0) + 1
            logger.info("conflict, reconciling again: %s", error)
            self.queue.add_after(key, min(CONFLICT_RETRY * 2**conflicts, MAX_CONFLICT_RETRY))
            return
        except Exception as error:
            metrics.RECONCILES.labels("error").inc()
            metrics.RECONCILE_ERRORS.labels(_reason(error)).inc()
            self._failures[key] = failures = self._failures.get(key, 0) + 1
            delay = min(backoff(failures) * FAILURE_RETRY_SCALE, self.settings.resync_seconds)
            if isinstance(error, KubeError | OSError):
                logger.error("reconcile failed (retry in %.1fs): %s", delay, error)
                if failures == 1:  # one Warning per failure streak
                    await self.post_event(body, "Warning", "ReconcileFailed", str(error))
            else:
                logger.exception("reconcile crashed (retry in %.1fs)", delay)
            if failures >= FAILING_AFTER:
                await self._report_failing(body, error)
            self.queue.add_after(key, delay)
            return
        finally:
            WRITER.reset(writer)
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - began)
        metrics.RECONCILES.labels("ok").inc()
        self._failures.pop(key, None)
        self._conflicts.pop(key, None)
        if key in self.rsgs:
            period = self.settings.resync_seconds
            self.queue.add_after(key, period * random.uniform(1 - RESYNC_JITTER, 1 + RESYNC_JITTER))
            if again is not None:  # e.g. a drain's deadline: the earliest schedule wins
                self.queue.add_after(key, again)

    async def reconcile(self, body: Object, logger: RsgLogger) -> float | None:
        """Reconcile the RSG in `body` (as last seen); returns in how many seconds it
        must be reconciled again at the latest, if a deadline falls before the resync."""
        key = rsg_key(body)
        namespace, name = key
        if body["metadata"].get("deletionTimestamp"):
            await self._finalize(body, logger)
            return None
        try:
            api.check_name(name)
            spec: api.RSGSpec | None = api.parse_spec(body.get("spec"))
        except api.SpecError as error:
            spec = None
            problems = [status.Problem(status.Reason.INVALID_SPEC, str(error))]
        result = Report()
        if spec is None:
            self.watches.drop(key)
            result.problems = problems
        else:
            selections = watched(spec, namespace, name, self._stored(key))
            self.watches.want(key, selections)
            resolution = await targets.check(self.cluster, spec, namespace, self.settings)
            result.problems = resolution.problems
            adapters = adapter_selections(spec, resolution.objects, namespace)
            if adapters:  # RBG scaling adapters that hold a role's replicas
                selections = [*selections, *adapters]
                self.watches.want(key, selections)
            if not result.problems:
                result = await self._dispatch(body, spec, resolution.objects)
            if result.watch:  # e.g. a name another app's object holds, until it is freed
                self.watches.want(key, [*selections, *result.watch])
        if spec is not None and isinstance(spec.strategy, api.GroupReplication):
            for state, field in (("current", "currentReplicas"), ("ready", "readyReplicas")):
                count = result.fields.get(field)
                if count is not None:
                    metrics.GROUPS.labels(namespace, name, state).set(count)
            if result.fields.get("groups") is not None:
                phases = [g.get("phase") for g in result.fields["groups"]]
                for state, phase in (
                    ("draining", group_replication.DRAINING),
                    ("blocked", group_replication.BLOCKED),
                ):
                    metrics.GROUPS.labels(namespace, name, state).set(phases.count(phase))
        for outcome in result.drains:
            metrics.DRAINS.labels(outcome).inc()
        for reason, message in result.events:
            if reason in metrics.SCALE_REASONS:
                metrics.SCALE_EVENTS.labels(reason).inc()
            logger.info("%s: %s", reason, message)
            await self.post_event(body, "Normal", reason, message)
        for reason, message in result.warnings:
            logger.warning("%s: %s", reason, message)
            await self.post_event(body, "Warning", reason, message)
        written = await self._write_status(body, result)
        logger.debug(
            "reconciled: %d problem(s), status %s",
            len(result.problems),
            "patched" if written else "unchanged",
        )
        return result.requeue_after

    async def _dispatch(
        self, body: Object, spec: api.RSGSpec, objects: dict[str, Object]
    ) -> Report:
        key = rsg_key(body)
        mine = claim_of(body)
        assert mine is not None  # the spec is valid
        problems = graph.problems(mine, self.claims.related(mine))
        if problems:  # another RSG's member, or a cycle: write nothing
            return Report(problems=problems)
        if isinstance(spec.strategy, api.InplaceScaling):
            writes = self._writes.setdefault(key, contest.Members())
            return await inplace.reconcile(
                self.cluster, spec, spec.strategy, objects, key[0], writes
            )
        body = await self._ensure_finalizer(body)
        rsg = group_replication.Rsg(key[0], key[1], str(body["metadata"]["uid"]))

        async def checkpoint(fields: dict[str, Any]) -> None:
            self._remember(await self.kube.merge_patch(_path(key) + "/status", {"status": fields}))

        return await group_replication.reconcile(
            self.cluster, spec, spec.strategy, objects, rsg, self._stored(key), checkpoint
        )

    def _stored(self, key: RsgKey) -> dict[str, Any]:
        """The RSG's status as last written (by us, as far as we know)."""
        return dict((self.rsgs.get(key) or {}).get("status") or {})

    # ------------------------------------------------------------------ writes of the RSG

    async def _write_status(self, body: Object, result: Report) -> bool:
        """Patch the status fields that changed (none: no write); warn on a new problem.

        `body` is the RSG as it was when the reconcile began: its generation is the one
        reconciled. Returns whether the status was written."""
        key = rsg_key(body)
        latest = self.rsgs.get(key, body)
        outcome = status.outcome(
            dict(latest.get("status") or {}),
            int(body["metadata"].get("generation") or 0),
            result.problems,
            status.now_rfc3339(),
            {k: v for k, v in result.fields.items() if v is not None},
            result.healthy,
        )
        if outcome.patch:
            try:
                self._remember(
                    await self.kube.merge_patch(_path(key) + "/status", {"status": outcome.patch})
                )
            except NotFound:
                self.observe("DELETED", body)  # deleted while we were away
                return False
        if outcome.warning is not None:
            await self.post_event(
                body, "Warning", str(outcome.warning.reason), outcome.warning.message
            )
        return bool(outcome.patch)

    async def _report_failing(self, body: Object, error: Exception) -> None:
        """Degraded ReconcileFailing with the last error (if the status can be written)."""
        problem = status.Problem(
            status.Reason.RECONCILE_FAILING,
            f"reconciles keep failing and are retried with backoff; the last error: {error}",
        )
        with contextlib.suppress(KubeError, OSError):
            await self._write_status(body, Report(problems=[problem]))

    async def _ensure_finalizer(self, body: Object) -> Object:
        body = self.rsgs.get(rsg_key(body), body)  # the latest version: fewer conflicts
        finalizers = list(body["metadata"].get("finalizers") or [])
        if FINALIZER in finalizers:
            return body
        return await self._set_finalizers(body, [*finalizers, FINALIZER])

    async def _finalize(self, body: Object, logger: RsgLogger) -> None:
        """The RSG is being deleted: take back what it added to objects it does not own,
        then let it go. No scaling any more."""
        key = rsg_key(body)
        finalizers = list(body["metadata"].get("finalizers") or [])
        if FINALIZER in finalizers:
            unreleased: list[str] = []
            with contextlib.suppress(api.SpecError):
                spec = api.parse_spec(body.get("spec"))
                self.watches.want(key, watched(spec, *key, self._stored(key)))
                unreleased = await group_replication.release(self.cluster, spec, *key)
            if unreleased:  # never will be: the deletion does not wait for them
                message = "could not take RSG's labels off " + "; ".join(unreleased)
                logger.warning("ReleaseIncomplete: %s", message)
                await self.post_event(body, "Warning", "ReleaseIncomplete", message)
            await self._set_finalizers(body, [f for f in finalizers if f != FINALIZER])
            logger.info("released")
        self.watches.drop(key)

    async def _set_finalizers(self, body: Object, finalizers: list[str]) -> Object:
        """Set the RSG's finalizers, guarded by its resourceVersion (Conflict)."""
        meta = body["metadata"]
        patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
        updated = await self.kube.merge_patch(_path(rsg_key(body)), patch)
        self._remember(updated)
        return updated

    def _remember(self, obj: Object) -> None:
        """The RSG as our write left it, into its informer (newest wins)."""
        obj = {"apiVersion": api.API_VERSION, "kind": api.KIND, **obj}
        namespace = None if self.settings.cluster_wide else rsg_key(obj)[0]
        informer = self._rsg_informers.get(namespace)
        if informer is not None:
            informer.remember(obj)
        elif rsg_key(obj) in self.rsgs and newer(obj, self.rsgs[rsg_key(obj)]):
            self.rsgs[rsg_key(obj)] = obj

    async def post_event(self, body: Object, type_: str, reason: str, message: str) -> None:
        """A Kubernetes Event about the RSG. Never fails the reconcile."""
        meta = body["metadata"]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": api.API_VERSION,
                "kind": api.KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "rsg-operator"},
            "reportingComponent": "rsg-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.request(
                "POST", EVENTS.path(namespace=meta["namespace"]), event, counted=False
            )
        except KubeError as error:
            log.warning("could not post event %s on %s/%s: %s", reason, *rsg_key(body), error)


def _identity(obj: Object) -> tuple[Any, ...]:
    """What, when it changes, calls for a reconcile: not a status-only change (ours)."""
    meta = obj["metadata"]
    return (
        meta.get("uid"),
        meta.get("generation"),
        meta.get("deletionTimestamp") is not None,
        tuple(meta.get("finalizers") or ()),
    )


def _path(key: RsgKey) -> str:
    return RSGS.path(name=key[1], namespace=key[0])


def _reason(error: Exception) -> str:
    """A failure's reason for the metrics: the API's, else the exception's type."""
    if isinstance(error, KubeError) and error.reason:
        return error.reason
    return type(error).__name__
