"""What the validating webhook refuses, and why (pure). The checks are the controller's
own: `api.check_name` and `api.parse_spec` for one object, `graph.findings` across RSGs,
and the spec transitions a live RSG may not make. Every message names the field.

An RSG being written is the youngest claim: a conflict it would bring is refused, even
where the controller (which lets the older RSG keep a member) would have degraded the
other RSG instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rsg_operator import api, graph

YOUNGEST = "~"  # sorts after every RFC 3339 time: the RSG being written yields
BINDINGS = "spec.scalingStrategy.inplaceConfig.bindings"

# The stored RSGs' claims connected to a claim (graph.ClaimIndex.related).
Related = Callable[[graph.Claim], Iterable[graph.Claim]]


def refusals(new: dict[str, Any], old: dict[str, Any] | None, related: Related) -> list[str]:
    """Why `new` (replacing `old`, if an update) must not be stored; empty: admit it.
    `related` gives the claims of the RSGs already stored that touch the new RSG's
    claim (the RSG's own is ignored)."""
    meta = new.get("metadata") or {}
    if old is not None and (meta.get("deletionTimestamp") or old.get("spec") == new.get("spec")):
        # Metadata only (labels, the finalizer's removal) or an RSG being deleted: never
        # in the way, or an RSG in conflict could not even be deleted.
        return []
    found: list[str] = []
    try:
        api.check_name(str(meta.get("name") or ""))
        spec = api.parse_spec(new.get("spec"))
    except api.SpecError as error:
        return found + [f"{path}: {message}" for path, message in error.problems]
    if old is not None:
        found += _transitions(old.get("spec") or {}, new.get("spec") or {})
    key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
    mine = graph.claim(key, YOUNGEST, spec)
    for finding in graph.findings(mine, [c for c in related(mine) if c.rsg != key]):
        found.append(f"{_field(spec, key[0], finding.member)}: {finding.problem.message}")
    return found


def _transitions(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The spec changes a live RSG may not make (docs/design.md: prefix and type)."""
    found = []
    old_type = (old.get("scalingStrategy") or {}).get("type")
    new_type = (new.get("scalingStrategy") or {}).get("type")
    if old_type != new_type:
        found.append(
            f"spec.scalingStrategy.type: cannot change from {old_type} to {new_type} on a live "
            "RSG; create a new RSG with the new type and delete this one"
        )
        return found
    old_prefix, new_prefix = _prefix(old), _prefix(new)
    if old_prefix != new_prefix:
        found.append(
            f"spec.scalingStrategy.groupConfig.groupNamePrefix: cannot change from {old_prefix} "
            f"to {new_prefix} on a live RSG (every group would be replaced at once); create a "
            "new RSG with the new prefix, scale it up, then delete this one"
        )
    return found


def _prefix(spec: dict[str, Any]) -> str | None:
    try:
        strategy = api.parse_spec(spec).strategy
    except api.SpecError:
        return None
    return strategy.prefix if isinstance(strategy, api.GroupReplication) else None


def _field(spec: api.RSGSpec, namespace: str, member: api.Member) -> str:
    """The field of `spec` that declares `member`: its binding, or its targetResources
    entry."""
    strategy = spec.strategy
    if isinstance(strategy, api.InplaceScaling):
        for index, binding in enumerate(strategy.bindings):
            if graph.overlap(spec.member(binding, namespace), member):
                return f"{BINDINGS}[{index}]"
    for index, target in enumerate(spec.targets):
        seed = api.Member(
            target.api_version, target.kind, target.namespace_or(namespace), target.name
        )
        if graph.overlap(seed, member) or graph.overlap(member, seed):
            return f"spec.targetResources[{index}]"
    return "spec"
