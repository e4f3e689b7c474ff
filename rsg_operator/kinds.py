"""What RSG knows about each kind, declared in one place.

Adapters for scaling (issue: InplaceScaling) and cloning (issue: GroupReplication)
will hang off this table; handlers and reconcilers never test kinds by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


def match(name: str, items: Iterable[T], label: Callable[[T], str]) -> list[T]:
    """The items `name` names, as RSG matches names it is given (binding names, role
    names): the exact matches if there are any, else the case-insensitive ones. One item
    is an answer; more is an ambiguity the caller reports."""
    items = list(items)
    exact = [item for item in items if label(item) == name]
    return exact or [item for item in items if label(item).casefold() == name.casefold()]


def role_named(obj: dict[str, object], name: str) -> str:
    """The object's role that `name` names (exact, else a unique case-insensitive match:
    real RoleBasedGroup roles are lowercase DNS labels, so `Decode` finds `decode`).
    Raises LookupError saying why none is."""
    found = match(name, sorted(role_names(obj)), str)
    if len(found) == 1:
        return found[0]
    if found:
        raise LookupError(f"role {name!r} matches roles {', '.join(found)} case-insensitively")
    known = ", ".join(sorted(role_names(obj))) or "none"
    raise LookupError(f"has no role {name!r} (roles: {known})")


def api_group(api_version: str) -> str:
    """'apps/v1' -> 'apps'; 'v1' -> '' (the core group)."""
    return api_version.rpartition("/")[0]


@dataclass(frozen=True)
class GroupKind:
    """What a kind is, whichever version it is read through: (API group, kind). Every
    comparison of kinds in RSG is of these (RoleBasedGroup through v1alpha1 and through
    v1alpha2 is one kind, its objects the same objects)."""

    group: str
    kind: str

    @classmethod
    def of(cls, api_version: str, kind: str) -> GroupKind:
        return cls(api_group(api_version), kind)


def is_cloneable(api_version: str, kind: str) -> bool:
    """SPEC §5: GroupReplication clones only the kinds with a declared layout."""
    return (api_group(api_version), kind) in LAYOUTS


def role_names(obj: dict[str, object]) -> set[str]:
    """Roles of a multi-role object: RoleBasedGroup lists them as spec.roles[].name."""
    spec = obj.get("spec")
    roles = spec.get("roles") if isinstance(spec, dict) else None
    if not isinstance(roles, list):
        return set()
    return {str(r["name"]) for r in roles if isinstance(r, dict) and "name" in r}


# Where a kind keeps its pod templates and its pod selector, as paths of keys ("*" walks
# every item of a list). A clone's group labels go on each template and into the selector
# so that clones never share pods; Services get the group label in spec.selector.
@dataclass(frozen=True)
class Layout:
    templates: tuple[tuple[str, ...], ...] = ()
    selector: tuple[str, ...] | None = None
    # JSON pointers of replica counts, for taking a seed member to 0 and back.
    replicas: tuple[str, ...] = ()
    # Whether status reports replicas/updatedReplicas/readyReplicas per template revision
    # (what "rollout complete" is judged on).
    reports_updates: bool = False
    # Path of a reference by name to another object of the same group (a StatefulSet's
    # governing Service): a clone refers to its own group's clone of it.
    group_reference: tuple[str, ...] | None = None
    # Replicas per role (spec.roles[].replicas) reported per role in status.roleStatuses[]
    # (RoleBasedGroup), instead of spec.replicas and status.readyReplicas.
    role_statuses: bool = False
    # Where the selector of the object's pods is the object's name under a label its
    # controller sets on them, by API version (the last entry for versions not listed).
    name_labels: tuple[tuple[str, str], ...] = ()


LAYOUTS: dict[tuple[str, str], Layout] = {
    ("apps", "Deployment"): Layout(
        templates=(("spec", "template"),),
        selector=("spec", "selector", "matchLabels"),
        replicas=("/spec/replicas",),
        reports_updates=True,
    ),
    ("apps", "StatefulSet"): Layout(
        templates=(("spec", "template"),),
        selector=("spec", "selector", "matchLabels"),
        replicas=("/spec/replicas",),
        reports_updates=True,
        group_reference=("spec", "serviceName"),
    ),
    ("", "Service"): Layout(selector=("spec", "selector")),
    ("", "ConfigMap"): Layout(),
    ("workloads.x-k8s.io", "RoleBasedGroup"): Layout(
        templates=(("spec", "roles", "*", "template"),),
        replicas=("/spec/roles/*/replicas",),
        role_statuses=True,
        # RBG labels each group's pods with its name (api/workloads/constants/label.go);
        # v1alpha1 used another prefix.
        name_labels=(
            ("v1alpha1", "rolebasedgroup.workloads.x-k8s.io/group-name"),
            ("v1alpha2", "rbg.workloads.x-k8s.io/group-name"),
        ),
    ),
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): Layout(
        templates=(
            ("spec", "leaderWorkerTemplate", "leaderTemplate"),
            ("spec", "leaderWorkerTemplate", "workerTemplate"),
        ),
        replicas=("/spec/replicas",),
        reports_updates=True,
    ),
}


# Where the /scale subresource of well-known kinds keeps its replicas in the object, so
# that their replicas are read from the watch cache. A scalable kind not listed here
# (any CRD) is read through its /scale subresource, which knows its own path.
SCALE_REPLICAS: dict[tuple[str, str], str] = {
    ("apps", "Deployment"): "/spec/replicas",
    ("apps", "StatefulSet"): "/spec/replicas",
    ("apps", "ReplicaSet"): "/spec/replicas",
    ("leaderworkerset.x-k8s.io", "LeaderWorkerSet"): "/spec/replicas",
    ("workloads.x-k8s.io", "RoleBasedGroupScalingAdapter"): "/spec/replicas",
}

# RoleBasedGroup's scaling adapter: a role with `scalingAdapter.enable: true` gets one,
# named `<rbg>-<role>`, and RBG runs the role at the adapter's `spec.replicas` (scaled
# through its /scale), whatever `spec.roles[].replicas` says.
SCALING_ADAPTER = "RoleBasedGroupScalingAdapter"


def scaling_adapter(obj: dict[str, object], role: str) -> tuple[str, str, str] | None:
    """(apiVersion, kind, name) of the scaling adapter that holds `role`'s replicas, if
    the role enables one; of the same API version as the RoleBasedGroup."""
    spec = obj.get("spec")
    roles = spec.get("roles") if isinstance(spec, dict) else None
    for item in roles if isinstance(roles, list) else []:
        if isinstance(item, dict) and item.get("name") == role:
            adapter = item.get("scalingAdapter")
            if isinstance(adapter, dict) and adapter.get("enable") is True:
                meta = obj.get("metadata")
                name = meta.get("name") if isinstance(meta, dict) else None
                return str(obj.get("apiVersion")), SCALING_ADAPTER, f"{name}-{role}"
    return None


def scale_replicas(api_version: str, kind: str) -> str | None:
    """JSON pointer of the replicas /scale sets in an object of this kind, if known."""
    return SCALE_REPLICAS.get((api_group(api_version), kind))


class NotCloneable(ValueError):
    """GroupReplication cannot clone this kind."""

    def __init__(self, api_version: str, kind: str) -> None:
        allowed = ", ".join(sorted(k for _, k in LAYOUTS))
        super().__init__(
            f"GroupReplication cannot clone kind {kind} ({api_version}); "
            f"cloneable kinds are {allowed}"
        )


def layout(api_version: str, kind: str) -> Layout:
    """The layout of a cloneable kind; NotCloneable for any other."""
    try:
        return LAYOUTS[(api_group(api_version), kind)]
    except KeyError:
        raise NotCloneable(api_version, kind) from None
