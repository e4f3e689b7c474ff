"""GroupReplication: clone whole template groups; remove exactly the planned ones.

Truth is in the cluster: the seed group is the targets themselves (index 1), every other
group is the set of objects labelled with this RSG's name and a group index and owned
(controller ownerReference) by this RSG. A reconcile observes them (`observe`), lets the
planner decide (planner.decide, pure) and carries the decision out phase by phase
(`PHASES`), in an order that makes every crash point safe:

- an object RSG would create but that exists without this RSG's controller reference is
  never adopted, counted, changed or deleted: its group waits (Degraded NameConflict;
  a partial group that cannot be completed stands as Blocked);
- a removal is recorded in the RSG's status (the group's phase Deleting) before its
  first write, so an operator that dies half-way finishes it after a restart instead of
  completing the group again; the kinds RSG has cloned are recorded the same way, so
  that clones of a kind later dropped from the spec are still collected;
- draining groups are revived before any group is made, and a half-created group is
  completed (names are deterministic: never a duplicate).

Kinds are compared as (API group, kind) throughout (kinds.GroupKind): a target moved to
another served version of its kind keeps its clones.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rsg_operator import api, clone, labels, planner
from rsg_operator.cluster import Cluster
from rsg_operator.informers import Selection
from rsg_operator.kinds import GroupKind
from rsg_operator.kube import AlreadyExists, Conflict, KubeError, UnknownKind
from rsg_operator.members import entry, member_ready, shared_selector
from rsg_operator.planner import SeedAction
from rsg_operator.reconcilers.report import Report
from rsg_operator.status import Healthy, Problem, Reason

# Writes status fields at once (before the writes they make durable).
Checkpoint = Callable[[dict[str, Any]], Awaitable[None]]
Members = dict[str, dict[str, Any]]  # target id -> object
# Phases of status.groups[] (SPEC §3). SERVING stands for Creating or Ready, which the
# members' readiness decides.
CREATING, READY, DRAINING, DELETING, BLOCKED = (
    "Creating",
    "Ready",
    "Draining",
    "Deleting",
    "Blocked",
)
SERVING = ""
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
    """A kind RSG clones, as status.cloneKinds records it: the version it is read
    through, and its identity (API group and kind), by which kinds are compared."""

    api_version: str
    kind: str

    @property
    def id(self) -> GroupKind:
        return GroupKind.of(self.api_version, self.kind)

    def record(self) -> dict[str, str]:
        return {"apiVersion": self.api_version, "kind": self.kind}


def recorded_kinds(stored: dict[str, Any]) -> list[Kind]:
    """The kinds a stored status says this RSG has cloned."""
    return [
        Kind(str(k.get("apiVersion")), str(k.get("kind"))) for k in stored.get("cloneKinds") or []
    ]


def spec_kinds(spec: api.RSGSpec) -> list[Kind]:
    return unique_kinds(Kind(t.api_version, t.kind) for t in spec.targets)


def unique_kinds(found: Any) -> list[Kind]:
    """One Kind per (API group, kind), the first one given winning (so the spec's version,
    listed before the recorded ones, is the one read and written)."""
    kept: dict[GroupKind, Kind] = {}
    for kind in found:
        kept.setdefault(kind.id, kind)
    return list(kept.values())


def all_kinds(spec: api.RSGSpec, stored: dict[str, Any]) -> list[Kind]:
    """Every kind this RSG's clones may be of: the spec's, then those it recorded."""
    return unique_kinds([*spec_kinds(spec), *recorded_kinds(stored)])


# ---------------------------------------------------------------------------- one pass


@dataclass
class Pass:
    """One reconcile: what it observed, what the planner decided, and the groups as the
    phases so far have left them."""

    cluster: Cluster
    spec: api.RSGSpec
    strategy: api.GroupReplication
    rsg: Rsg
    stored: dict[str, Any]  # the status as last written: recorded removals and kinds
    checkpoint: Checkpoint
    now: float
    seed: Members
    found: Owned
    drains: dict[int, planner.Drain]
    decision: planner.Decision
    kinds: list[Kind]  # kinds to record: the spec's and those still cloned
    groups: dict[int, Members] = field(default_factory=dict)  # index -> members, as now
    result: Report = field(default_factory=Report)

    @property
    def prefix(self) -> str:
        return self.strategy.prefix

    def id(self, index: int) -> str:
        return labels.group_id(self.prefix, index)

    @property
    def removing(self) -> set[int]:
        """Groups whose removal this pass records before it begins."""
        removing = {*self.decision.finish_deleting, *self.decision.remove}
        if self.decision.seed is SeedAction.FINISH_REMOVAL:
            removing.add(labels.SEED_INDEX)
        return removing


async def reconcile(
    cluster: Cluster,
    spec: api.RSGSpec,
    strategy: api.GroupReplication,
    seed: Members,
    rsg: Rsg,
    stored: dict[str, Any],
    checkpoint: Checkpoint,
) -> Report:
    """Observe, decide, then run every phase in order; the status of what is now."""
    observed = await observe(cluster, spec, strategy, seed, rsg, stored, checkpoint)
    if isinstance(observed, Report):
        return observed  # refused: nothing written
    for phase in PHASES:
        await phase(observed)
    return await _report(observed)


async def observe(
    cluster: Cluster,
    spec: api.RSGSpec,
    strategy: api.GroupReplication,
    seed: Members,
    rsg: Rsg,
    stored: dict[str, Any],
    checkpoint: Checkpoint,
) -> Pass | Report:
    """Read the groups (from the caches), and let the planner decide. No write."""
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
    groups: dict[int, Members] = {**found.clones, labels.SEED_INDEX: seed}
    kinds = unique_kinds([*spec_kinds(spec), *found.kinds])
    return Pass(
        cluster,
        spec,
        strategy,
        rsg,
        stored,
        checkpoint,
        now,
        seed,
        found,
        drains,
        decision,
        kinds,
        groups,
    )


# ---------------------------------------------------------------------------- phases
#
# Each phase says after which crash it is safe: what the next reconcile finds when the
# operator dies right after one of the phase's writes, and why it does the right thing.


async def label_seed(p: Pass) -> None:
    """The seed members get the group labels (metadata only, idempotent).
    Crash: the next pass labels the rest."""
    p.seed = {
        tid: await _label_seed(p.cluster, obj, p.rsg, p.prefix) for tid, obj in p.seed.items()
    }
    p.groups[labels.SEED_INDEX] = p.seed


async def remove_strays(p: Pass) -> None:
    """Owned objects that match no target of the current spec (a target dropped, a
    group index past the seed's) are deleted.
    Crash: the rest are still strays next time."""
    for obj in p.found.strays:
        await p.cluster.delete(obj)
        p.result.events.append(
            (
                "StrayRemoved",
                f"deleted {obj['kind']} {obj['metadata']['name']}, "
                "which matches no target of the current spec",
            )
        )


async def record_intent(p: Pass) -> None:
    """THE CHECKPOINT: status records the groups whose removal begins now (phase
    Deleting) and the kinds about to be cloned, before any of those writes.
    Crash before it: nothing was begun. Crash after it: a recorded removal is finished,
    never completed again (once begun); clones of a recorded kind are always found."""
    intent = {
        "groups": _groups_status(
            p.spec,
            p.prefix,
            {**p.found.going, **p.groups},
            _phases(p.decision, p.removing, p.found.going),
            p.decision.draining,
        ),
        "cloneKinds": [k.record() for k in p.kinds],
    }
    deleting = {
        labels.group_index(p.prefix, str(g.get("id"))) or 0
        for g in p.stored.get("groups") or []
        if g.get("phase") == DELETING
    }
    # Also when a recorded removal is over: its index must not look reserved, nor its new
    # group be removed again, after a crash.
    if (p.removing != deleting or p.kinds != recorded_kinds(p.stored)) and _changed(
        p.stored, intent
    ):
        await p.checkpoint(intent)
    for candidate in p.decision.ignored_candidates:  # only when the list was used
        p.result.warnings.append(
            ("CandidateIgnored", f"scale-down candidate {candidate} is not an existing group")
        )


async def revive(p: Pass) -> None:
    """Draining groups wanted back serve again (marks removed), before any new group is
    made. Crash: still wanted and still draining next time, or already revived."""
    for index in p.decision.revive:
        p.groups[index] = await _mark(p.cluster, p.groups[index], None)
        p.result.drains.append("revived")
        p.result.events.append(
            (
                "GroupRevived",
                f"{p.id(index)} serves again: it was draining and is wanted back (no new "
                "group made)",
            )
        )


async def drain(p: Pass) -> None:
    """New victims start draining (label and start time on every member); a drain that
    a crash interrupted between members gets the rest, with the same start.
    Crash: the group is draining (one member marked is enough) from its first start."""
    for index in p.decision.drain:
        p.groups[index] = await _mark(p.cluster, p.groups[index], p.now, fresh=True)
        deadline = _rfc3339(p.decision.draining[index])
        p.result.events.append(
            (
                "GroupDraining",
                f"draining {p.id(index)}: removed when a member is annotated "
                f"{labels.DRAINED}={labels.TRUE}, or at {deadline}",
            )
        )
    for index in sorted(set(p.decision.draining) - set(p.decision.drain)):
        p.groups[index] = await _mark(p.cluster, p.groups[index], p.drains[index].started)


async def remove(p: Pass) -> None:
    """Recorded removals are carried out: a clone group's members deleted together,
    each after its pods (foreground); the seed group scaled to 0 with its counts kept.
    Crash: the removal is recorded and has begun, so it is finished next time."""
    for index in (*p.decision.finish_deleting, *p.decision.remove):
        if index == labels.SEED_INDEX:
            p.seed = {tid: await _scale_seed_down(p.cluster, obj) for tid, obj in p.seed.items()}
            p.groups[index] = p.seed
        else:
            await asyncio.gather(
                *(p.cluster.delete(obj, foreground=True) for obj in p.groups[index].values())
            )
            p.found.going[index] = p.groups.pop(index)
        drain = p.drains.get(index)
        if index in p.decision.finish_deleting:
            said = f"finished removing {p.id(index)}"
        elif drain is None:
            said = f"removed {p.id(index)}"
        elif drain.acknowledged:
            said = f"removed {p.id(index)}: its drain was acknowledged"
            p.result.drains.append("acknowledged")
        else:
            said = f"removed {p.id(index)}: its drain deadline passed"
            p.result.drains.append("deadline")
        p.result.events.append(("GroupRemoved", said))


async def settle_seed(p: Pass) -> None:
    """A seed group a crash left half at 0: its recorded removal finished, its restore
    finished, or its removal rolled back (wanted again). No member goes down only to come
    up again. Crash: the members not yet done are still half-way next time."""
    seed_id = p.id(labels.SEED_INDEX)
    action = p.decision.seed
    if action is SeedAction.FINISH_REMOVAL:
        p.seed = {tid: await _scale_seed_down(p.cluster, obj) for tid, obj in p.seed.items()}
        p.result.events.append(("GroupRemoved", f"finished removing {seed_id}"))
    elif action is SeedAction.FINISH_RESTORE:
        p.seed = {tid: await _restore_seed(p.cluster, obj) for tid, obj in p.seed.items()}
        p.result.events.append(("GroupCreated", f"finished restoring {seed_id}"))
    elif action is SeedAction.ROLL_BACK_REMOVAL:
        p.seed = {tid: await _restore_seed(p.cluster, obj) for tid, obj in p.seed.items()}
        p.result.events.append(
            (
                "GroupCreated",
                f"rolled back the unfinished removal of {seed_id}: it is wanted again; its "
                "members at 0 were restored, the others kept running",
            )
        )
    p.groups[labels.SEED_INDEX] = p.seed


async def complete(p: Pass) -> None:
    """Partial groups (a crash between two creates) get their missing clones.
    Crash: the names are deterministic, so the next pass completes, never duplicates."""
    for index, missing in sorted(p.decision.complete.items()):
        targets = [p.spec.target(tid) for tid in missing]
        await _create_members(p, index, p.groups[index], targets)
        p.result.events.append(
            (
                "GroupCompleted",
                f"completed {p.id(index)}: created " + ", ".join(t.describe() for t in targets),
            )
        )


async def add(p: Pass) -> None:
    """New groups: clones created member by member (the seed group: restored).
    Crash: a partial new group is completed next time."""
    for index in p.decision.add:
        if index == labels.SEED_INDEX:
            p.seed = {tid: await _restore_seed(p.cluster, obj) for tid, obj in p.seed.items()}
            p.groups[index] = p.seed
        else:
            p.groups[index] = {}
            await _create_members(p, index, p.groups[index], p.spec.targets)
        p.result.events.append(("GroupCreated", f"created {p.id(index)}"))


async def roll_out(p: Pass) -> None:
    """Clones made from an older seed template are replaced, one group at a time, only
    while every other group is ready. Crash: a group half-updated is the first stale
    group next time, and is finished before any other starts."""
    live = {i: p.groups[i] for i in p.decision.existing if i in p.groups}
    p.result.healthy = Healthy(progressing=await _roll_out(p, live))


# The order is the crash safety: labels, strays, the record, then revivals before
# drains and removals, removals before creations, creations before the rollout.
PHASES: tuple[Callable[[Pass], Awaitable[None]], ...] = (
    label_seed,
    remove_strays,
    record_intent,
    revive,
    drain,
    remove,
    settle_seed,
    complete,
    add,
    roll_out,
)


async def _report(p: Pass) -> Report:
    """The status of the groups as the phases left them."""
    result, decision = p.result, p.decision
    live = {i: p.groups[i] for i in decision.existing if i in p.groups}
    reported = {**p.found.going, **p.groups}
    phases = _phases(decision, set(), p.found.going)
    wanted = {k.id for k in spec_kinds(p.spec)}
    if labels.SEED_INDEX not in live and _still_running(p.seed):
        phases[labels.SEED_INDEX] = DELETING  # scaled to 0, its pods are going away
    result.fields = {
        **_status(p.spec, p.prefix, p.seed, reported, phases, decision.draining),
        "cloneKinds": [k.record() for k in p.kinds if k.id in wanted or p.found.held(k)],
    }
    ready = result.fields["readyReplicas"]
    waiting = [g["id"] for g in result.fields["groups"] if g["phase"] == CREATING]
    rollout = result.healthy.progressing
    progress = rollout or (f"waiting for {', '.join(waiting)} to become ready" if waiting else None)
    if decision.draining:
        first = min(decision.draining.values())
        ids = ", ".join(p.id(i) for i in sorted(decision.draining))
        draining = f"draining {ids} (the first deadline: {_rfc3339(first)})"
        progress = f"{progress}; {draining}" if progress else draining
        result.requeue_after = max(first - time.time(), 0.0) + DEADLINE_SLACK
    extra = [
        *([f"{len(decision.draining)} draining"] if decision.draining else []),
        *([f"{len(decision.stuck)} blocked"] if decision.stuck else []),
    ]
    result.healthy = Healthy(
        "GroupsReconciled",
        f"{len(live)}/{p.strategy.replicas} groups serve, {ready} ready"
        + "".join(f", {e}" for e in extra),
        progress,
    )
    if decision.blocked:
        result.problems, result.watch = _name_conflicts(p, decision.blocked)
    return result


def _changed(stored: dict[str, Any], fields: dict[str, Any]) -> bool:
    return any(stored.get(key) != value for key, value in fields.items())


def _name_conflicts(
    p: Pass, blocked: Mapping[int, tuple[str, ...]]
) -> tuple[list[Problem], list[Selection]]:
    """NameConflict naming each object that holds a group's name, and the names to watch
    (its deletion frees the group)."""
    problems, watch = [], []
    for index, tids in sorted(blocked.items()):
        waits = "stands Blocked" if index in p.decision.stuck else "waits"
        for tid in tids:
            target = p.spec.target(tid)
            name = labels.clone_name(p.prefix, index, target.name)
            problems.append(
                Problem(
                    Reason.NAME_CONFLICT,
                    f"{target.kind} {p.rsg.namespace}/{name} exists and is not owned by this "
                    f"RSG: group {p.id(index)} {waits} until the name is free "
                    "(RSG never adopts, changes or deletes another owner's object)",
                )
            )
            watch.append(Selection(target.api_version, target.kind, p.rsg.namespace, name=name))
    return problems, watch


async def _roll_out(p: Pass, groups: dict[int, Members]) -> str | None:
    """Bring clones made from an older seed template up to date, one group at a time.

    A group is updated only when every other group (the seed included, which the user
    changed) has observed its generation and is ready, so a bad template stops after one
    group instead of rolling through the fleet. Returns what is under way, if anything."""
    wanted: dict[int, Members] = {}
    outdated: dict[int, list[str]] = {}
    for index in sorted(groups):
        if index == labels.SEED_INDEX:
            continue
        for tid, current in groups[index].items():
            made = (current["metadata"].get("annotations") or {}).get(labels.TEMPLATE_HASH)
            if made is not None and made == _wanted_digest(p, tid, index):
                continue  # the common case, without making the clone
            obj = wanted.setdefault(index, {})[tid] = _clone(p.seed, tid, p.rsg, p.prefix, index)
            if await _outdated(p, current, obj):
                outdated.setdefault(index, []).append(tid)
    stale = [index for index, tids in outdated.items() if tids]
    if not stale:
        return None
    ids = ", ".join(p.id(i) for i in stale)
    busy = [i for i in sorted(groups) if i not in stale and not _group_ready(groups[i])]
    if busy:
        waiting = ", ".join(p.id(i) for i in busy)
        return f"template change: {ids} wait until {waiting} observed it and are ready"
    index = stale[0]
    for tid in outdated[index]:
        replacement = clone.updated(groups[index][tid], wanted[index][tid])
        groups[index][tid] = await p.cluster.replace(replacement)
    p.result.events.append(("GroupUpdated", f"updated {p.id(index)} to the seed group's template"))
    return f"template change: updated {p.id(index)}; waiting for it before {len(stale) - 1} more"


async def _outdated(p: Pass, current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """clone.outdated; the kind's served versions are read (discovery, cached) only for a
    clone whose digest is not the version-free one."""
    if not clone.outdated(current, wanted):
        return False
    return clone.outdated(current, wanted, await p.cluster.versions(wanted["apiVersion"]))


async def release(cluster: Cluster, spec: api.RSGSpec, namespace: str, name: str) -> list[str]:
    """On RSG deletion: take this RSG's labels (and a drain's marks) off the seed members;
    clones are collected by the garbage collector through their ownerReference, at once,
    drained or not. Labels another RSG has set since (it took the member over) are left
    alone.

    Returns what could not be released and why: a member whose kind is no longer served
    (its CRD uninstalled first) or that the operator may not write. Those never will be,
    so they do not hold the deletion up; a failure that may pass (the API server
    unavailable, a conflict) is raised, and the release is tried again."""
    unreleased = []
    for target in spec.targets:
        where = f"{target.describe()} in {target.namespace_or(namespace)}"
        try:
            found = await cluster.get(
                target.api_version, target.kind, target.namespace_or(namespace), target.name
            )
            if found is None or _meta(found, "labels").get(labels.NAME) != name:
                continue
            await _set_metadata(
                cluster,
                found,
                dict.fromkeys((labels.NAME, labels.GROUP_ID, labels.GROUP_INDEX, labels.DRAINING)),
                dict.fromkeys((labels.DRAIN_STARTED, labels.DRAINED)),
            )
        except UnknownKind as error:
            unreleased.append(f"{where}: {error}")
        except KubeError as error:
            if error.status not in (401, 403, 404, 422):
                raise
            unreleased.append(f"{where}: {error}")
    return unreleased


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
            GroupKind.of(obj["apiVersion"], obj["kind"]) == kind.id
            for groups in (self.clones, self.going)
            for members in groups.values()
            for obj in members.values()
        )


async def _owned(
    cluster: Cluster, spec: api.RSGSpec, rsg: Rsg, prefix: str, stored: dict[str, Any]
) -> Owned:
    """Every object labelled with this RSG's name and owned by it, of every kind it clones
    now or has cloned (status.cloneKinds)."""
    kinds = all_kinds(spec, stored)
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
                    if GroupKind.of(t.api_version, t.kind) == kind.id
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


# (seed member's uid, resourceVersion and apiVersion, RSG, prefix, group index, seed
# names) -> the digest that group's clone of it carries when current. Bounded: the least
# recently used go first.
_DIGESTS: OrderedDict[tuple[str, ...], str] = OrderedDict()
DIGEST_MEMORY = 50_000


def _wanted_digest(p: Pass, target_id: str, index: int) -> str:
    """The template digest group `index`'s clone of a seed member carries when it is up
    to date, remembered per seed state (a resourceVersion names one content): a reconcile
    compares a digest per clone instead of making each clone again (two deep copies and
    a hash: 70% of a 500-group RSG's reconcile, profiled in bench/grove.py's run)."""
    member = p.seed[target_id]
    meta = member["metadata"]
    uid, version = meta.get("uid"), meta.get("resourceVersion")
    names = sorted(obj["metadata"]["name"] for obj in p.seed.values())
    # Its apiVersion too: one state read through two versions is two contents.
    key = (str(uid), str(version), str(member.get("apiVersion")), p.rsg.uid, p.rsg.name)
    key += (p.prefix, str(index), *names)
    digest = _DIGESTS.get(key) if uid and version else None
    if digest is None:
        made = _clone(p.seed, target_id, p.rsg, p.prefix, index)
        digest = str(made["metadata"]["annotations"][labels.TEMPLATE_HASH])
        if uid and version:
            _DIGESTS[key] = digest
            if len(_DIGESTS) > DIGEST_MEMORY:
                _DIGESTS.popitem(last=False)
    else:
        _DIGESTS.move_to_end(key)
    return digest


def _clone(seed: Members, target_id: str, rsg: Rsg, prefix: str, index: int) -> dict[str, Any]:
    """Group `index`'s clone of one seed member."""
    names = {obj["metadata"]["name"] for obj in seed.values()}
    return clone.clone(seed[target_id], rsg.owner, prefix, index, names)


async def _create_members(
    p: Pass,
    index: int,
    members: Members,
    targets: tuple[api.Target, ...] | list[api.Target],
) -> None:
    """Create the clones of `targets` in group `index`, one after the other (a crash
    leaves a prefix of them, which the next reconcile completes)."""
    cluster, rsg = p.cluster, p.rsg
    for target in targets:
        obj = _clone(p.seed, target.id, rsg, p.prefix, index)
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
    phases.update(dict.fromkeys(decision.stuck, BLOCKED))
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
    first = spec.targets[0].id
    firsts = [seed[first], *(m[first] for _, m in sorted(groups.items()) if first in m)]
    return {
        "currentReplicas": sum(1 for g in reported if g["phase"] in (CREATING, READY)),
        "readyReplicas": sum(1 for g in reported if g["phase"] == READY),
        "labelSelector": shared_selector(firsts) or "",
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
    """A seed group scaled to 0 whose members still count pods (they are terminating):
    a workload's status counts, an RBG's per role (found by review: an RBG seed's group
    vanished from status while its roles still ran pods)."""
    return any(_at_zero(obj) and _counts_pods(obj) for obj in seed.values())


def _counts_pods(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if any(int(status.get(k) or 0) for k in ("replicas", "terminatingReplicas")):
        return True
    return any(int(role.get("replicas") or 0) for role in status.get("roleStatuses") or [])


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
