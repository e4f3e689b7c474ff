"""What RSG knows about each kind, declared in one place.

Adapters for scaling (issue: InplaceScaling) and cloning (issue: GroupReplication)
will hang off this table; handlers and reconcilers never test kinds by name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KindInfo:
    api_version: str
    kind: str


# SPEC §5: the kinds GroupReplication may clone by default.
CLONEABLE_KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("", "Service"),
        ("", "ConfigMap"),
        ("workloads.x-k8s.io", "RoleBasedGroup"),
        ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"),
    }
)


def api_group(api_version: str) -> str:
    """'apps/v1' -> 'apps'; 'v1' -> '' (the core group)."""
    return api_version.rpartition("/")[0]


def is_cloneable(api_version: str, kind: str) -> bool:
    return (api_group(api_version), kind) in CLONEABLE_KINDS


def role_names(obj: dict[str, object]) -> set[str]:
    """Roles of a multi-role object: RoleBasedGroup lists them as spec.roles[].name."""
    spec = obj.get("spec")
    roles = spec.get("roles") if isinstance(spec, dict) else None
    if not isinstance(roles, list):
        return set()
    return {str(r["name"]) for r in roles if isinstance(r, dict) and "name" in r}
