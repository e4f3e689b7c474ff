"""What RSG reports and judges of a group's member objects: their pod selector, their
replica counts and whether their rollout is complete. Pure.

Counts come from where each kind keeps them (kinds.LAYOUTS): a Deployment, StatefulSet
or LeaderWorkerSet in spec.replicas and status.{replicas,updatedReplicas,readyReplicas};
a RoleBasedGroup per role, in spec.roles[].replicas and status.roleStatuses[].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsg_operator import kinds

Object = dict[str, Any]


@dataclass(frozen=True)
class Counts:
    replicas: int  # desired
    ready: int
    complete: bool  # every desired replica runs the latest template, no older one left


def pod_selector(obj: Object) -> str | None:
    """The member's pod selector as a label-selector string."""
    layout = kinds.layout(obj["apiVersion"], obj["kind"])
    if layout.name_labels:
        version = obj["apiVersion"].rpartition("/")[2]
        label = dict(layout.name_labels).get(version, layout.name_labels[-1][1])
        return f"{label}={obj['metadata']['name']}"
    if layout.selector is None:
        return None
    node: Any = obj
    for key in layout.selector:
        node = (node or {}).get(key)
    if not node:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(node.items()))


def shared_selector(objs: list[Object]) -> str | None:
    """A selector of the pods of these objects (one member, in each of its groups): the
    member's own selector where the clones keep it (a Deployment's), or, for a kind
    whose pods are selected by its name (a RoleBasedGroup: each group's has its own),
    the set of their names (found by review: the seed's name alone matched one group's
    pods, and an HPA on the RSG saw one group whatever the count)."""
    if not objs:
        return None
    first = objs[0]
    layout = kinds.layout(first["apiVersion"], first["kind"])
    if not layout.name_labels:
        return pod_selector(first)
    label = pod_selector(first)
    assert label is not None
    key = label.partition("=")[0]
    names = sorted({str(obj["metadata"]["name"]) for obj in objs})
    return f"{key} in ({','.join(names)})"


def counts(obj: Object) -> Counts | None:
    """Desired and ready replicas of a member, None for a kind without replicas."""
    layout = kinds.layout(obj["apiVersion"], obj["kind"])
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if layout.role_statuses:
        return _role_counts(spec, status)
    if not layout.replicas or "replicas" not in spec:
        return None
    wanted = int(spec["replicas"])
    complete = True
    if layout.reports_updates:
        # Counts of 0 are omitted from status: absent means 0, not "unknown".
        updated = int(status.get("updatedReplicas", 0))
        complete = updated >= wanted and int(status.get("replicas", 0)) <= updated
    return Counts(wanted, int(status.get("readyReplicas") or 0), complete)


def _role_counts(spec: dict[str, Any], status: dict[str, Any]) -> Counts:
    """A RoleBasedGroup: the sum over its roles; complete when every role is."""
    reported = {str(s.get("name")): s for s in status.get("roleStatuses") or []}
    wanted = ready = 0
    complete = True
    for role in spec.get("roles") or []:
        replicas = int(role.get("replicas", 1))  # RBG's default
        seen = reported.get(str(role.get("name")), {})
        role_ready = int(seen.get("readyReplicas") or 0)
        wanted += replicas
        ready += min(role_ready, replicas)
        complete = complete and int(seen.get("updatedReplicas") or 0) >= replicas
        complete = complete and role_ready >= replicas
    return Counts(wanted, ready, complete)


def entry(obj: Object) -> dict[str, Any]:
    """The member as status.groups[].members lists it."""
    found: dict[str, Any] = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
    }
    pods = pod_selector(obj)
    if pods:
        found["podSelector"] = pods
    replicas = counts(obj)
    if replicas is not None:
        found["replicas"] = replicas.replicas
        found["readyReplicas"] = replicas.ready
    return found


def member_ready(obj: Object) -> bool:
    """Its rollout is complete (as `kubectl rollout status` judges it): the latest
    generation is observed, every replica runs the latest template, no older replica is
    left, and all are ready. A member without replicas (Service, ConfigMap) is ready."""
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is not None and observed < obj["metadata"].get("generation", 0):
        return False
    replicas = counts(obj)
    return replicas is None or (replicas.complete and replicas.ready >= replicas.replicas)


@dataclass(frozen=True)
class Running:
    """What a workload reports it runs (its status), as opposed to what its spec asks."""

    replicas: int
    ready: int
    # The status is of the object's latest generation (observedGeneration), so a count
    # that differs from the spec is not merely a status yet to be written.
    current: bool


def running(obj: Object, role: str | None = None) -> Running | None:
    """What runs of a member (a role of it, for a RoleBasedGroup), from its status; None
    where the status says nothing RSG can read (no status yet, a role not reported)."""
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    current = observed is not None and int(observed) >= int(obj["metadata"].get("generation") or 0)
    if role is not None:
        for reported in status.get("roleStatuses") or []:
            if reported.get("name") == role:
                return Running(
                    int(reported.get("replicas") or 0),
                    int(reported.get("readyReplicas") or 0),
                    current,
                )
        return None
    if not status:
        return None
    # Counts of 0 are omitted from status: absent means 0.
    return Running(int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0), current)
