"""Template object -> clone object for group i (SPEC §3). Pure.

A clone is the seed member as the user wrote it, minus everything the server sets,
renamed `<prefix>-<ii>-<name>`, carrying the group labels on itself, on every pod
template and in its selector (so clones never share pods), and owned by the RSG (so
deleting the RSG garbage-collects it).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from rsg_operator import kinds, labels

SERVER_SET_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
    "finalizers",
    "generateName",
)
# Annotations that describe the template object's own history, not its desired state.
OWN_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    labels.SEED_REPLICAS,
    labels.TEMPLATE_HASH,
    labels.DRAIN_STARTED,
    labels.DRAINED,
)
# Labels that say what happens to the template object's own group, not to its clones.
OWN_LABELS = (labels.DRAINING,)
# Service fields the apiserver allocates per object.
SERVICE_ALLOCATED = ("clusterIP", "clusterIPs", "healthCheckNodePort")


@dataclass(frozen=True)
class Owner:
    """The RSG that owns every clone."""

    api_version: str
    kind: str
    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def clone(
    template: dict[str, Any],
    owner: Owner,
    prefix: str,
    index: int,
    members: Collection[str] = (),
) -> dict[str, Any]:
    """The clone of `template` (a seed member as read from the API) for group `index`.

    `members` names the seed group's members: a reference to one of them (a StatefulSet's
    serviceName) is pointed at that member's clone in the same group."""
    api_version, kind = template["apiVersion"], template["kind"]
    layout = kinds.layout(api_version, kind)
    group = labels.group_labels(owner.name, prefix, index)
    obj = copy.deepcopy(template)
    obj.pop("status", None)
    _restore_seed_replicas(obj, template)
    meta = obj["metadata"]
    for key in SERVER_SET_METADATA:
        meta.pop(key, None)
    annotations = {
        k: v
        for k, v in (meta.get("annotations") or {}).items()
        if k not in OWN_ANNOTATIONS and "kopf.zalando.org" not in k
    }
    meta["annotations"] = annotations
    if not annotations:
        meta.pop("annotations")
    meta["name"] = labels.clone_name(prefix, index, meta["name"])
    own = {k: v for k, v in (meta.get("labels") or {}).items() if k not in OWN_LABELS}
    meta["labels"] = {**own, **group}
    meta["ownerReferences"] = [owner.reference()]
    for path in layout.templates:
        for pod_template in _walk(obj, path):
            template_meta = pod_template.setdefault("metadata", {})
            template_meta["labels"] = {**(template_meta.get("labels") or {}), **group}
    if layout.selector is not None:
        selector = _ensure(obj, layout.selector)
        # A Service selects its group's pods by group id; workload selectors take all three.
        selector.update({labels.GROUP_ID: group[labels.GROUP_ID]} if kind == "Service" else group)
    if layout.group_reference is not None:
        *parents, last = layout.group_reference
        holder = _ensure(obj, tuple(parents))
        if holder.get(last) in members:
            holder[last] = labels.clone_name(prefix, index, holder[last])
    if kind == "Service":
        spec = obj.get("spec") or {}
        headless = spec.get("clusterIP") == "None"
        for key in SERVICE_ALLOCATED:
            spec.pop(key, None)
        if headless:
            spec["clusterIP"] = "None"
        for port in spec.get("ports") or []:
            port.pop("nodePort", None)
    meta.setdefault("annotations", {})[labels.TEMPLATE_HASH] = template_hash(obj)
    return obj


def template_hash(obj: dict[str, Any], version: str | None = None) -> str:
    """A short, stable digest of a clone as made from its template (hash excluded).

    Of its API group, not its version: the same template read through another served
    version of its kind is the same template. (`version`: the digest as the operator
    first wrote it, with that apiVersion in it; `outdated` still accepts it.)"""
    content = copy.deepcopy(obj)
    meta = content["metadata"]
    annotations = meta.get("annotations")
    if annotations is not None:
        annotations.pop(labels.TEMPLATE_HASH, None)
        if not annotations:  # as the clone was when its digest was taken: no annotations
            del meta["annotations"]
    content["apiVersion"] = version or f"{kinds.api_group(obj['apiVersion'])}/*"
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def outdated(
    current: dict[str, Any], wanted: dict[str, Any], versions: Collection[str] = ()
) -> bool:
    """Whether an existing clone was made from another template than `wanted` was.

    A clone made before digests left the version out carries a digest with the
    apiVersion it was made through: it is current if that is the wanted one or any of
    `versions` (the versions its kind is served as), so that neither an upgrade of the
    operator nor a target moved to another version rolls the groups."""
    made = (current["metadata"].get("annotations") or {}).get(labels.TEMPLATE_HASH)
    if made == (wanted["metadata"].get("annotations") or {}).get(labels.TEMPLATE_HASH):
        return False
    for version in {wanted["apiVersion"], *versions}:
        if made == template_hash(wanted, version):
            return False
    return True


def updated(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The replacement of an existing clone by `wanted`: what the server allocated for the
    existing object (resourceVersion for the update, a Service's addresses) is kept."""
    replacement = copy.deepcopy(wanted)
    replacement["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    if wanted["kind"] == "Service":
        old, new = current.get("spec") or {}, replacement.setdefault("spec", {})
        for key in SERVICE_ALLOCATED:
            if key in old:
                new[key] = old[key]
        ports = {(p.get("name"), p.get("port")): p for p in old.get("ports") or []}
        for port in new.get("ports") or []:
            allocated = ports.get((port.get("name"), port.get("port")), {}).get("nodePort")
            if allocated is not None:
                port["nodePort"] = allocated
    return replacement


def replica_counts(obj: dict[str, Any]) -> dict[str, int]:
    """The member's replica counts by JSON pointer (list wildcards expanded)."""
    layout = kinds.layout(obj["apiVersion"], obj["kind"])
    counts = {}
    for pointer in layout.replicas:
        for concrete, value in _pointers(obj, pointer.strip("/").split("/")):
            counts[concrete] = int(value if value is not None else 1)
    return counts


def _restore_seed_replicas(obj: dict[str, Any], template: dict[str, Any]) -> None:
    """A seed member taken to 0 keeps its counts in an annotation; clones get those."""
    recorded = (template["metadata"].get("annotations") or {}).get(labels.SEED_REPLICAS)
    if not recorded:
        return
    for pointer, value in json.loads(recorded).items():
        *parents, last = pointer.strip("/").split("/")
        node: Any = obj
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value


def _walk(node: Any, path: tuple[str, ...]) -> list[dict[str, Any]]:
    if not path:
        return [node] if isinstance(node, dict) else []
    head, rest = path[0], path[1:]
    if head == "*":
        return [found for item in (node or []) for found in _walk(item, rest)]
    if not isinstance(node, dict) or head not in node:
        return []
    return _walk(node[head], rest)


def _ensure(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = obj
    for key in path:
        node = node.setdefault(key, {})
    return node


def _pointers(node: Any, parts: list[str], prefix: str = "") -> list[tuple[str, Any]]:
    if not parts:
        return [(prefix, node)]
    head, rest = parts[0], parts[1:]
    if head == "*":
        return [
            found
            for i, item in enumerate(node or [])
            for found in _pointers(item, rest, f"{prefix}/{i}")
        ]
    if not isinstance(node, dict):
        return []
    if not rest:
        return [(f"{prefix}/{head}", node.get(head))]
    return _pointers(node.get(head), rest, f"{prefix}/{head}")
