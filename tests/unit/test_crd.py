"""The CRD and the pydantic model agree; every field is documented for `kubectl explain`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from rsg_operator import api

CRD_FILE = Path(__file__).parents[2] / "crds" / "resourcescalinggroups.yaml"
CRD = yaml.safe_load(CRD_FILE.read_text())
VERSION = CRD["spec"]["versions"][0]
SPEC = VERSION["schema"]["openAPIV3Schema"]["properties"]["spec"]


def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for name, child in (schema.get("properties") or {}).items():
        found += walk(child, f"{path}.{name}")
    if "items" in schema:
        found += walk(schema["items"], f"{path}[]")
    return found


def test_every_field_has_a_description() -> None:
    root = VERSION["schema"]["openAPIV3Schema"]
    undocumented = [p for p, s in walk(root) if p and p != ".metadata" and not s.get("description")]
    assert undocumented == []


def test_identity_matches_the_api_module() -> None:
    assert CRD["spec"]["group"] == api.GROUP
    assert VERSION["name"] == api.VERSION
    assert CRD["spec"]["names"]["kind"] == api.KIND
    assert CRD["spec"]["names"]["plural"] == api.PLURAL
    assert CRD["spec"]["names"]["shortNames"] == ["rsg"]


def test_scale_subresource_paths_are_the_specs() -> None:
    assert VERSION["subresources"]["scale"] == {
        "specReplicasPath": ".spec.scalingStrategy.groupConfig.replicas",
        "statusReplicasPath": ".status.currentReplicas",
        "labelSelectorPath": ".status.labelSelector",
    }


def test_bounds_match_the_api_module() -> None:
    fields = dict(walk(SPEC))
    group = ".scalingStrategy.groupConfig"
    assert fields[".targetResources"]["maxItems"] == api.MAX_TARGETS
    assert fields[".targetResources[].subResources"]["maxItems"] == api.MAX_ROLES_PER_TARGET
    assert fields[".scalingStrategy.inplaceConfig.bindings"]["maxItems"] == api.MAX_BINDINGS
    assert fields[f"{group}.scaleDown.candidates"]["maxItems"] == api.MAX_CANDIDATES
    assert fields[f"{group}.replicas"]["maximum"] == api.MAX_GROUPS
    assert fields[f"{group}.groupNamePrefix"]["maxLength"] == api.MAX_PREFIX_LENGTH
    assert fields[f"{group}.groupNamePrefix"]["pattern"] == api.DNS_LABEL
    assert fields[".targetResources[].name"]["pattern"] == api.DNS_SUBDOMAIN
    budget = str(api.MAX_CLONE_NAME_LENGTH - api.CLONE_NAME_OVERHEAD)
    assert any(budget in rule["rule"] for rule in SPEC["x-kubernetes-validations"])


def test_printer_columns() -> None:
    names = [c["name"] for c in VERSION["additionalPrinterColumns"]]
    assert names == ["Type", "Desired", "Current", "Ready", "Age"]
