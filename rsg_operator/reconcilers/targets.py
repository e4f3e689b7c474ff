"""Resolution of an RSG's spec and targets: the checks every strategy starts with.

Reads only. A problem found here stops the reconcile before anything is written.
"""

from __future__ import annotations

from typing import Any

from rsg_operator import api, kinds
from rsg_operator.kube import Kube, UnknownKind
from rsg_operator.settings import Settings
from rsg_operator.status import Problem, Reason


async def check(
    kube: Kube, raw_spec: Any, namespace: str, settings: Settings
) -> tuple[api.RSGSpec | None, list[Problem]]:
    """Parse the spec and look up every target; return the spec and what is wrong."""
    try:
        spec = api.parse_spec(raw_spec)
    except api.SpecError as error:
        return None, [Problem(Reason.INVALID_SPEC, str(error))]
    problems = static_problems(spec, namespace, settings)
    if problems:
        return spec, problems
    for target in spec.targets:
        problems += await _lookup_problems(kube, target, namespace)
    return spec, problems


def static_problems(spec: api.RSGSpec, namespace: str, settings: Settings) -> list[Problem]:
    """Rules that need the operator's settings but not the cluster."""
    problems = []
    for target in spec.targets:
        if not settings.allow_cross_namespace and target.namespace_or(namespace) != namespace:
            problems.append(
                Problem(
                    Reason.CROSS_NAMESPACE_TARGET,
                    f"{target.describe()} is in namespace {target.namespace}, not {namespace}; "
                    "start the operator with --allow-cross-namespace to permit this",
                )
            )
        if isinstance(spec.strategy, api.GroupReplication) and not kinds.is_cloneable(
            target.api_version, target.kind
        ):
            problems.append(
                Problem(
                    Reason.KIND_NOT_CLONEABLE,
                    f"{target.describe()}: GroupReplication cannot clone kind {target.kind} "
                    f"({target.api_version}); cloneable kinds are "
                    + ", ".join(sorted(kind for _, kind in kinds.CLONEABLE_KINDS)),
                )
            )
    return problems


async def _lookup_problems(kube: Kube, target: api.Target, namespace: str) -> list[Problem]:
    target_namespace = target.namespace_or(namespace)
    try:
        found = await kube.get(target.api_version, target.kind, target_namespace, target.name)
    except UnknownKind as error:
        return [Problem(Reason.UNKNOWN_KIND, f"{target.describe()}: {error}")]
    if found is None:
        return [
            Problem(
                Reason.TARGET_NOT_FOUND,
                f"{target.kind} {target_namespace}/{target.name} ({target.api_version}) "
                "does not exist",
            )
        ]
    present = kinds.role_names(found)
    return [
        Problem(
            Reason.ROLE_NOT_FOUND,
            f"{target.describe()} has no role {role!r}",
        )
        for role in target.roles
        if role not in present
    ]
