"""The scale-down planner and scale-out filler (SPEC §3). Pure, shared by both modes.

Which groups to add: the lowest free indices. Which to remove (victims): the existing
`candidates` first, in list order; then by policy — Ordered: highest index first,
Newest: latest created first, Oldest: earliest created first — with ties by index
(higher first for Ordered/Newest, lower first for Oldest).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from rsg_operator import labels
from rsg_operator.api import ScaleDownPolicy


@dataclass(frozen=True)
class Group:
    """An existing group: its index and when it was created (RFC 3339, sortable)."""

    index: int
    created: str


@dataclass(frozen=True)
class Plan:
    add: tuple[int, ...] = ()
    remove: tuple[int, ...] = ()  # victims, in removal order
    ignored_candidates: tuple[str, ...] = ()  # named but not existing


def plan(
    existing: Mapping[int, Group],
    desired: int,
    prefix: str,
    policy: ScaleDownPolicy = ScaleDownPolicy.ORDERED,
    candidates: Iterable[str] = (),
    reserved: Collection[int] = (),
) -> Plan:
    """Groups to add or remove so that `desired` groups exist; scale-out never picks a
    `reserved` index (a group still being deleted)."""
    candidates = tuple(candidates)
    ignored = tuple(c for c in candidates if labels.group_index(prefix, c) not in existing)
    if desired >= len(existing):
        add = _free_indices(existing, desired - len(existing), reserved)
        return Plan(add=add, ignored_candidates=ignored)
    return Plan(
        remove=victims(existing, len(existing) - desired, prefix, policy, candidates),
        ignored_candidates=ignored,
    )


def victims(
    existing: Mapping[int, Group],
    count: int,
    prefix: str,
    policy: ScaleDownPolicy,
    candidates: Iterable[str],
) -> tuple[int, ...]:
    """`count` existing groups to remove, candidates first, in removal order."""
    chosen: list[int] = []
    for candidate in candidates:
        index = labels.group_index(prefix, candidate)
        if index is not None and index in existing and index not in chosen:
            chosen.append(index)
    rest = _in_policy_order((g for i, g in existing.items() if i not in chosen), policy)
    chosen += [g.index for g in rest]
    return tuple(chosen[:count])


def _in_policy_order(groups: Iterable[Group], policy: ScaleDownPolicy) -> list[Group]:
    if policy is ScaleDownPolicy.NEWEST:
        return sorted(groups, key=lambda g: (g.created, g.index), reverse=True)
    if policy is ScaleDownPolicy.OLDEST:
        return sorted(groups, key=lambda g: (g.created, g.index))
    return sorted(groups, key=lambda g: g.index, reverse=True)


def _free_indices(
    existing: Mapping[int, Group], count: int, reserved: Collection[int] = ()
) -> tuple[int, ...]:
    free: list[int] = []
    index = labels.SEED_INDEX
    while len(free) < count:
        if index not in existing and index not in reserved:
            free.append(index)
        index += 1
    return tuple(free)


# ---------------------------------------------------------------------------- decide


class SeedAction(StrEnum):
    FINISH_REMOVAL = "finish-removal"  # some members are at 0, the removal was recorded
    FINISH_RESTORE = "finish-restore"  # some members are at 0, no removal was recorded
    # A recorded removal stopped half-way, and the seed group is wanted again: the
    # members at 0 are restored, the others left running (not taken down and up).
    ROLL_BACK_REMOVAL = "roll-back-removal"


@dataclass(frozen=True)
class Observed:
    """A GroupReplication RSG's groups as a reconcile found them."""

    targets: tuple[str, ...]  # target ids, in spec order
    seed_created: str
    seed_at_zero: frozenset[str]  # seed members carrying the seed-replicas record
    clones: Mapping[int, frozenset[str]]  # group index -> target ids of its clones (ours)
    created: Mapping[int, str]  # group index -> creation time of its oldest clone
    deleting: frozenset[int]  # groups whose removal was recorded (status phase Deleting)
    taken: Callable[[int, str], bool]  # (index, target id): a foreign object has the name


@dataclass(frozen=True)
class Decision:
    """What a reconcile does to the groups, in order."""

    seed: SeedAction | None = None  # finishing an interrupted seed removal or restore
    finish_deleting: tuple[int, ...] = ()  # recorded removals to finish (never completed)
    complete: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # missing clones
    remove: tuple[int, ...] = ()  # new victims: recorded as Deleting, then removed
    add: tuple[int, ...] = ()  # new groups (the seed: restored)
    blocked: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # names taken
    ignored_candidates: tuple[str, ...] = ()
    existing: tuple[int, ...] = ()  # groups that exist once the decision is carried out


def decide(
    observed: Observed,
    desired: int,
    prefix: str,
    policy: ScaleDownPolicy = ScaleDownPolicy.ORDERED,
    candidates: Iterable[str] = (),
) -> Decision:
    """Whole groups, through crashes and other apps' objects (SPEC §3).

    - A group whose removal was recorded is finished, never completed; its index is
      not reused until it is gone. The seed group likewise: members at 0 beside
      members not at 0 finish the removal if it was recorded, else the restore. No
      member goes down only to come up again, or up only to go down: a half-restored
      seed that the planner removes now is not restored first, and a half-removed seed
      that the planner wants back has its removal rolled back.
    - A group with missing clones is completed, unless another app's object holds the
      name of one: then the group is left as it is (blocked) until the name is free; it
      does not count as existing. A new group whose names are taken is not created.
    - The planner picks victims and new groups among the rest.
    """
    targets = frozenset(observed.targets)
    seed: SeedAction | None = None
    seed_exists = not observed.seed_at_zero
    if observed.seed_at_zero and observed.seed_at_zero != targets:
        removing = labels.SEED_INDEX in observed.deleting
        seed = SeedAction.FINISH_REMOVAL if removing else SeedAction.FINISH_RESTORE
        seed_exists = not removing
    existing: dict[int, Group] = {}
    if seed_exists:
        existing[labels.SEED_INDEX] = Group(labels.SEED_INDEX, observed.seed_created)
    finishing = tuple(sorted(i for i in observed.clones if i in observed.deleting))
    complete: dict[int, tuple[str, ...]] = {}
    blocked: dict[int, tuple[str, ...]] = {}
    for index, present in sorted(observed.clones.items()):
        if index in observed.deleting:
            continue
        missing = tuple(t for t in observed.targets if t not in present)
        taken = tuple(t for t in missing if observed.taken(index, t))
        if taken:
            blocked[index] = taken
            continue
        if missing:
            complete[index] = missing
        existing[index] = Group(index, observed.created[index])
    chosen = plan(existing, desired, prefix, policy, candidates, reserved=finishing)
    if seed is SeedAction.FINISH_RESTORE and labels.SEED_INDEX in chosen.remove:
        seed = None
    if seed is SeedAction.FINISH_REMOVAL and labels.SEED_INDEX in chosen.add:
        seed = SeedAction.ROLL_BACK_REMOVAL
        existing[labels.SEED_INDEX] = Group(labels.SEED_INDEX, observed.seed_created)
        chosen = Plan(
            add=tuple(i for i in chosen.add if i != labels.SEED_INDEX),
            ignored_candidates=chosen.ignored_candidates,
        )
    add = []
    for index in chosen.add:
        taken = tuple(t for t in observed.targets if observed.taken(index, t))
        if index != labels.SEED_INDEX and (taken or index in blocked):
            blocked[index] = taken or blocked[index]
        else:
            add.append(index)
    kept = set(existing) - set(chosen.remove)
    return Decision(
        seed=seed,
        finish_deleting=finishing,
        complete={i: m for i, m in complete.items() if i in kept},
        remove=chosen.remove,
        add=tuple(add),
        blocked=blocked,
        ignored_candidates=chosen.ignored_candidates,
        existing=tuple(sorted(kept | set(add))),
    )
