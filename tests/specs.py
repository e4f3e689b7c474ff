"""Spec fixtures shared by the unit tests (parser) and the integration tests (apiserver).

INVALID lists specs that break one rule each, with the field the error must name and
whether the CRD schema/CEL can reject it at admission (`admission=False`: only the
operator can, e.g. a ratio, which may be a number or a string and so carries no CEL).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any


def rsg(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A ResourceScalingGroup manifest around a spec."""
    return {
        "apiVersion": "resourcescalinggroup.com/v1",
        "kind": "ResourceScalingGroup",
        "metadata": {"name": name},
        "spec": spec,
    }


def target(name: str, kind: str = "Deployment", api_version: str = "apps/v1") -> dict[str, Any]:
    """A targetResources entry in the flat form."""
    return {"name": name, "apiVersion": api_version, "kind": kind}


def group_spec(
    *targets: dict[str, Any], prefix: str = "unit", replicas: int = 1, **scale_down: Any
) -> dict[str, Any]:
    """A GroupReplication spec; by default of Deployments prefill and decode."""
    config: dict[str, Any] = {"groupNamePrefix": prefix, "replicas": replicas}
    if scale_down:
        config["scaleDown"] = scale_down
    return {
        "targetResources": list(targets) or [target("prefill"), target("decode")],
        "scalingStrategy": {"type": "GroupReplication", "groupConfig": config},
    }


def follow(source: str, follower: str, ratio: Any = 2) -> dict[str, Any]:
    """An InplaceScaling spec: Deployment `follower` follows `source` at `ratio`."""
    return {
        "targetResources": [target(source), target(follower)],
        "scalingStrategy": {
            "type": "InplaceScaling",
            "inplaceConfig": {
                "bindings": [
                    {"name": source, "role": "Source"},
                    {"name": follower, "role": "Target", "ratio": ratio},
                ]
            },
        },
    }


def inplace_spec() -> dict[str, Any]:
    return {
        "targetResources": [
            {"name": "router", "apiVersion": "apps/v1", "kind": "Deployment"},
            {"name": "prefill", "apiVersion": "apps/v1", "kind": "Deployment"},
            {
                "name": "rbg",
                "apiVersion": "workloads.x-k8s.io/v1alpha1",
                "kind": "RoleBasedGroup",
                "subResources": [{"roleName": "Decode"}],
            },
        ],
        "scalingStrategy": {
            "type": "InplaceScaling",
            "inplaceConfig": {
                "bindings": [
                    {"name": "router", "role": "Source"},
                    {"name": "prefill", "role": "Target", "ratio": 1},
                    {"name": "decode", "role": "Target", "ratio": "2.5"},
                ]
            },
        },
    }


@dataclass(frozen=True)
class Invalid:
    id: str
    spec: dict[str, Any]
    field: str  # must appear in the error message
    admission: bool = True


def _edit(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Copy of base with the dotted path set to value (value DELETE removes the key)."""
    spec = copy.deepcopy(base)
    *parents, last = path.split(".")
    node: Any = spec
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return spec


DELETE = object()
G, IP = group_spec(), inplace_spec()
GC = "scalingStrategy.groupConfig"
B = "scalingStrategy.inplaceConfig.bindings"

INVALID = [
    Invalid("no-targets", _edit(G, "targetResources", DELETE), "targetResources"),
    Invalid("empty-targets", _edit(G, "targetResources", []), "targetResources"),
    Invalid("target-without-kind", _edit(G, "targetResources.0.kind", DELETE), "kind"),
    Invalid(
        "target-without-apiversion", _edit(G, "targetResources.0.apiVersion", DELETE), "apiVersion"
    ),
    Invalid("target-bad-name", _edit(G, "targetResources.0.name", "Prefill_1"), "name"),
    Invalid("target-bad-namespace", _edit(G, "targetResources.0.namespace", "AI!"), "namespace"),
    Invalid("target-bad-kind", _edit(G, "targetResources.0.kind", "deployment"), "kind"),
    Invalid(
        "target-bad-apiversion", _edit(G, "targetResources.0.apiVersion", "apps/1"), "apiVersion"
    ),
    Invalid(
        "target-flat-and-ref",
        _edit(
            G,
            "targetResources.0.targetRef",
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
        ),
        "targetRef",
    ),
    Invalid("target-duplicate", _edit(G, "targetResources.1.name", "prefill"), "targetResources"),
    Invalid(
        "target-duplicate-role",
        _edit(IP, "targetResources.2.subResources", [{"roleName": "a"}, {"roleName": "a"}]),
        "subResources",
    ),
    Invalid("target-unknown-field", _edit(G, "targetResources.0.replicas", 3), "replicas"),
    Invalid("no-strategy", _edit(G, "scalingStrategy", DELETE), "scalingStrategy"),
    Invalid("unknown-type", _edit(G, "scalingStrategy.type", "Sharding"), "type"),
    Invalid("group-without-groupconfig", _edit(G, GC, DELETE), "groupConfig"),
    Invalid(
        "group-with-inplaceconfig",
        _edit(G, "scalingStrategy.inplaceConfig", IP["scalingStrategy"]["inplaceConfig"]),
        "inplaceConfig",
    ),
    Invalid(
        "inplace-without-inplaceconfig",
        _edit(IP, "scalingStrategy.inplaceConfig", DELETE),
        "inplaceConfig",
    ),
    Invalid(
        "inplace-with-groupconfig",
        _edit(IP, "scalingStrategy.groupConfig", {"groupNamePrefix": "u"}),
        "groupConfig",
    ),
    Invalid("no-prefix", _edit(G, f"{GC}.groupNamePrefix", DELETE), "groupNamePrefix"),
    Invalid("prefix-and-alias-differ", _edit(G, f"{GC}.groupName", "other"), "groupNamePrefix"),
    Invalid("prefix-uppercase", _edit(G, f"{GC}.groupNamePrefix", "Unit"), "groupNamePrefix"),
    Invalid("prefix-too-long", _edit(G, f"{GC}.groupNamePrefix", "u" * 41), "groupNamePrefix"),
    Invalid(
        "prefix-plus-name-too-long",
        _edit(_edit(G, f"{GC}.groupNamePrefix", "u" * 40), "targetResources.0.name", "p" * 20),
        "groupNamePrefix",
    ),
    Invalid("replicas-negative", _edit(G, f"{GC}.replicas", -1), "replicas"),
    Invalid("replicas-not-integer", _edit(G, f"{GC}.replicas", "three"), "replicas"),
    Invalid("replicas-too-many", _edit(G, f"{GC}.replicas", 1000), "replicas"),
    Invalid("policy-unknown", _edit(G, f"{GC}.scaleDown", {"policy": "Random"}), "policy"),
    Invalid(
        "candidates-duplicate",
        _edit(G, f"{GC}.scaleDown", {"candidates": ["unit-02", "unit-02"]}),
        "candidates",
    ),
    Invalid(
        "candidate-not-a-group-id",
        _edit(G, f"{GC}.scaleDown", {"candidates": ["Unit 2"]}),
        "candidates",
    ),
    Invalid(
        "drain-timeout-negative",
        _edit(G, f"{GC}.scaleDown", {"drainTimeoutSeconds": -5}),
        "drainTimeoutSeconds",
    ),
    Invalid("bindings-empty", _edit(IP, B, []), "bindings"),
    Invalid("no-source", _edit(IP, f"{B}.0.role", "Target"), "Source"),
    Invalid("two-sources", _edit(IP, f"{B}.1", {"name": "prefill", "role": "Source"}), "Source"),
    Invalid("binding-duplicate-name", _edit(IP, f"{B}.2.name", "prefill"), "bindings"),
    Invalid("binding-unknown-role", _edit(IP, f"{B}.1.role", "Follower"), "role"),
    Invalid("binding-names-nothing", _edit(IP, f"{B}.1.name", "gateway"), "bindings"),
    Invalid(
        "two-bindings-one-role",
        _edit(IP, f"{B}.1", {"name": "Decode", "role": "Target"}),
        "bindings",
        admission=False,
    ),
    Invalid("ratio-negative", _edit(IP, f"{B}.1.ratio", -1), "ratio", admission=False),
    Invalid("ratio-not-decimal", _edit(IP, f"{B}.1.ratio", "two"), "ratio", admission=False),
    Invalid("ratio-bool", _edit(IP, f"{B}.1.ratio", True), "ratio", admission=False),
    Invalid("ratio-on-source", _edit(IP, f"{B}.0.ratio", 1), "ratio", admission=False),
]
