"""Workloads for integration tests: Deployments, StatefulSets and scalable custom kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.harness import deployment as deployment  # shared with bench/
from tests.integration.conftest import Kubectl

ROOT = Path(__file__).parents[2]
RBG_CRD = ROOT / "examples" / "demo" / "10-rolebasedgroup-crd.yaml"


def scalable_crd(kind: str, max_replicas: int | None = None) -> dict[str, Any]:
    """A scalable custom kind, as LeaderWorkerSet is: spec.replicas behind a scale
    subresource, in group test.rsg.io; `max_replicas` caps it in the schema (a write
    above it is refused, as admission, quota or policy can refuse one)."""
    plural = f"{kind.lower()}s"
    replicas: dict[str, Any] = {"type": "integer"}
    if max_replicas is not None:
        replicas["maximum"] = max_replicas
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.test.rsg.io"},
        "spec": {
            "group": "test.rsg.io",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                        },
                    },
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "properties": {"replicas": replicas}},
                                "status": {
                                    "type": "object",
                                    "properties": {"replicas": {"type": "integer"}},
                                },
                            },
                        }
                    },
                }
            ],
        },
    }


WIDGET_CRD = scalable_crd("Widget")


def install_crd(kubectl: Kubectl, manifest: dict[str, Any] | Path) -> None:
    if isinstance(manifest, Path):
        manifest = yaml.safe_load(manifest.read_text())
    assert isinstance(manifest, dict)
    kubectl.apply(manifest, "default")
    name = manifest["metadata"]["name"]
    kubectl.run("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")


def statefulset(name: str, replicas: int) -> dict[str, Any]:
    manifest = deployment(name, replicas)
    manifest["kind"] = "StatefulSet"
    manifest["spec"]["serviceName"] = name
    return manifest


def widget(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "test.rsg.io/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    }


def rolebasedgroup(name: str, roles: dict[str, int], version: str = "v1alpha1") -> dict[str, Any]:
    return {
        "apiVersion": f"workloads.x-k8s.io/{version}",
        "kind": "RoleBasedGroup",
        "metadata": {"name": name},
        "spec": {"roles": [{"name": r, "replicas": n} for r, n in roles.items()]},
    }


def replicas(kubectl: Kubectl, kind: str, name: str, namespace: str) -> int | None:
    found = kubectl.get(kind, name, namespace)
    return None if found is None else found["spec"].get("replicas")


def role_replicas(kubectl: Kubectl, name: str, namespace: str) -> dict[str, int]:
    found = kubectl.get("rolebasedgroups.workloads.x-k8s.io", name, namespace) or {"spec": {}}
    return {r["name"]: r.get("replicas") for r in found["spec"].get("roles", [])}


def writers(obj: dict[str, Any]) -> set[str]:
    """Every field manager that ever wrote the object (the apiserver records them)."""
    managed = obj["metadata"].get("managedFields")
    assert managed, "read with managedFields (Kubectl.get, --show-managed-fields)"
    return {entry["manager"] for entry in managed}


def writes_by(obj: dict[str, Any], manager: str) -> list[tuple[str, str, str]]:
    """What `manager` last wrote on the object and when: (subresource, time, fields), one
    per managedFields entry. A later write by it changes the time or the fields."""
    managed = obj["metadata"].get("managedFields")
    assert managed, "read with managedFields (Kubectl.get, --show-managed-fields)"
    return sorted(
        (e.get("subresource", ""), e.get("time", ""), json.dumps(e.get("fieldsV1"), sort_keys=True))
        for e in managed
        if e["manager"] == manager
    )


def kopf_annotations(obj: dict[str, Any]) -> list[str]:
    return [key for key in obj["metadata"].get("annotations") or {} if "kopf" in key]
