"""Workloads for integration tests: Deployments, StatefulSets and scalable custom kinds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from tests.harness import deployment as deployment  # shared with bench/
from tests.integration.conftest import Kubectl, wait_for

ROOT = Path(__file__).parents[2]
# RoleBasedGroup's own CRDs, as released (tests/third_party/, with its license).
RBG = ROOT / "tests" / "third_party" / "rbg-v0.8.0-alpha.5" / "crds"
RBG_CRD = RBG / "workloads.x-k8s.io_rolebasedgroups.yaml"
RBG_ADAPTER_CRD = RBG / "workloads.x-k8s.io_rolebasedgroupscalingadapters.yaml"
RBGS = "rolebasedgroups.workloads.x-k8s.io"
ADAPTERS = "rolebasedgroupscalingadapters.workloads.x-k8s.io"


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
    """Server-side: RBG's CRD (2.8 MB) is too big for kubectl's client-side annotation."""
    if isinstance(manifest, Path):
        manifest = yaml.safe_load(manifest.read_text())
    assert isinstance(manifest, dict)
    kubectl.run(
        "apply", "--server-side", "--force-conflicts", "-f", "-", input=yaml.safe_dump(manifest)
    )
    name = manifest["metadata"]["name"]

    def established() -> bool:  # (kubectl wait fails on a CRD with no conditions yet)
        found = kubectl.get("crd", name, "") or {}
        conditions = (found.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, what=f"CRD {name} established")


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


def rolebasedgroup(
    name: str,
    roles: dict[str, int],
    version: str = "v1alpha1",
    adapters: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A RoleBasedGroup valid under RBG's real CRD: each role with its pod template (in
    v1alpha2, a standalone pattern's); `adapters`: roles with the scaling adapter on."""

    def role(role: str, replicas: int) -> dict[str, Any]:
        template = {"spec": {"containers": [{"name": "engine", "image": "registry.invalid/x:1"}]}}
        found: dict[str, Any] = {"name": role, "replicas": replicas}
        if version == "v1alpha1":
            found["template"] = template
        else:
            found["standalonePattern"] = {"template": template}
        if role in adapters:
            found["scalingAdapter"] = {"enable": True}
        return found

    return {
        "apiVersion": f"workloads.x-k8s.io/{version}",
        "kind": "RoleBasedGroup",
        "metadata": {"name": name},
        "spec": {"roles": [role(r, n) for r, n in roles.items()]},
    }


def scaling_adapter(rbg: str, role: str, replicas: int | None = None) -> dict[str, Any]:
    """The RoleBasedGroupScalingAdapter RBG's controller makes for a role that enables
    one (named `<rbg>-<role>`)."""
    spec: dict[str, Any] = {"scaleTargetRef": {"name": rbg, "role": role}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {
        "apiVersion": "workloads.x-k8s.io/v1alpha2",
        "kind": "RoleBasedGroupScalingAdapter",
        "metadata": {"name": f"{rbg}-{role}"},
        "spec": spec,
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


def report_roles(
    kubectl: Kubectl,
    name: str,
    namespace: str,
    running: dict[str, int],
    ready: dict[str, int] | None = None,
) -> None:
    """Stand in for RBG's controller: report what each role runs (and has ready; all, by
    default), for the RBG's current generation."""
    found = kubectl.get(RBGS, name, namespace)
    assert found is not None
    ready = running if ready is None else ready
    status = {
        "observedGeneration": found["metadata"]["generation"],
        "roleStatuses": [
            {"name": n, "replicas": r, "readyReplicas": ready[n], "updatedReplicas": r}
            for n, r in running.items()
        ],
    }
    kubectl.run(
        "patch", RBGS, name, "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip


def hpa(
    kind: str, api_version: str, name: str, low: int, high: int, quick_down: bool = True
) -> dict[str, Any]:
    """An autoscaling/v2 HPA on cpu utilization (50 %); with `quick_down`, scaling down
    without a stabilization window (the default 300 s only delays a test, it changes no
    decision)."""
    made: dict[str, Any] = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": name},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 50},
                    },
                }
            ],
        },
    }
    if quick_down:
        made["spec"]["behavior"] = {"scaleDown": {"stabilizationWindowSeconds": 0}}
    return made
