"""The CRD at admission: seed examples accepted verbatim, bad specs refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Kubectl
from tests.specs import INVALID, Invalid, group_spec, inplace_spec, rsg

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


def test_a_name_too_long_for_a_label_value_is_refused(
    kubectl: Kubectl, namespace: str, crd: str
) -> None:
    name = "r" * 64
    result = kubectl.apply(rsg(name, group_spec()), namespace, check=False)
    assert result.returncode != 0
    assert "at most 63 characters" in result.stderr
    assert kubectl.get("rsg", name, namespace) is None
    kubectl.apply(rsg("r" * 63, group_spec()), namespace)  # the longest that works


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ("groupNamePrefix", "groupNamePrefix", "groupNamePrefix cannot change on a live RSG"),
        ("groupName", "groupNamePrefix", "groupNamePrefix cannot change on a live RSG"),
        ("type", "type", "type cannot change on a live RSG"),
    ],
)
def test_a_change_of_prefix_or_type_is_refused(
    kubectl: Kubectl, namespace: str, crd: str, change: str, field: str, message: str
) -> None:
    kubectl.apply(rsg("units", group_spec()), namespace)
    before = kubectl.get("rsg", "units", namespace)
    assert before is not None
    edited = group_spec()
    config = edited["scalingStrategy"]["groupConfig"]
    if change == "type":
        edited["scalingStrategy"] = inplace_spec()["scalingStrategy"]
        edited["targetResources"] = inplace_spec()["targetResources"]
    elif change == "groupName":  # the alias, spelling a new prefix
        config["groupName"] = config.pop("groupNamePrefix") + "x"
    else:
        config["groupNamePrefix"] = "other"
    result = kubectl.apply(rsg("units", edited), namespace, check=False)
    assert result.returncode != 0, f"a change of {change} was admitted"
    assert message in result.stderr and field in result.stderr
    after = kubectl.get("rsg", "units", namespace)
    assert after is not None and after["spec"] == before["spec"]


def test_other_updates_of_a_live_rsg_are_admitted(
    kubectl: Kubectl, namespace: str, crd: str
) -> None:
    kubectl.apply(rsg("units", group_spec(prefix="unit")), namespace)
    aliased = group_spec(replicas=3, policy="Newest")
    config = aliased["scalingStrategy"]["groupConfig"]
    config["groupName"] = config.pop("groupNamePrefix")  # the same prefix, the alias spelling
    kubectl.apply(rsg("units", aliased), namespace)
    stored = (kubectl.get("rsg", "units", namespace) or {})["spec"]["scalingStrategy"]
    assert stored["groupConfig"]["replicas"] == 3
