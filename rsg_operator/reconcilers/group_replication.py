"""GroupReplication: clone whole template groups; remove exactly the planned ones.

Truth is in the cluster: the seed group is the targets themselves (index 1), every other
group is the set of objects labelled with this RSG's name and a group index and owned
by this RSG. Each reconcile reads them, completes any half-created group (names are
deterministic, so a repeat create is a no-op, never a duplicate), applies the planner's
plan group by group, and reports the groups it sees.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from rsg_operator import api, clone, labels, planner
from rsg_operator.cluster import Cluster
from rsg_operator.kube import AlreadyExists
from rsg_operator.members import entry, member_ready, pod_selector
from rsg_operator.reconcilers.report import Report
from rsg_operator.status import Healthy


@dataclass(frozen=True)
class Rsg:
    namespace: str
    name: str
    uid: str

    @property
    def owner(self) -> clone.Owner:
        return clone.Owner(api.API_VERSION, api.KIND, self.name, self.uid)


Members = dict[str, dict[str, Any]]  # target id -> object


async def reconcile(
    cluster: Cluster,
    spec: api.RSGSpec,
    strategy: api.GroupReplication,
    seed: Members,
    rsg: Rsg,
) -> Report:
    result = Report()
    prefix = strategy.prefix
    seed = {tid: await _label_seed(cluster, obj, rsg, prefix) for tid, obj in seed.items()}
    clones = await _clones(cluster, spec, rsg, prefix, result)
    groups: dict[int, Members] = dict(clones)
    if not _seed_removed(seed):
        groups[labels.SEED_INDEX] = seed

    for index, members in sorted(clones.items()):
        missing = [t for t in spec.targets if t.id not in members]
        if missing:
            await _create_members(cluster, spec, seed, rsg, prefix, index, members, missing)
            result.events.append(
                (
                    "GroupCompleted",
                    f"completed {labels.group_id(prefix, index)}: created "
                    + ", ".join(t.describe() for t in missing),
                )
            )

    existing = {i: planner.Group(i, _created(members)) for i, members in groups.items()}
    plan = planner.plan(
        existing,
        strategy.replicas,
        prefix,
        strategy.scale_down.policy,
        strategy.scale_down.candidates,
    )
    if plan.remove:
        for candidate in plan.ignored_candidates:
            result.warnings.append(
                ("CandidateIgnored", f"scale-down candidate {candidate} is not an existing group")
            )
    for index in plan.remove:
        if index == labels.SEED_INDEX:
            seed = {tid: await _scale_seed_down(cluster, obj) for tid, obj in seed.items()}
        else:
            # A group goes as one: its members are deleted together, not one by one.
            await asyncio.gather(*(cluster.delete(obj) for obj in groups[index].values()))
        del groups[index]
        result.events.append(("GroupRemoved", f"removed {labels.group_id(prefix, index)}"))
    for index in plan.add:
        if index == labels.SEED_INDEX:
            seed = {tid: await _restore_seed(cluster, obj) for tid, obj in seed.items()}
            groups[index] = seed
        else:
            groups[index] = {}
            await _create_members(
                cluster, spec, seed, rsg, prefix, index, groups[index], spec.targets
            )
        result.events.append(("GroupCreated", f"created {labels.group_id(prefix, index)}"))

    rollout = await _roll_out(cluster, seed, rsg, prefix, groups, result)
    result.fields = _status(spec, prefix, seed, groups)
    ready = result.fields["readyReplicas"]
    waiting = [g["id"] for g in result.fields["groups"] if g["phase"] != "Ready"]
    progress = rollout or (f"waiting for {', '.join(waiting)} to become ready" if waiting else None)
    result.healthy = Healthy(
        "GroupsReconciled",
        f"{len(groups)}/{strategy.replicas} groups exist, {ready} ready",
        progress,
    )
    return result


async def _roll_out(
    cluster: Cluster,
    seed: Members,
    rsg: Rsg,
    prefix: str,
    groups: dict[int, Members],
    result: Report,
) -> str | None:
    """Bring clones made from an older seed template up to date, one group at a time.

    A group is updated only when every other group (the seed included, which the user
    changed) has observed its generation and is ready, so a bad template stops after one
    group instead of rolling through the fleet. Returns what is under way, if anything."""
    wanted = {
        index: {tid: _clone(seed, tid, rsg, prefix, index) for tid in members}
        for index, members in groups.items()
        if index != labels.SEED_INDEX
    }
    stale = [
        index
        for index in sorted(wanted)
        if any(clone.outdated(groups[index][tid], obj) for tid, obj in wanted[index].items())
    ]
    if not stale:
        return None
    ids = ", ".join(labels.group_id(prefix, i) for i in stale)
    busy = [i for i in sorted(groups) if i not in stale and not _group_ready(groups[i])]
    if busy:
        waiting = ", ".join(labels.group_id(prefix, i) for i in busy)
        return f"template change: {ids} wait until {waiting} observed it and are ready"
    index = stale[0]
    for tid, obj in wanted[index].items():
        if clone.outdated(groups[index][tid], obj):
            groups[index][tid] = await cluster.replace(clone.updated(groups[index][tid], obj))
    group = labels.group_id(prefix, index)
    result.events.append(("GroupUpdated", f"updated {group} to the seed group's template"))
    return f"template change: updated {group}; waiting for it before {len(stale) - 1} more"


async def release(cluster: Cluster, spec: api.RSGSpec, namespace: str) -> None:
    """On RSG deletion: take RSG's labels off the seed members (clones are collected by
    the garbage collector through their ownerReference)."""
    for target in spec.targets:
        found = await cluster.get(
            target.api_version, target.kind, target.namespace_or(namespace), target.name
        )
        if found is None:
            continue
        present = found["metadata"].get("labels") or {}
        drop = {
            key: None
            for key in (labels.NAME, labels.GROUP_ID, labels.GROUP_INDEX)
            if key in present
        }
        if drop:
            await cluster.merge_patch(found, {"metadata": {"labels": drop}})


# ---------------------------------------------------------------------------- reading


async def _clones(
    cluster: Cluster, spec: api.RSGSpec, rsg: Rsg, prefix: str, result: Report
) -> dict[int, Members]:
    """Every clone of this RSG by group index; objects that are ours but fit no current
    target (a target removed from the spec, a changed prefix) are deleted."""
    groups: dict[int, Members] = {}
    kinds_seen: set[tuple[str, str]] = set()
    for target in spec.targets:
        if (target.api_version, target.kind) in kinds_seen:
            continue
        kinds_seen.add((target.api_version, target.kind))
        for obj in await cluster.labelled(target.api_version, target.kind, rsg.namespace, rsg.name):
            meta = obj["metadata"]
            if meta.get("deletionTimestamp") or not _owned_by(obj, rsg):
                continue
            index = int((meta.get("labels") or {}).get(labels.GROUP_INDEX, "0"))
            owner = next(
                (
                    t
                    for t in spec.targets
                    if t.kind == target.kind
                    and labels.clone_name(prefix, index, t.name) == meta["name"]
                ),
                None,
            )
            if owner is None or index <= labels.SEED_INDEX:
                await cluster.delete(obj)
                result.events.append(
                    (
                        "StrayRemoved",
                        f"deleted {obj['kind']} {meta['name']}, "
                        "which matches no target of the current spec",
                    )
                )
                continue
            groups.setdefault(index, {})[owner.id] = obj
    return groups


def _owned_by(obj: dict[str, Any], rsg: Rsg) -> bool:
    return any(ref.get("uid") == rsg.uid for ref in obj["metadata"].get("ownerReferences") or [])


def _seed_removed(seed: Members) -> bool:
    return any(
        labels.SEED_REPLICAS in (obj["metadata"].get("annotations") or {}) for obj in seed.values()
    )


def _created(members: Members) -> str:
    return min(str(obj["metadata"].get("creationTimestamp") or "") for obj in members.values())


# ---------------------------------------------------------------------------- writing


async def _label_seed(
    cluster: Cluster, obj: dict[str, Any], rsg: Rsg, prefix: str
) -> dict[str, Any]:
    """Seed members get the group labels on their metadata only, never their template."""
    wanted = labels.group_labels(rsg.name, prefix, labels.SEED_INDEX)
    present = obj["metadata"].get("labels") or {}
    if all(present.get(k) == v for k, v in wanted.items()):
        return obj
    return await cluster.merge_patch(obj, {"metadata": {"labels": wanted}})


def _clone(seed: Members, target_id: str, rsg: Rsg, prefix: str, index: int) -> dict[str, Any]:
    """Group `index`'s clone of one seed member."""
    names = {obj["metadata"]["name"] for obj in seed.values()}
    return clone.clone(seed[target_id], rsg.owner, prefix, index, names)


async def _create_members(
    cluster: Cluster,
    spec: api.RSGSpec,
    seed: Members,
    rsg: Rsg,
    prefix: str,
    index: int,
    members: Members,
    targets: tuple[api.Target, ...] | list[api.Target],
) -> None:
    for target in targets:
        obj = _clone(seed, target.id, rsg, prefix, index)
        try:
            members[target.id] = await cluster.create(obj)
        except AlreadyExists:  # created by an earlier, interrupted reconcile
            meta = obj["metadata"]
            found = await cluster.get(obj["apiVersion"], obj["kind"], rsg.namespace, meta["name"])
            found = found or await cluster.fetch(obj)
            members[target.id] = found or obj


async def _scale_seed_down(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    """Seed member -> 0 replicas, recording its counts, in one atomic JSON patch."""
    counts = clone.replica_counts(obj)
    operations: list[dict[str, Any]] = []
    if not obj["metadata"].get("annotations"):
        operations.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    operations.append(
        {
            "op": "add",
            "path": f"/metadata/annotations/{_escape(labels.SEED_REPLICAS)}",
            "value": json.dumps(counts, sort_keys=True),
        }
    )
    for pointer, value in counts.items():
        operations.append({"op": "test", "path": pointer, "value": value})
        operations.append({"op": "replace", "path": pointer, "value": 0})
    return await cluster.json_patch(obj, operations)


async def _restore_seed(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    """Seed member -> its recorded counts, dropping the record, in one atomic JSON patch."""
    annotation = f"/metadata/annotations/{_escape(labels.SEED_REPLICAS)}"
    recorded = (obj["metadata"].get("annotations") or {}).get(labels.SEED_REPLICAS)
    if recorded is None:
        return obj
    operations: list[dict[str, Any]] = [{"op": "test", "path": annotation, "value": recorded}]
    for pointer, value in json.loads(recorded).items():
        operations.append({"op": "replace", "path": pointer, "value": value})
    operations.append({"op": "remove", "path": annotation})
    return await cluster.json_patch(obj, operations)


def _escape(key: str) -> str:
    """A map key as a JSON-pointer token."""
    return key.replace("~", "~0").replace("/", "~1")


# ---------------------------------------------------------------------------- status


def _status(
    spec: api.RSGSpec, prefix: str, seed: Members, groups: dict[int, Members]
) -> dict[str, Any]:
    reported = []
    for index, members in sorted(groups.items()):
        entries = [entry(members[t.id]) for t in spec.targets if t.id in members]
        ready = _group_ready(members) and len(entries) == len(spec.targets)
        reported.append(
            {
                "id": labels.group_id(prefix, index),
                "index": index,
                "phase": "Ready" if ready else "Creating",
                "creationTime": _created(members),
                "members": entries,
            }
        )
    first = seed[spec.targets[0].id]
    return {
        "currentReplicas": len(groups),
        "readyReplicas": sum(1 for g in reported if g["phase"] == "Ready"),
        "labelSelector": pod_selector(first) or "",
        "groups": reported,
    }


def _group_ready(members: Members) -> bool:
    """Every member has observed its latest generation and has its replicas ready."""
    return all(member_ready(obj) for obj in members.values())
