"""GroupReplication: clone whole template groups; remove exactly the planned ones.

Truth is in the cluster: the seed group is the targets themselves (index 1), every other
group is the set of objects labelled with this RSG's name and a group index and owned
(controller ownerReference) by this RSG. A reconcile observes them, lets the planner
decide (planner.decide, pure) and carries the decision out:

- an object RSG would create but that exists without this RSG's controller reference is
  never adopted, counted, changed or deleted: its group waits (Degraded NameConflict);
- a removal is recorded in the RSG's status (the group's phase Deleting) before its
  first write, so an operator that dies half-way finishes it after a restart instead of
  completing the group again; the kinds RSG has cloned are recorded the same way, so
  that clones of a kind later dropped from the spec are still collected;
- a half-created group is completed (names are deterministic: never a duplicate).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rsg_operator import api, clone, labels, planner
from rsg_operator.cluster import Cluster
from rsg_operator.informers import Selection
from rsg_operator.kube import AlreadyExists, Conflict
from rsg_operator.members import entry, member_ready, pod_selector
from rsg_operator.planner import SeedAction
from rsg_operator.reconcilers.report import Report
from rsg_operator.status import Healthy, Problem, Reason

# Writes status fields at once (before the writes they make durable).
Checkpoint = Callable[[dict[str, Any]], Awaitable[None]]
Members = dict[str, dict[str, Any]]  # target id -> object
# Phases of status.groups[] (SPEC §3). SERVING stands for Creating or Ready, which the
# members' readiness decides.
CREATING, READY, DRAINING, DELETING, SERVING = "Creating", "Ready", "Draining", "Deleting", ""
# A drain's deadline is acted on this long after it, so that the clock has passed it.
DEADLINE_SLACK = 0.05


@dataclass(frozen=True)
class Rsg:
    namespace: str
    name: str
    uid: str

    @property
    def owner(self) -> clone.Owner:
        return clone.Owner(api.API_VERSION, api.KIND, self.name, self.uid)


@dataclass(frozen=True)
class Kind:
    """A kind RSG clones, as status.cloneKinds records it."""

    api_version: str
    kind: str

    def record(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind}


def recorded_kinds(stored: dict[str, Any]) -> list[Kind]:
    """The kinds a stored status says this RSG has cloned."""
    return [
        Kind(str(k.get("apiVersion")), str(k.get("kind"))) for k in stored.get("cloneKinds") or []
    ]


def spec_kinds(spec: api.RSGSpec) -> list[Kind]:
    return list(dict.fromkeys(Kind(t.api_version, t.kind) for t in spec.targets))


async def reconcile(
    cluster: Cluster,
    spec: api.RSGSpec,
    strategy: api.GroupReplication,
    seed: Members,
    rsg: Rsg,
    stored: dict[str, Any],
    checkpoint: Checkpoint,
) -> Report:
    """`stored` is the RSG's status as last written: the removals and kinds it records."""
    prefix = strategy.prefix
    found = await _owned(cluster, spec, rsg, prefix, stored)
    if found.other_prefixes:
        return Report(
            problems=[
                Problem(
                    Reason.SPEC_CHANGE_REFUSED,
                    f"groups {', '.join(found.other_prefixes)} were made with another "
                    f"groupNamePrefix than {prefix!r}; RSG does not rename live groups: put "
                    "the prefix back, or create a new RSG and scale this one to 0",
                )
            ]
        )
    result = Report()
    deleting = {
        labels.group_index(prefix, str(g.get("id"))) or 0
        for g in stored.get("groups") or []
        if g.get("phase") == DELETING
    }
    foreign = await _foreign_names(cluster, spec, rsg, prefix, found.clones, strategy)
    now = time.time()
    drains = {
        i: drain
        for i, members in {labels.SEED_INDEX: seed, **found.clones}.items()
        if (drain := _drain_of(members, now)) is not None
    }
    decision = planner.decide(
        planner.Observed(
            targets=tuple(t.id for t in spec.targets),
            seed_created=_created(seed),
            seed_at_zero=frozenset(tid for tid, obj in seed.items() if _at_zero(obj)),
            clones={i: frozenset(members) for i, members in found.clones.items()},
            created={i: _created(members) for i, members in found.clones.items()},
            deleting=frozenset(deleting),
            taken=lambda index, tid: (index, tid) in foreign,
            draining=drains,
            going={i: frozenset(members) for i, members in found.going.items()},
        ),
        strategy.replicas,
        prefix,
        strategy.scale_down.policy,
        strategy.scale_down.candidates,
        strategy.scale_down.drain_timeout_seconds,
        now,
    )

    seed = {tid: await _label_seed(cluster, obj, rsg, prefix) for tid, obj in seed.items()}
    for obj in found.strays:
        await cluster.delete(obj)
        result.events.append(
            (
                "StrayRemoved",
                f"deleted {obj['kind']} {obj['metadata']['name']}, "
                "which matches no target of the current spec",
            )
        )

    # What is about to start is recorded first: the groups to remove, the kinds to clone.
    groups: dict[int, Members] = dict(found.clones)
    groups[labels.SEED_INDEX] = seed
    removing = set(decision.finish_deleting) | set(decision.remove)
    if decision.seed is SeedAction.FINISH_REMOVAL:
        removing.add(labels.SEED_INDEX)
    kinds = list(dict.fromkeys([*found.kinds, *spec_kinds(spec)]))
    intent = {
        "groups": _groups_status(
            spec,
            prefix,
            {**found.going, **groups},
            _phases(decision, removing, found.going),
            decision.draining,
        ),
        "cloneKinds": [k.record() for k in kinds],
    }
    # Also when a recorded removal is over: its index must not look reserved, nor its new
    # group be removed again, after a crash.
    if (removing != deleting or kinds != recorded_kinds(stored)) and _changed(stored, intent):
        await checkpoint(intent)

    for candidate in decision.ignored_candidates:  # only when the list was used
        result.warnings.append(
            ("CandidateIgnored", f"scale-down candidate {candidate} is not an existing group")
        )
    for index in decision.revive:
        groups[index] = await _mark(cluster, groups[index], None)
        result.drains.append("revived")
        result.events.append(
            (
                "GroupRevived",
                f"{labels.group_id(prefix, index)} serves again: it was draining and is wanted "
                "back (no new group made)",
            )
        )
    for index in decision.drain:
        groups[index] = await _mark(cluster, groups[index], now, fresh=True)
        deadline = _rfc3339(decision.draining[index])
        result.events.append(
            (
                "GroupDraining",
                f"draining {labels.group_id(prefix, index)}: removed when a member is annotated "
                f"{labels.DRAINED}={labels.TRUE}, or at {deadline}",
            )
        )
    for index in sorted(set(decision.draining) - set(decision.drain)):
        # A drain a crash interrupted between members: the rest get the label too.
        groups[index] = await _mark(cluster, groups[index], drains[index].started)
    for index in (*decision.finish_deleting, *decision.remove):
        if index == labels.SEED_INDEX:
            seed = {tid: await _scale_seed_down(cluster, obj) for tid, obj in seed.items()}
            groups[index] = seed
        else:
            # A group goes as one: its members are deleted together, not one by one, each
            # after its pods (foreground), so the group is Deleting until they are gone.
            await asyncio.gather(
                *(cluster.delete(obj, foreground=True) for obj in groups[index].values())
            )
            found.going[index] = groups.pop(index)
        group_id = labels.group_id(prefix, index)
        drain = drains.get(index)
        if index in decision.finish_deleting:
            said = f"finished removing {group_id}"
        elif drain is None:
            said = f"removed {group_id}"
        elif drain.acknowledged:
            said = f"removed {group_id}: its drain was acknowledged"
            result.drains.append("acknowledged")
        else:
            said = f"removed {group_id}: its drain deadline passed"
            result.drains.append("deadline")
        result.events.append(("GroupRemoved", said))
    if decision.seed is SeedAction.FINISH_REMOVAL:
        seed = {tid: await _scale_seed_down(cluster, obj) for tid, obj in seed.items()}
        result.events.append(("GroupRemoved", f"finished removing {_seed_id(prefix)}"))
    elif decision.seed is SeedAction.FINISH_RESTORE:
        seed = {tid: await _restore_seed(cluster, obj) for tid, obj in seed.items()}
        result.events.append(("GroupCreated", f"finished restoring {_seed_id(prefix)}"))
    elif decision.seed is SeedAction.ROLL_BACK_REMOVAL:
        seed = {tid: await _restore_seed(cluster, obj) for tid, obj in seed.items()}
        result.events.append(
            (
                "GroupCreated",
                f"rolled back the unfinished removal of {_seed_id(prefix)}: it is wanted "
                "again; its members at 0 were restored, the others kept running",
            )
        )

    for index, missing in sorted(decision.complete.items()):
        targets = [spec.target(tid) for tid in missing]
        await _create_members(cluster, spec, seed, rsg, prefix, index, groups[index], targets)
        result.events.append(
            (
                "GroupCompleted",
                f"completed {labels.group_id(prefix, index)}: created "
                + ", ".join(t.describe() for t in targets),
            )
        )
    for index in decision.add:
        if index == labels.SEED_INDEX:
            seed = {tid: await _restore_seed(cluster, obj) for tid, obj in seed.items()}
        else:
            groups[index] = {}
            await _create_members(
                cluster, spec, seed, rsg, prefix, index, groups[index], spec.targets
            )
        result.events.append(("GroupCreated", f"created {labels.group_id(prefix, index)}"))
    groups[labels.SEED_INDEX] = seed

    live = {i: groups[i] for i in decision.existing if i in groups}
    rollout = await _roll_out(cluster, seed, rsg, prefix, live, result)
    reported = {**found.going, **groups}
    phases = _phases(decision, set(), found.going)
    if labels.SEED_INDEX not in live and _still_running(seed):
        phases[labels.SEED_INDEX] = DELETING  # scaled to 0, its pods are going away
    result.fields = {
        **_status(spec, prefix, seed, reported, phases, decision.draining),
        "cloneKinds": [k.record() for k in kinds if k in spec_kinds(spec) or found.held(k)],
    }
    ready = result.fields["readyReplicas"]
    waiting = [g["id"] for g in result.fields["groups"] if g["phase"] == "Creating"]
    progress = rollout or (f"waiting for {', '.join(waiting)} to become ready" if waiting else None)
    if decision.draining:
        first = min(decision.draining.values())
        ids = ", ".join(labels.group_id(prefix, i) for i in sorted(decision.draining))
        draining = f"draining {ids} (the first deadline: {_rfc3339(first)})"
        progress = f"{progress}; {draining}" if progress else draining
        result.requeue_after = max(first - time.time(), 0.0) + DEADLINE_SLACK
    result.healthy = Healthy(
        "GroupsReconciled",
        f"{len(live)}/{strategy.replicas} groups serve, {ready} ready"
        + (f", {len(decision.draining)} draining" if decision.draining else ""),
        progress,
    )
    if decision.blocked:
        result.problems, result.watch = _name_conflicts(spec, rsg, prefix, decision.blocked)
    return result


def _seed_id(prefix: str) -> str:
    return labels.group_id(prefix, labels.SEED_INDEX)


def _changed(stored: dict[str, Any], fields: dict[str, Any]) -> bool:
    return any(stored.get(key) != value for key, value in fields.items())


def _name_conflicts(
    spec: api.RSGSpec, rsg: Rsg, prefix: str, blocked: Mapping[int, tuple[str, ...]]
) -> tuple[list[Problem], list[Selection]]:
    """NameConflict naming each object that holds a group's name, and the names to watch
    (its deletion frees the group)."""
    problems, watch = [], []
    for index, tids in sorted(blocked.items()):
        for tid in tids:
            target = spec.target(tid)
            name = labels.clone_name(prefix, index, target.name)
            problems.append(
                Problem(
                    Reason.NAME_CONFLICT,
                    f"{target.kind} {rsg.namespace}/{name} exists and is not owned by this "
                    f"RSG: group {labels.group_id(prefix, index)} waits until the name is free "
                    "(RSG never adopts, changes or deletes another owner's object)",
                )
            )
            watch.append(Selection(target.api_version, target.kind, rsg.namespace, name=name))
    return problems, watch


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


async def release(cluster: Cluster, spec: api.RSGSpec, namespace: str, name: str) -> None:
    """On RSG deletion: take this RSG's labels (and a drain's marks) off the seed members;
    clones are collected by the garbage collector through their ownerReference, at once,
    drained or not. Labels another RSG has set since (it took the member over) are left
    alone."""
    for target in spec.targets:
        found = await cluster.get(
            target.api_version, target.kind, target.namespace_or(namespace), target.name
        )
        if found is None:
            continue
        if _meta(found, "labels").get(labels.NAME) != name:
            continue
        await _set_metadata(
            cluster,
            found,
            dict.fromkeys((labels.NAME, labels.GROUP_ID, labels.GROUP_INDEX, labels.DRAINING)),
            dict.fromkeys((labels.DRAIN_STARTED, labels.DRAINED)),
        )


# ---------------------------------------------------------------------------- reading


@dataclass
class Owned:
    """The objects this RSG owns, sorted: clones of the current groups, strays, and the
    ids of groups made with another prefix."""

    clones: dict[int, Members]
    strays: list[dict[str, Any]]
    other_prefixes: list[str]
    kinds: list[Kind]  # every kind looked at: the spec's and the recorded ones
    # Clones being deleted (a deletionTimestamp, their pods going first), by group.
    going: dict[int, Members] = field(default_factory=dict)

    def held(self, kind: Kind) -> bool:
        """Whether any object of `kind` stays ours after this reconcile."""
        return any(
            Kind(obj["apiVersion"], obj["kind"]) == kind
            for groups in (self.clones, self.going)
            for members in groups.values()
            for obj in members.values()
        )


async def _owned(
    cluster: Cluster, spec: api.RSGSpec, rsg: Rsg, prefix: str, stored: dict[str, Any]
) -> Owned:
    """Every object labelled with this RSG's name and owned by it, of every kind it clones
    now or has cloned (status.cloneKinds)."""
    kinds = list(dict.fromkeys([*spec_kinds(spec), *recorded_kinds(stored)]))
    found = Owned({}, [], [], kinds)
    for kind in kinds:
        for obj in await cluster.labelled(kind.api_version, kind.kind, rsg.namespace, rsg.name):
            meta = obj["metadata"]
            if not owned_by(obj, rsg):
                continue
            group = str((meta.get("labels") or {}).get(labels.GROUP_ID, ""))
            index = labels.group_index(prefix, group)
            if index is None and group and group not in found.other_prefixes:
                found.other_prefixes.append(group)
                continue
            target = next(
                (
                    t
                    for t in spec.targets
                    if Kind(t.api_version, t.kind) == kind
                    and index is not None
                    and labels.clone_name(prefix, index, t.name) == meta["name"]
                ),
                None,
            )
            if target is None or index is None or index <= labels.SEED_INDEX:
                if not meta.get("deletionTimestamp"):
                    found.strays.append(obj)
            elif meta.get("deletionTimestamp"):
                found.going.setdefault(index, {})[target.id] = obj
            else:
                found.clones.setdefault(index, {})[target.id] = obj
    return found


async def _foreign_names(
    cluster: Cluster,
    spec: api.RSGSpec,
    rsg: Rsg,
    prefix: str,
    clones: dict[int, Members],
    strategy: api.GroupReplication,
) -> set[tuple[int, str]]:
    """(group index, target id) of every clone name the planner may want that an object
    not owned by this RSG holds: the names of missing clones and of new groups."""
    # Scale-out picks the lowest free indices, so none beyond the highest group + replicas.
    top = max([*clones, labels.SEED_INDEX]) + strategy.replicas
    wanted = set(clones) | set(range(labels.SEED_INDEX + 1, top + 1))
    taken = set()
    for index in sorted(wanted):
        for target in spec.targets:
            if target.id in clones.get(index, {}):
                continue
            name = labels.clone_name(prefix, index, target.name)
            holder = await cluster.get(target.api_version, target.kind, rsg.namespace, name)
            if holder is not None and not owned_by(holder, rsg):
                taken.add((index, target.id))
    return taken


def owned_by(obj: dict[str, Any], rsg: Rsg) -> bool:
    """Whether `obj` has this RSG (this incarnation: its uid) as controller owner."""
    return any(
        ref.get("uid") == rsg.uid and ref.get("controller")
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def _at_zero(obj: dict[str, Any]) -> bool:
    """A seed member taken to 0 with its group carries the record of its counts."""
    return labels.SEED_REPLICAS in (obj["metadata"].get("annotations") or {})


def _created(members: Members) -> str:
    return min(str(obj["metadata"].get("creationTimestamp") or "") for obj in members.values())


# ---------------------------------------------------------------------------- writing


async def _set_metadata(
    cluster: Cluster,
    obj: dict[str, Any],
    wanted_labels: Mapping[str, str | None],
    wanted_annotations: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Labels and annotations to these values (None: removed), in one merge patch of
    what differs; an object already so is not written. Metadata only, never a pod
    template: no pod restarts."""
    patch = {}
    for key, wanted in (("labels", wanted_labels), ("annotations", wanted_annotations or {})):
        present = _meta(obj, key)
        changed = {k: v for k, v in wanted.items() if present.get(k) != v}
        if changed:
            patch[key] = changed
    return await cluster.merge_patch(obj, {"metadata": patch}) if patch else obj


async def _label_seed(
    cluster: Cluster, obj: dict[str, Any], rsg: Rsg, prefix: str
) -> dict[str, Any]:
    """Seed members get the group labels on their metadata only, never their template."""
    return await _set_metadata(
        cluster, obj, labels.group_labels(rsg.name, prefix, labels.SEED_INDEX)
    )


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
    """Create the clones of `targets` in group `index`, one after the other (a crash
    leaves a prefix of them, which the next reconcile completes)."""
    for target in targets:
        obj = _clone(seed, target.id, rsg, prefix, index)
        try:
            members[target.id] = await cluster.create(obj)
        except AlreadyExists:
            # Ours from an interrupted reconcile, or another app's since we looked: read
            # it now, and never take it over.
            held = await cluster.fetch(obj)
            if held is None or not owned_by(held, rsg):
                raise
            if held["metadata"].get("deletionTimestamp"):
                raise Conflict(
                    f"{obj['kind']} {obj['metadata']['name']} is still being deleted", 409
                ) from None
            members[target.id] = held


async def _scale_seed_down(cluster: Cluster, obj: dict[str, Any]) -> dict[str, Any]:
    """Seed member -> 0 replicas, recording its counts, in one atomic JSON patch (a member
    already at 0 with its record is left as it is)."""
    if _at_zero(obj):
        return obj
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
    # The drain it went through is over: its marks go with it.
    for key, present in (
        ("labels", _meta(obj, "labels")),
        ("annotations", _meta(obj, "annotations")),
    ):
        for mark in (labels.DRAINING, labels.DRAIN_STARTED, labels.DRAINED):
            if mark in present:
                operations.append({"op": "remove", "path": f"/metadata/{key}/{_escape(mark)}"})
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


def _phases(
    decision: planner.Decision, removing: set[int], going: Mapping[int, Members]
) -> dict[int, str]:
    """The phase of every group status.groups[] lists: serving ones (Creating or Ready),
    draining ones, and those whose removal is recorded or whose objects are going away."""
    phases = dict.fromkeys(decision.existing, SERVING)
    phases.update(dict.fromkeys(decision.draining, DRAINING))
    phases.update(dict.fromkeys(removing, DELETING))
    # A group whose objects are all going away (one member being replaced does not make
    # a serving group Deleting).
    phases.update((i, DELETING) for i in going if i not in phases)
    return phases


def _groups_status(
    spec: api.RSGSpec,
    prefix: str,
    groups: Mapping[int, Members],
    phases: Mapping[int, str],
    deadlines: Mapping[int, float],
) -> list[dict[str, Any]]:
    """status.groups[], by index: each group `phases` names, a draining one with its
    deadline."""
    reported = []
    for index, members in sorted(groups.items()):
        phase = phases.get(index)
        if phase is None:
            continue
        entries = [entry(members[t.id]) for t in spec.targets if t.id in members]
        if index == labels.SEED_INDEX:
            for member in entries:
                if "podSelector" in member:  # the seed's own pods, not its clones'
                    member["podSelector"] += f",!{labels.GROUP_ID}"
        if phase == SERVING:
            whole = _group_ready(members) and len(entries) == len(spec.targets)
            phase = READY if whole else CREATING
        group = {
            "id": labels.group_id(prefix, index),
            "index": index,
            "phase": phase,
            "creationTime": _created(members),
            "members": entries,
        }
        if phase == DRAINING:
            group["drainDeadline"] = _rfc3339(deadlines[index])
        reported.append(group)
    return reported


def _status(
    spec: api.RSGSpec,
    prefix: str,
    seed: Members,
    groups: Mapping[int, Members],
    phases: Mapping[int, str],
    deadlines: Mapping[int, float],
) -> dict[str, Any]:
    """currentReplicas counts the serving groups only: a draining group is on its way out
    (docs/design.md, "Draining and the HPA")."""
    reported = _groups_status(spec, prefix, groups, phases, deadlines)
    first = seed[spec.targets[0].id]
    return {
        "currentReplicas": sum(1 for g in reported if g["phase"] in (CREATING, READY)),
        "readyReplicas": sum(1 for g in reported if g["phase"] == READY),
        "labelSelector": pod_selector(first) or "",
        "groups": reported,
    }


# ---------------------------------------------------------------------------- draining


def _drain_of(members: Members, now: float) -> planner.Drain | None:
    """The group's drain, if any member carries the draining label: it began at the
    earliest start its members record (now, if none is readable), and is acknowledged
    when any member is annotated drained."""
    marked = [
        obj for obj in members.values() if _meta(obj, "labels").get(labels.DRAINING) == labels.TRUE
    ]
    if not marked:
        return None
    starts = [_parse_time(_meta(obj, "annotations").get(labels.DRAIN_STARTED)) for obj in marked]
    known = [t for t in starts if t is not None]
    acknowledged = any(
        _meta(obj, "annotations").get(labels.DRAINED) == labels.TRUE for obj in members.values()
    )
    return planner.Drain(min(known) if known else now, acknowledged)


async def _mark(
    cluster: Cluster, members: Members, started: float | None, fresh: bool = False
) -> Members:
    """Put a group's members into its drain (`started`), or take them out of it (None).

    A `fresh` drain also drops an acknowledgement left from before it began; a drain
    being completed keeps one."""
    marked: Members = {}
    for tid, obj in members.items():
        if started is None:
            wanted_labels: dict[str, str | None] = {labels.DRAINING: None}
            wanted: dict[str, str | None] = {labels.DRAIN_STARTED: None, labels.DRAINED: None}
        else:
            wanted_labels = {labels.DRAINING: labels.TRUE}
            recorded = _meta(obj, "annotations").get(labels.DRAIN_STARTED)
            wanted = {labels.DRAIN_STARTED: recorded or _rfc3339(started)}
            if fresh:
                wanted |= {labels.DRAIN_STARTED: _rfc3339(started), labels.DRAINED: None}
        marked[tid] = await _set_metadata(cluster, obj, wanted_labels, wanted)
    return marked


def _still_running(seed: Members) -> bool:
    """A seed group scaled to 0 whose members still count pods (they are terminating)."""
    return any(
        _at_zero(obj)
        and any(
            int((obj.get("status") or {}).get(k) or 0) for k in ("replicas", "terminatingReplicas")
        )
        for obj in seed.values()
    )


def _meta(obj: dict[str, Any], key: str) -> dict[str, str]:
    return dict(obj["metadata"].get(key) or {})


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()


def _group_ready(members: Members) -> bool:
    """Every member has observed its latest generation and has its replicas ready."""
    return all(member_ready(obj) for obj in members.values())
