"""Resolution of an RSG's targets: the checks every strategy starts with.

Reads only (from the watch caches). A problem found here stops the reconcile before
anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rsg_operator import api, kinds
from rsg_operator.cluster import Cluster
from rsg_operator.kube import UnknownKind
from rsg_operator.settings import Settings
from rsg_operator.status import Problem, Reason


@dataclass
class Resolution:
    """Each target's object as last seen (by target id), and what is wrong."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


async def check(
    cluster: Cluster, spec: api.RSGSpec, namespace: str, settings: Settings
) -> Resolution:
    """Read every target of a parsed spec; report what is wrong."""
    resolution = Resolution(problems=static_problems(spec, namespace, settings))
    if resolution.problems:
        return resolution
    for target in spec.targets:
        found, problems = await _lookup(cluster, target, namespace)
        resolution.problems += problems
        if found is not None:
            resolution.objects[target.id] = found
    return resolution


def static_problems(spec: api.RSGSpec, namespace: str, settings: Settings) -> list[Problem]:
    """Rules that need the operator's settings but not the cluster."""
    problems = []
    grouped = isinstance(spec.strategy, api.GroupReplication)
    for target in spec.targets:
        elsewhere = target.namespace_or(namespace) != namespace
        if elsewhere and grouped:
            # Clones are owned by the RSG, and ownerReferences cannot cross namespaces.
            problems.append(
                Problem(
                    Reason.CROSS_NAMESPACE_TARGET,
                    f"{target.describe()} is in namespace {target.namespace}, not {namespace}; "
                    "GroupReplication clones only targets in the RSG's own namespace",
                )
            )
        elif elsewhere and not settings.allow_cross_namespace:
            problems.append(
                Problem(
                    Reason.CROSS_NAMESPACE_TARGET,
                    f"{target.describe()} is in namespace {target.namespace}, not {namespace}; "
                    "start the operator with --allow-cross-namespace to permit this",
                )
            )
        if grouped and not kinds.is_cloneable(target.api_version, target.kind):
            message = str(kinds.NotCloneable(target.api_version, target.kind))
            problems.append(Problem(Reason.KIND_NOT_CLONEABLE, f"{target.name}: {message}"))
    return problems


async def _lookup(
    cluster: Cluster, target: api.Target, namespace: str
) -> tuple[dict[str, Any] | None, list[Problem]]:
    target_namespace = target.namespace_or(namespace)
    try:
        found = await cluster.get(target.api_version, target.kind, target_namespace, target.name)
    except UnknownKind as error:
        return None, [Problem(Reason.UNKNOWN_KIND, f"{target.describe()}: {error}")]
    if found is None:
        return None, [
            Problem(
                Reason.TARGET_NOT_FOUND,
                f"{target.kind} {target_namespace}/{target.name} ({target.api_version}) "
                "does not exist",
            )
        ]
    problems = []
    for role in target.roles:
        try:
            kinds.role_named(found, role)
        except LookupError as error:
            problems.append(Problem(Reason.ROLE_NOT_FOUND, f"{target.describe()} {error}"))
    return found, problems
