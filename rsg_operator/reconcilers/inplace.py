"""InplaceScaling: keep every Target at ceil(Source replicas x ratio).

Reads the Source, computes each Target (ratios.py), writes only the Targets that differ
(through their adapter) and returns the status to report. The cross-RSG rules
(graph.py) are checked before, by the controller; a problem means no write at all.
"""

from __future__ import annotations

from typing import Any

from rsg_operator import api
from rsg_operator.adapters import NotScalable, Scaler, scaler_for
from rsg_operator.cluster import Cluster
from rsg_operator.ratios import target_replicas
from rsg_operator.reconcilers.report import Report
from rsg_operator.status import Healthy, Problem, Reason


async def reconcile(
    cluster: Cluster,
    spec: api.RSGSpec,
    strategy: api.InplaceScaling,
    objects: dict[str, dict[str, Any]],
    namespace: str,
) -> Report:
    try:
        by_name = {
            b.name: await scaler_for(cluster, spec.member(b, namespace), objects[b.target_id])
            for b in strategy.bindings
        }
    except NotScalable as error:
        return Report(problems=[Problem(Reason.NOT_SCALABLE, str(error))])
    source_binding = strategy.source
    source = await by_name[source_binding.name].read()
    result = Report()
    bindings = [
        {"name": source_binding.name, "role": "Source", "desired": source, "current": source}
    ]
    # One after the other, in binding order: two writes at once made the first Target
    # slower (measured; they compete in the API server).
    wanted = []
    for binding in strategy.targets:
        assert binding.ratio is not None  # a Target always has one (default 1)
        wanted.append((binding, target_replicas(source, binding.ratio)))
    outcomes = [await _converge(by_name[b.name], b, source, desired) for b, desired in wanted]
    for (binding, desired), (current, event) in zip(wanted, outcomes, strict=True):
        if event is not None:
            result.events.append(event)
        bindings.append(
            {
                "name": binding.name,
                "role": "Target",
                "ratio": str(binding.ratio),
                "desired": desired,
                "current": current,
            }
        )
    result.fields = {
        "currentReplicas": source,
        "readyReplicas": _ready(objects[source_binding.target_id], source_binding),
        "bindings": bindings,
    }
    result.healthy = Healthy(
        "InSync",
        f"{len(strategy.targets)} target(s) follow {source_binding.name} at {source} replicas",
    )
    return result


async def _converge(
    scaler: Scaler, binding: api.Binding, source: int, desired: int
) -> tuple[int, tuple[str, str] | None]:
    """Set the Target to `desired` if it differs; return its replicas as read back, and
    the event that says so."""
    current = await scaler.read()
    if current == desired:
        return current, None
    written = await scaler.write(desired)
    return written, (
        "Scaled",
        f"{binding.name} ({scaler.member.describe()}): {current} -> {desired} "
        f"= ceil({source} x {binding.ratio})",
    )


def _ready(obj: dict[str, Any], source: api.Binding) -> int | None:
    """Ready replicas of a whole-object Source (Deployment/StatefulSet status)."""
    if source.role_name is not None:
        return None
    ready = (obj.get("status") or {}).get("readyReplicas")
    return int(ready) if ready is not None else 0
