"""Rules across RSGs (SPEC §4). Pure.

- Members: an object (or an RBG role) that a GroupReplication RSG holds as a seed member
  belongs to that RSG alone: no other RSG names it, in any role. An InplaceScaling
  Target follows one Source only: it is a Target of one RSG. The older RSG (creation
  time, then namespace/name) keeps a contested member; the younger is Degraded and
  writes nothing, so two RSGs never write one object back and forth.
- Sources are only read: an object may be the Source of several InplaceScaling RSGs,
  and the Target of one and the Source of another (a chain), as long as the
  Source->Target edges of all RSGs form a DAG; a cycle stops every RSG on it.

The validating webhook (admission.py) refuses violations at admission with these same
checks; the controller finds them here too, for RSGs stored without the webhook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rsg_operator.api import InplaceScaling, Member, RSGSpec
from rsg_operator.kinds import SCALING_ADAPTER
from rsg_operator.status import Problem, Reason

RsgKey = tuple[str, str]  # (namespace, name)
ObjectId = tuple[str, str, str, str]  # (API group, kind, namespace, name)


@dataclass(frozen=True)
class Claim:
    """The members one RSG declares: an InplaceScaling RSG's Source and Targets, or a
    GroupReplication RSG's seed members."""

    rsg: RsgKey
    created: str  # metadata.creationTimestamp; the older claim keeps a contested member
    source: Member | None = None
    targets: tuple[Member, ...] = ()
    seeds: tuple[Member, ...] = ()

    @property
    def seniority(self) -> tuple[str, RsgKey]:
        return (self.created, self.rsg)

    @property
    def members(self) -> tuple[tuple[str, Member], ...]:
        """Every member with the part it plays."""
        found: list[tuple[str, Member]] = [("seed member", m) for m in self.seeds]
        if self.source is not None:
            found.append(("Source", self.source))
        return (*found, *(("Target", m) for m in self.targets))


def claim(rsg: RsgKey, created: str, spec: RSGSpec) -> Claim:
    """The members a valid spec declares."""
    strategy = spec.strategy
    if isinstance(strategy, InplaceScaling):
        return Claim(
            rsg,
            created,
            source=spec.member(strategy.source, rsg[0]),
            targets=tuple(spec.member(b, rsg[0]) for b in strategy.targets),
        )
    seeds = tuple(
        Member(t.api_version, t.kind, t.namespace_or(rsg[0]), t.name) for t in spec.targets
    )
    return Claim(rsg, created, seeds=seeds)


def object_id(member: Member) -> ObjectId:
    return member.identity[:4]


def overlap(a: Member, b: Member) -> bool:
    """Whether two members are, or contain, the same thing: one object, and the same role
    of it or the whole of it; or a RoleBasedGroup's role and the scaling adapter RBG
    names for it (`<rbg>-<role>`), which holds the role's replicas once it exists (found
    by review: two RSGs could write one adapter's /scale back and forth)."""
    if object_id(a) == _adapter_of(b) or object_id(b) == _adapter_of(a):
        return True
    if object_id(a) != object_id(b):
        return False
    return a.role is None or b.role is None or a.identity[4] == b.identity[4]


def _adapter_of(member: Member) -> ObjectId | None:
    """The scaling adapter RBG would name for a RoleBasedGroup role member."""
    group, kind, namespace, name, role = member.identity
    if group != "workloads.x-k8s.io" or kind != "RoleBasedGroup" or role is None:
        return None
    return (group, SCALING_ADAPTER, namespace, f"{name}-{role}")


@dataclass(frozen=True)
class Finding:
    """A problem of one claim, and the member of that claim it is about."""

    problem: Problem
    member: Member


def problems(mine: Claim, claims: Iterable[Claim]) -> list[Problem]:
    """What keeps `mine` from acting, given every RSG's claim (its own included or not)."""
    return [finding.problem for finding in findings(mine, claims)]


def findings(mine: Claim, claims: Iterable[Claim]) -> list[Finding]:
    """`problems`, each with the member of `mine` it is about (the webhook names the
    field that declares it)."""
    others = [c for c in claims if c.rsg != mine.rsg]
    found = []
    for other in sorted(others, key=lambda c: c.seniority):
        if other.seniority > mine.seniority:
            continue  # the younger one yields
        shared = _shared(mine, other)
        if shared is not None:
            part, member, theirs = shared
            message = (
                f"{member.describe()} is already the {theirs} of RSG "
                f"{other.rsg[0]}/{other.rsg[1]} (older); this RSG has it as {part}, and "
                "an object that a GroupReplication RSG holds belongs to that RSG alone"
            )
            found.append(Finding(Problem(Reason.MEMBER_CONFLICT, message), member))
        for target in mine.targets:
            if any(overlap(target, t) for t in other.targets):
                message = (
                    f"{target.describe()} is already a Target of RSG "
                    f"{other.rsg[0]}/{other.rsg[1]}; a resource follows one Source only"
                )
                found.append(Finding(Problem(Reason.TARGET_CONFLICT, message), target))
    cycle = _cycle_through(mine, [mine, *others])
    if cycle:
        path = " -> ".join(m.describe() for m in cycle)
        problem = Problem(
            Reason.SOURCE_TARGET_CYCLE, f"Source->Target bindings form a cycle: {path}"
        )
        found.append(Finding(problem, cycle[1]))  # the Target that closes it
    return found


def _shared(mine: Claim, other: Claim) -> tuple[str, Member, str] | None:
    """A member of `mine` that `other` holds, where one of the two holds it as a seed
    member: (its part in mine, the member, its part in other)."""
    for part, member in mine.members:
        for theirs, held in other.members:
            if "seed member" in (part, theirs) and overlap(member, held):
                return part, member, theirs
    return None


def _cycle_through(mine: Claim, claims: list[Claim]) -> list[Member] | None:
    """A path target -> ... -> source of one of mine's edges, closed into a cycle."""
    if mine.source is None:
        return None
    edges: dict[tuple[object, ...], list[Member]] = {}
    members: dict[tuple[object, ...], Member] = {}
    for claim in claims:
        if claim.source is None:
            continue
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
    """The objects a claim names (roles aside: a role and its whole object connect)."""
    return {object_id(member) for _, member in claim.members}
