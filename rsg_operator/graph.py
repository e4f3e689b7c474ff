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
