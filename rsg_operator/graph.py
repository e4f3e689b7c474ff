"""Rules across RSGs (SPEC §4): a member is a Target of at most one RSG, and the
Source->Target edges of all RSGs form a DAG. Pure.

The validating webhook will refuse violations at admission; until then (and whenever it
is absent) the controller finds them here and stops the RSG with Degraded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rsg_operator.api import Member
from rsg_operator.status import Problem, Reason

RsgKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Claim:
    """The Source->Target edges one InplaceScaling RSG declares."""

    rsg: RsgKey
    created: str  # metadata.creationTimestamp; the older claim keeps a contested Target
    source: Member
    targets: tuple[Member, ...]

    @property
    def seniority(self) -> tuple[str, RsgKey]:
        return (self.created, self.rsg)


def problems(mine: Claim, claims: Iterable[Claim]) -> list[Problem]:
    """What keeps `mine` from acting, given every RSG's claim (its own included or not)."""
    others = [c for c in claims if c.rsg != mine.rsg]
    found = []
    for target in mine.targets:
        for other in others:
            contested = any(t.identity == target.identity for t in other.targets)
            if contested and other.seniority < mine.seniority:
                found.append(
                    Problem(
                        Reason.TARGET_CONFLICT,
                        f"{target.describe()} is already a Target of RSG "
                        f"{other.rsg[0]}/{other.rsg[1]}; a resource follows one Source only",
                    )
                )
    cycle = _cycle_through(mine, [mine, *others])
    if cycle:
        found.append(
            Problem(
                Reason.SOURCE_TARGET_CYCLE,
                "Source->Target bindings form a cycle: " + " -> ".join(m.describe() for m in cycle),
            )
        )
    return found


def _cycle_through(mine: Claim, claims: list[Claim]) -> list[Member] | None:
    """A path target -> ... -> source of one of mine's edges, closed into a cycle."""
    edges: dict[tuple[object, ...], list[Member]] = {}
    members: dict[tuple[object, ...], Member] = {}
    for claim in claims:
        members[claim.source.identity] = claim.source
        for target in claim.targets:
            edges.setdefault(claim.source.identity, []).append(target)
            members[target.identity] = target
    for target in mine.targets:
        path = _path(target.identity, mine.source.identity, edges, members)
        if path is not None:
            return [mine.source, *path]
    return None


def _path(
    start: tuple[object, ...],
    goal: tuple[object, ...],
    edges: Mapping[tuple[object, ...], list[Member]],
    members: Mapping[tuple[object, ...], Member],
) -> list[Member] | None:
    """Members from start to goal along edges (breadth-first), or None."""
    previous: dict[tuple[object, ...], tuple[object, ...] | None] = {start: None}
    queue = [start]
    while queue:
        node = queue.pop(0)
        if node == goal:
            path = []
            step: tuple[object, ...] | None = node
            while step is not None:
                path.append(members[step])
                step = previous[step]
            return list(reversed(path))
        for nxt in edges.get(node, []):
            if nxt.identity not in previous:
                previous[nxt.identity] = node
                queue.append(nxt.identity)
    return None


Identity = tuple[object, ...]


class ClaimIndex:
    """Every InplaceScaling RSG's claim, indexed by the members it names, so that a
    reconcile checks only the claims its own is connected to (its component: RSGs that
    share a member with it, and those that share one with them, ...), and a changed
    claim wakes only the RSGs whose verdict it can change."""

    def __init__(self) -> None:
        self._claims: dict[RsgKey, Claim] = {}
        self._by_member: dict[Identity, set[RsgKey]] = {}

    def __len__(self) -> int:
        return len(self._claims)

    def get(self, rsg: RsgKey) -> Claim | None:
        return self._claims.get(rsg)

    def put(self, rsg: RsgKey, claim: Claim | None) -> set[RsgKey]:
        """Record `rsg`'s claim (None: it has none); return the RSGs it may affect."""
        before = self._claims.get(rsg)
        if before == claim:
            return set()
        affected = self._component_of(before) if before is not None else set()
        if before is not None:
            for identity in _identities(before):
                holders = self._by_member.get(identity)
                if holders is not None:
                    holders.discard(rsg)
                    if not holders:
                        del self._by_member[identity]
            del self._claims[rsg]
        if claim is not None:
            self._claims[rsg] = claim
            for identity in _identities(claim):
                self._by_member.setdefault(identity, set()).add(rsg)
            affected |= self._component_of(claim)
        return affected

    def related(self, claim: Claim) -> list[Claim]:
        """The claims connected to `claim` through shared members (itself included)."""
        return [self._claims[rsg] for rsg in sorted(self._component_of(claim))]

    def _component_of(self, claim: Claim) -> set[RsgKey]:
        seen: set[RsgKey] = set()
        pending = list(_identities(claim))
        visited: set[Identity] = set()
        while pending:
            identity = pending.pop()
            if identity in visited:
                continue
            visited.add(identity)
            for rsg in self._by_member.get(identity, ()):
                if rsg not in seen:
                    seen.add(rsg)
                    pending.extend(_identities(self._claims[rsg]))
        return seen


def _identities(claim: Claim) -> set[Identity]:
    return {claim.source.identity, *(t.identity for t in claim.targets)}
