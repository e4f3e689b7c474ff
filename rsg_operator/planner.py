"""The scale-down planner and scale-out filler (SPEC §3). Pure, shared by both modes.

Which groups to add: the lowest free indices. Which to remove (victims): the existing
`candidates` first, in list order; then by policy — Ordered: highest index first,
Newest: latest created first, Oldest: earliest created first — with ties by index
(higher first for Ordered/Newest, lower first for Oldest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
) -> Plan:
    """Groups to add or remove so that `desired` groups exist."""
    candidates = tuple(candidates)
    ignored = tuple(c for c in candidates if labels.group_index(prefix, c) not in existing)
    if desired >= len(existing):
        return Plan(
            add=_free_indices(existing, desired - len(existing)), ignored_candidates=ignored
        )
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


def _free_indices(existing: Mapping[int, Group], count: int) -> tuple[int, ...]:
    free: list[int] = []
    index = labels.SEED_INDEX
    while len(free) < count:
        if index not in existing:
            free.append(index)
        index += 1
    return tuple(free)
