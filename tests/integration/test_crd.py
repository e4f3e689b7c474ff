"""The CRD at admission: seed examples accepted verbatim, bad specs refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Kubectl
from tests.specs import INVALID, Invalid, group_spec, rsg

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("example", ["group-replication.yaml", "inplace-scaling.yaml"])
def test_seed_example_is_accepted_verbatim(kubectl: Kubectl, ai: str, example: str) -> None:
    kubectl.run("apply", "-n", ai, "-f", str(EXAMPLES / example))
    name = yaml.safe_load((EXAMPLES / example).read_text())["metadata"]["name"]
    stored = kubectl.get("rsg", name, ai)
    assert stored is not None
    assert stored["spec"]["targetResources"][0]["namespace"] == "ai"


def test_get_rsg_shows_type_desired_current_ready_age(kubectl: Kubectl, ai: str) -> None:
    kubectl.run("apply", "-n", ai, "-f", str(EXAMPLES / "group-replication.yaml"))
    header, *rows = kubectl.run("get", "rsg", "-n", ai).stdout.splitlines()
    assert header.split() == ["NAME", "TYPE", "DESIRED", "CURRENT", "READY", "AGE"]
    row = next(r.split() for r in rows if r.startswith("pd-cluster "))
    assert row[1:3] == ["GroupReplication", "1"]


def test_scale_subresource_returns_the_group_count(
    kubectl: Kubectl, namespace: str, crd: str
) -> None:
    spec = group_spec()
    spec["scalingStrategy"]["groupConfig"]["replicas"] = 4
    kubectl.apply(rsg("units", spec), namespace)
    path = (
        f"/apis/resourcescalinggroup.com/v1/namespaces/{namespace}"
        "/resourcescalinggroups/units/scale"
    )
    scale = json.loads(kubectl.run("get", "--raw", path).stdout)
    assert (scale["kind"], scale["spec"]["replicas"]) == ("Scale", 4)
    kubectl.run("scale", "rsg/units", "--replicas=2", "-n", namespace)
    assert json.loads(kubectl.run("get", "--raw", path).stdout)["spec"]["replicas"] == 2


def test_scale_of_an_inplace_rsg_is_refused_clearly(kubectl: Kubectl, ai: str) -> None:
    kubectl.run("apply", "-n", ai, "-f", str(EXAMPLES / "inplace-scaling.yaml"))
    result = kubectl.run("scale", "rsg/pd-pool", "--replicas=3", "-n", ai, check=False)
    assert result.returncode != 0
    assert "groupConfig is not allowed when type is InplaceScaling" in result.stderr
    assert "Source" in result.stderr


ADMISSION = [case for case in INVALID if case.admission]


@pytest.mark.parametrize("case", ADMISSION, ids=lambda c: c.id)
def test_invalid_spec_is_refused_by_the_apiserver(
    kubectl: Kubectl, namespace: str, crd: str, case: Invalid
) -> None:
    result = kubectl.apply(rsg("bad", case.spec), namespace, check=False)
    assert result.returncode != 0, f"{case.id} was accepted"
    assert case.field in result.stderr
    assert kubectl.get("rsg", "bad", namespace) is None
