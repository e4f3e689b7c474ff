"""Static target rules: namespaces and cloneable kinds, before anything is read."""

from __future__ import annotations

from rsg_operator import api
from rsg_operator.reconcilers.targets import static_problems
from rsg_operator.settings import Settings
from rsg_operator.status import Reason
from tests.specs import group_spec, inplace_spec

ALLOW = Settings(allow_cross_namespace=True)


def elsewhere(spec: dict[str, object]) -> api.RSGSpec:
    spec["targetResources"][0]["namespace"] = "other"  # type: ignore[index]
    return api.parse_spec(spec)


def test_inplace_targets_elsewhere_need_the_allow_flag() -> None:
    spec = elsewhere(inplace_spec())
    assert [p.reason for p in static_problems(spec, "ai", Settings())] == [
        Reason.CROSS_NAMESPACE_TARGET
    ]
    assert static_problems(spec, "ai", ALLOW) == []


def test_group_replication_never_clones_from_another_namespace() -> None:
    problems = static_problems(elsewhere(group_spec()), "ai", ALLOW)
    assert [p.reason for p in problems] == [Reason.CROSS_NAMESPACE_TARGET]
    assert "own namespace" in problems[0].message


def test_group_replication_refuses_kinds_it_cannot_clone() -> None:
    spec = group_spec()
    spec["targetResources"][1] = {"name": "job", "apiVersion": "batch/v1", "kind": "Job"}
    problems = static_problems(api.parse_spec(spec), "ai", Settings())
    assert [p.reason for p in problems] == [Reason.KIND_NOT_CLONEABLE]
    assert "cannot clone kind Job" in problems[0].message
