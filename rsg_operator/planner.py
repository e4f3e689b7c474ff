"""The scale-down planner and scale-out filler (SPEC §3). Pure, shared by both modes.

Which groups to add: the lowest free indices, skipping ids still listed as candidates.
Which to remove (victims): the existing
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
    first: Collection[int] = (),
) -> Plan:
    """Groups to add or remove so that `desired` groups exist. Scale-out never picks a
    `reserved` index (a group still being deleted) nor one still listed in
    `candidates`: a stale candidate must never remove a group made after it was named.
    Scale-in removes the groups in `first` (blocked ones, which serve nothing) before
    any other."""
    candidates = tuple(candidates)
    named = {i for c in candidates if (i := labels.group_index(prefix, c)) is not None}
    ignored = tuple(c for c in candidates if labels.group_index(prefix, c) not in existing)
    if desired >= len(existing):
        add = _free_indices(existing, desired - len(existing), {*reserved, *named})
        return Plan(add=add, ignored_candidates=ignored)
    return Plan(
        remove=victims(existing, len(existing) - desired, prefix, policy, candidates, first),
        ignored_candidates=ignored,
    )


def victims(
    existing: Mapping[int, Group],
    count: int,
    prefix: str,
    policy: ScaleDownPolicy,
    candidates: Iterable[str],
    first: Collection[int] = (),
) -> tuple[int, ...]:
    """`count` existing groups to remove, in removal order: those in `first` (in policy
    order), then candidates, then by policy."""
    chosen = [
        g.index for g in _in_policy_order((existing[i] for i in first if i in existing), policy)
    ]
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
class Drain:
    """A group being drained (its members carry the draining label): when the drain
    began (epoch seconds, the earliest its members record) and whether the gateway has
    acknowledged it (a member annotated drained)."""

    started: float
    acknowledged: bool = False


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
    draining: Mapping[int, Drain] = field(default_factory=dict)
    # group index -> target ids of its clones that are being deleted (still there, with a
    # deletionTimestamp): their names are not free yet.
    going: Mapping[int, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """What a reconcile does to the groups, in order."""

    seed: SeedAction | None = None  # finishing an interrupted seed removal or restore
    finish_deleting: tuple[int, ...] = ()  # recorded removals to finish (never completed)
    complete: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # missing clones
    # Removed now (recorded as Deleting first): victims when there is no drain, and
    # drained groups (acknowledged, or past their deadline).
    remove: tuple[int, ...] = ()
    drain: tuple[int, ...] = ()  # new victims: marked draining, removed later
    revive: tuple[int, ...] = ()  # draining groups wanted again: back to serving
    add: tuple[int, ...] = ()  # new groups (the seed: restored)
    # Groups that wait for a name another app's object holds -> the targets named so:
    # new groups not made, and partial groups that cannot be completed.
    blocked: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    # Partial groups that cannot be completed and stay (phase Blocked): counted toward
    # the desired number, serving nothing, removed first on scale-in.
    stuck: tuple[int, ...] = ()
    # Candidates naming no group at all (serving, draining or going away), when the list
    # was used to pick new victims: the ones to warn about.
    ignored_candidates: tuple[str, ...] = ()
    existing: tuple[int, ...] = ()  # serving groups once the decision is carried out
    # Groups draining once the decision is carried out -> their deadline (epoch seconds).
    draining: Mapping[int, float] = field(default_factory=dict)


def decide(
    observed: Observed,
    desired: int,
    prefix: str,
    policy: ScaleDownPolicy = ScaleDownPolicy.ORDERED,
    candidates: Iterable[str] = (),
    drain_timeout: float = 0,
    now: float = 0.0,
) -> Decision:
    """Whole groups, through crashes, drains and other apps' objects (SPEC §3).

    - A group whose removal was recorded and has begun is finished, never completed;
      its index is not reused until it is gone (nor while its objects are being
      deleted). One whose removal has not begun (a crash right after the record) is
      whole, and judged afresh: a group wanted back meanwhile is kept. The seed
      group likewise: members at 0 beside members not at 0 finish the removal if it was
      recorded, else the restore. No member goes down only to come up again, or up only
      to go down: a half-restored seed that the planner removes now is not restored
      first, and a half-removed seed that the planner wants back has its removal rolled
      back.
    - A group with missing clones is completed, unless another app's object holds the
      name of one: then the group stands as it is (stuck, phase Blocked) until the name
      is free. It counts toward `desired` (its index is not reused) but does not serve,
      and it is the first victim of a scale-in, removed at once (never drained). A new
      group whose names are taken is not created.
    - Draining groups do not count toward `desired`. When more groups are wanted, they
      are revived first (the one the planner would remove last comes back first), and
      only then are new groups made. A drain ends at the gateway's acknowledgement or
      at `started + drain_timeout`, whichever is first: the group is then removed.
    - The planner picks victims and new groups among the serving rest; with a drain
      timeout the victims are drained, without one they are removed at once.
    """
    targets = frozenset(observed.targets)
    seed: SeedAction | None = None
    seed_exists = not observed.seed_at_zero
    if observed.seed_at_zero and observed.seed_at_zero != targets:
        removing = labels.SEED_INDEX in observed.deleting
        seed = SeedAction.FINISH_REMOVAL if removing else SeedAction.FINISH_RESTORE
        seed_exists = not removing
    existing: dict[int, Group] = {}
    draining: dict[int, Group] = {}
    if seed_exists:
        group = Group(labels.SEED_INDEX, observed.seed_created)
        (draining if labels.SEED_INDEX in observed.draining else existing)[group.index] = group
    # A recorded removal that has not begun (every member there, none being deleted)
    # left nothing half-done: the group is judged afresh, as if never recorded.
    finishing = tuple(
        sorted(
            i
            for i, present in observed.clones.items()
            if i in observed.deleting and (present != targets or i in observed.going)
        )
    )
    complete: dict[int, tuple[str, ...]] = {}
    blocked: dict[int, tuple[str, ...]] = {}
    stuck: dict[int, Group] = {}
    for index, present in sorted(observed.clones.items()):
        if index in finishing:
            continue
        if index in observed.draining:  # going away: neither completed nor blocked
            draining[index] = Group(index, observed.created[index])
            continue
        going = observed.going.get(index, frozenset())
        missing = tuple(t for t in observed.targets if t not in present and t not in going)
        taken = tuple(t for t in missing if observed.taken(index, t))
        if taken:
            blocked[index] = taken
            stuck[index] = Group(index, observed.created[index])
            continue
        if missing:
            complete[index] = missing
        existing[index] = Group(index, observed.created[index])
    reserved = {*finishing, *draining, *(i for i in observed.going if i not in observed.clones)}
    known = {*existing, *stuck, *reserved}  # every group there is, for the candidates' sake
    chosen = plan(
        {**existing, **stuck}, desired, prefix, policy, candidates, reserved=reserved, first=stuck
    )
    candidates = tuple(candidates)
    unstuck = tuple(i for i in chosen.remove if i in stuck)  # removed at once, not drained
    removed = tuple(i for i in chosen.remove if i not in stuck)

    # Draining groups come back before any new group is made.
    comeback = tuple(reversed(victims(draining, len(draining), prefix, policy, candidates)))
    revive = comeback[: len(chosen.add)]
    new = chosen.add[: len(chosen.add) - len(revive)]
    existing.update((i, draining.pop(i)) for i in revive)

    if seed is SeedAction.FINISH_RESTORE and labels.SEED_INDEX in removed:
        seed = None
    if seed is SeedAction.FINISH_REMOVAL and labels.SEED_INDEX in new:
        seed = SeedAction.ROLL_BACK_REMOVAL
        existing[labels.SEED_INDEX] = Group(labels.SEED_INDEX, observed.seed_created)
        new = tuple(i for i in new if i != labels.SEED_INDEX)
    add = []
    for index in new:
        taken = tuple(t for t in observed.targets if observed.taken(index, t))
        if index != labels.SEED_INDEX and (taken or index in blocked):
            blocked[index] = taken or blocked[index]
        else:
            add.append(index)

    drained, still = [], {}
    for index in sorted(draining):
        drain = observed.draining[index]
        deadline = drain.started + drain_timeout
        if drain.acknowledged or now >= deadline:
            drained.append(index)
        else:
            still[index] = deadline
    drain_now = removed if drain_timeout > 0 else ()
    still.update((i, now + drain_timeout) for i in drain_now)
    kept = set(existing) - set(removed)
    return Decision(
        seed=seed,
        finish_deleting=finishing,
        complete={i: m for i, m in complete.items() if i in kept},
        remove=(*drained, *unstuck, *(() if drain_now else removed)),
        drain=drain_now,
        revive=revive,
        add=tuple(add),
        blocked={i: t for i, t in blocked.items() if i not in unstuck},
        stuck=tuple(i for i in sorted(stuck) if i not in unstuck),
        ignored_candidates=tuple(
            c
            for c in chosen.ignored_candidates
            if chosen.remove and labels.group_index(prefix, c) not in known
        ),
        existing=tuple(sorted(kept | set(add))),
        draining=still,
    )
