"""spec parsing: accepted forms normalise to one internal form; bad specs name their field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from rsg_operator import api, kinds
from tests.specs import INVALID, Invalid, group_spec, inplace_spec

EXAMPLES = Path(__file__).parents[2] / "examples"


def seed(name: str) -> dict[str, object]:
    spec: dict[str, object] = yaml.safe_load((EXAMPLES / name).read_text())["spec"]
    return spec


def test_group_replication_seed_equals_its_nested_and_prefix_form() -> None:
    nested = {
        "targetResources": [
            {
                "namespace": "ai",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill"},
            },
            {
                "namespace": "ai",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "decode"},
            },
        ],
        "scalingStrategy": {
            "type": "GroupReplication",
            "groupConfig": {
                "groupNamePrefix": "inference-unit",
                "scaleDown": {"candidates": ["inference-unit-02"]},
            },
        },
    }
    parsed = api.parse_spec(seed("group-replication.yaml"))
    assert parsed == api.parse_spec(nested)
    assert parsed.strategy == api.GroupReplication(
        prefix="inference-unit",
        replicas=1,
        scale_down=api.ScaleDown(
            policy=api.ScaleDownPolicy.ORDERED, candidates=("inference-unit-02",)
        ),
    )
    assert [t.id for t in parsed.targets] == ["prefill", "decode"]


def test_inplace_seed_equals_its_nested_and_string_ratio_form() -> None:
    nested = {
        "targetResources": [
            {
                "namespace": "ai",
                "subResources": [{"roleName": "prefill"}, {"roleName": "Decode"}],
                "targetRef": {
                    "apiVersion": "workloads.x-k8s.io/v1alpha1",
                    "kind": "RoleBasedGroup",
                    "name": "rolebasedgroup1",
                },
            },
            {
                "namespace": "ai",
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "router"},
            },
        ],
        "scalingStrategy": {
            "type": "InplaceScaling",
            "inplaceConfig": {
                "bindings": [
                    {"name": "router", "role": "Source"},
                    {"name": "prefill", "role": "Target", "ratio": "1.0"},
                    {"name": "decode", "role": "Target", "ratio": "2.0"},
                ]
            },
        },
    }
    parsed = api.parse_spec(seed("inplace-scaling.yaml"))
    assert parsed == api.parse_spec(nested)
    assert isinstance(parsed.strategy, api.InplaceScaling)
    assert parsed.strategy.source.target_id == "router"
    decode = parsed.strategy.targets[1]
    # The seed binds `decode` to the role written `Decode`: a unique case-insensitive match.
    assert (decode.target_id, decode.role_name, decode.ratio) == (
        "rolebasedgroup1",
        "Decode",
        Decimal("2.0"),
    )


def test_target_ref_with_its_own_local_id() -> None:
    spec = group_spec()
    spec["targetResources"][0] = {
        "name": "p",
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "prefill"},
    }
    target = api.parse_spec(spec).targets[0]
    assert (target.id, target.name) == ("p", "prefill")


@pytest.mark.parametrize("written, exact", [(1, "1"), (0.333, "0.333"), ("2.5", "2.5"), (0, "0")])
def test_ratio_numbers_and_strings_are_exact_decimals(written: object, exact: str) -> None:
    spec = inplace_spec()
    spec["scalingStrategy"]["inplaceConfig"]["bindings"][1]["ratio"] = written
    strategy = api.parse_spec(spec).strategy
    assert isinstance(strategy, api.InplaceScaling)
    assert strategy.targets[0].ratio == Decimal(exact)


def test_target_ratio_defaults_to_one() -> None:
    spec = inplace_spec()
    del spec["scalingStrategy"]["inplaceConfig"]["bindings"][1]["ratio"]
    strategy = api.parse_spec(spec).strategy
    assert isinstance(strategy, api.InplaceScaling)
    assert strategy.targets[0].ratio == Decimal(1)


def test_exact_binding_match_wins_over_case_insensitive() -> None:
    targets = (
        api.Target(
            id="x", name="x", namespace=None, api_version="v1", kind="K", roles=("decode", "Decode")
        ),
    )
    assert api.resolve_binding("Decode", targets) == ("x", "Decode")
    with pytest.raises(LookupError, match="case-insensitively"):
        api.resolve_binding("DECODE", targets)


def test_at_least_25_invalid_specs_are_covered() -> None:
    assert len(INVALID) >= 25
    assert len({case.id for case in INVALID}) == len(INVALID)


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.id)
def test_invalid_spec_is_refused_naming_the_field(case: Invalid) -> None:
    with pytest.raises(api.SpecError) as error:
        api.parse_spec(case.spec)
    assert case.field in str(error.value)
    assert all(path.startswith("spec") for path, _ in error.value.problems)


def test_a_role_is_found_exactly_then_by_a_unique_case_insensitive_match() -> None:
    rbg = {"spec": {"roles": [{"name": "prefill"}, {"name": "decode"}]}}
    assert kinds.role_named(rbg, "Decode") == "decode"
    assert kinds.role_named(rbg, "prefill") == "prefill"
    both = {"spec": {"roles": [{"name": "decode"}, {"name": "Decode"}]}}
    assert kinds.role_named(both, "Decode") == "Decode"  # the exact one wins
    with pytest.raises(LookupError, match="case-insensitively"):
        kinds.role_named(both, "DECODE")
    with pytest.raises(LookupError, match=r"has no role 'router' \(roles: decode, prefill\)"):
        kinds.role_named(rbg, "router")


def test_a_role_is_the_same_member_however_its_case_is_written() -> None:
    upper = api.Member("workloads.x-k8s.io/v1alpha1", "RoleBasedGroup", "ai", "pool", "Decode")
    lower = api.Member("workloads.x-k8s.io/v1alpha2", "RoleBasedGroup", "ai", "pool", "decode")
    assert upper.identity == lower.identity


def test_a_name_that_cannot_be_a_label_value_is_refused() -> None:
    api.check_name("p" * api.MAX_NAME_LENGTH)
    with pytest.raises(api.SpecError) as error:
        api.check_name("p" * (api.MAX_NAME_LENGTH + 1))
    assert error.value.problems[0][0] == "metadata.name"
    assert "64" in str(error.value)
