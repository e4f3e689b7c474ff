"""InplaceScaling: keep every Target at ceil(Source replicas x ratio).

Reads the Source, computes each Target (ratios.py), writes only the Targets that differ
(through their adapter) and returns the status to report: what each member runs, from
its workload's status, not the count RSG wrote. The cross-RSG rules (graph.py) are
checked before, by the controller; a problem means no write at all.

Another writer of a Target's replicas (an HPA aimed at it, a GitOps sync, RBG's scaling
adapter) is not fought: once it has set the count back again and again, RSG rations its
writes to that member (contest.py) and says who else writes it (Ready False
`ReplicasContested`). A count the workload does not run for a while (another controller
holds it, pods refused) is Ready False `ReplicasNotTakenUp`, naming who holds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rsg_operator import api, contest, kinds
from rsg_operator.adapters import NotScalable, RoleScaler, Scaler, scaler_for
from rsg_operator.cluster import Cluster
from rsg_operator.ratios import target_replicas
from rsg_operator.reconcilers.report import Report
from rsg_operator.status import Healthy, Problem, Reason


@dataclass
class _Target:
    binding: api.Binding
    scaler: Scaler
    desired: int
    spec: int  # its replicas as set (after our write, if any)


async def reconcile(
    cluster: Cluster,
    spec: api.RSGSpec,
    strategy: api.InplaceScaling,
    objects: dict[str, dict[str, Any]],
    namespace: str,
    writes: contest.Members | None = None,
    now: float | None = None,
) -> Report:
    """`writes`: what this RSG knows of its own writes to each member (kept by the
    controller between reconciles); `now`: the clock (epoch seconds)."""
    writes = writes if writes is not None else contest.Members()
    now = time.time() if now is None else now
    try:
        by_name = {
            b.name: await scaler_for(cluster, spec.member(b, namespace), objects[b.target_id])
            for b in strategy.bindings
        }
    except NotScalable as error:
        return Report(problems=[Problem(Reason.NOT_SCALABLE, str(error))])
    source_binding = strategy.source
    source_scaler = by_name[source_binding.name]
    source = await source_scaler.read()
    result = Report()
    bindings = [_entry(source_binding.name, "Source", None, source, source_scaler)]
    # One after the other, in binding order: two writes at once made the first Target
    # slower (measured; they compete in the API server).
    targets = []
    for binding in strategy.targets:
        assert binding.ratio is not None  # a Target always has one (default 1)
        scaler = by_name[binding.name]
        desired = target_replicas(source, binding.ratio)
        target = _Target(binding, scaler, desired, await scaler.read())
        await _converge(cluster, target, source, writes, now, result)
        targets.append(target)
        bindings.append(_entry(binding.name, "Target", str(binding.ratio), desired, scaler))
    runs = source_scaler.running()
    result.fields = {
        "currentReplicas": source,
        "readyReplicas": runs.ready if runs is not None else _ready(source_binding),
        "bindings": bindings,
    }
    unwell = [m for t in targets if (m := _contested(t, writes, now))]
    reason = Reason.REPLICAS_CONTESTED
    if not unwell:
        unwell = [m for t in targets if (m := _not_taken_up(cluster, t, writes, now, result))]
        reason = Reason.REPLICAS_NOT_TAKEN_UP
    if unwell:
        result.healthy = Healthy(str(reason), "; ".join(unwell), ready=False)
    else:
        result.healthy = Healthy(
            "InSync",
            f"{len(strategy.targets)} target(s) follow {source_binding.name} at {source} replicas",
        )
    return result


async def _converge(
    cluster: Cluster,
    target: _Target,
    source: int,
    writes: contest.Members,
    now: float,
    result: Report,
) -> None:
    """Set the Target to its desired count if it differs, unless another writer keeps
    setting it back and this member's ration of writes is spent."""
    if target.spec == target.desired:
        return
    member = target.scaler.member.describe()
    version = str(target.scaler.written["metadata"].get("resourceVersion"))
    setter = _others(cluster, target.scaler)  # the field's last writer, if not RSG
    verdict = writes.before_write(member, target.spec, target.desired, version, now, setter)
    if not verdict.write:
        assert verdict.retry_in is not None
        result.requeue_after = _earliest(result.requeue_after, verdict.retry_in)
        return
    before, target.spec = target.spec, await target.scaler.write(target.desired)
    writes.wrote(member, target.desired, now)
    binding = target.binding
    result.events.append(
        (
            "Scaled",
            f"{binding.name} ({member}): {before} -> {target.desired} "
            f"= ceil({source} x {binding.ratio})",
        )
    )


def _contested(target: _Target, writes: contest.Members, now: float) -> str:
    """What to say of a Target whose replicas another writer keeps setting back."""
    others = writes.contested(target.scaler.member.describe(), now)
    if others is None:
        return ""
    return (
        f"{target.binding.name} ({target.scaler.member.describe()}): its replicas are being "
        f"set back by {others or 'another writer'}; RSG writes them at most once every "
        f"{contest.MIN_INTERVAL:.0f}s until that stops (scale the Source instead: an HPA "
        "or a GitOps tool aimed at a Target fights RSG)"
    )


def _not_taken_up(
    cluster: Cluster, target: _Target, writes: contest.Members, now: float, result: Report
) -> str:
    """What to say of a role that has not run the count RSG set for a while.

    Only a role's: its controller (RBG) reports the count it runs the role at, which an
    adapter can override. A whole workload that has observed RSG's count has taken it
    up, however many pods it has made so far: a StatefulSet adds them one by one, a
    rolling Deployment runs a surge (found by review: both were reported, with a new
    Warning for every pod)."""
    runs = target.scaler.running()
    differs = (
        target.binding.role_name is not None
        and runs is not None
        and runs.current
        and target.spec == target.desired
        and runs.replicas != target.desired
    )
    lasted = writes.not_taken_up(target.scaler.member.describe(), differs, now)
    if lasted is None or runs is None:
        return ""
    if lasted < contest.NOT_TAKEN_UP_AFTER:  # a status a moment behind: look again then
        wait = contest.NOT_TAKEN_UP_AFTER - lasted
        result.requeue_after = _earliest(result.requeue_after, wait)
        return ""
    return (
        f"{target.binding.name} ({target.scaler.member.describe()}): RSG set "
        f"{target.desired} replicas, it runs {runs.replicas}; {_holder(cluster, target.scaler)}"
    )


def _holder(cluster: Cluster, scaler: Scaler) -> str:
    """Who holds a member's replicas, as far as RSG can tell."""
    if isinstance(scaler, RoleScaler):
        adapter = kinds.scaling_adapter(scaler.obj, scaler.name)
        if adapter is not None:
            return (
                f"its role enables RBG's scaling adapter {adapter[2]}, which holds its "
                "replicas once it exists (RSG then scales the adapter)"
            )
    others = _others(cluster, scaler)
    if others:
        return f"its replicas are also written by {others}"
    return "its controller runs another count (see its events)"


def _others(cluster: Cluster, scaler: Scaler) -> str:
    """The other writers of the member's replica field (managedFields), not RSG."""
    writers = cluster.writers(scaler.written).get(scaler.field, ())
    return ", ".join(w for w in writers if not w.startswith("rsg-operator "))


def _entry(name: str, role: str, ratio: str | None, desired: int, scaler: Scaler) -> dict[str, Any]:
    """A status.bindings[] entry: `current` and `ready` are what the workload reports it
    runs (its status); absent where it reports nothing (an RBG whose controller has not
    reported the role): never the count RSG wrote (found by review)."""
    runs = scaler.running()
    entry: dict[str, Any] = {"name": name, "role": role}
    if ratio is not None:
        entry["ratio"] = ratio
    entry["desired"] = desired
    if runs is not None:
        entry["current"] = runs.replicas
        entry["ready"] = runs.ready
    return entry


def _earliest(current: float | None, candidate: float) -> float:
    return candidate if current is None else min(current, candidate)


def _ready(source: api.Binding) -> int | None:
    """Ready replicas of a Source whose workload reports none yet: 0 for a whole object
    (no status yet), unknown for a role."""
    return None if source.role_name is not None else 0
