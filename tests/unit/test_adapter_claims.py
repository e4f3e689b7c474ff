"""Found by review: a role whose replicas RBG's scaling adapter holds is written through
the adapter (`<rbg>-<role>`). The cross-RSG rules (graph.py, the webhook) must then see
the role and its adapter as one member: SPEC §4, "a resource may be a Target of at most
one RSG"; "two RSGs never write one object back and forth"."""

from __future__ import annotations

from rsg_operator import api, graph

RBG = "workloads.x-k8s.io/v1alpha2"


def inplace(source: dict, decode: dict, binding: str = "decode") -> api.RSGSpec:
    return api.parse_spec(
        {
            "targetResources": [source, decode],
            "scalingStrategy": {
                "type": "InplaceScaling",
                "inplaceConfig": {
                    "bindings": [
                        {"name": source["name"], "role": "Source"},
                        {"name": binding, "role": "Target", "ratio": 2},
                    ]
                },
            },
        }
    )


def test_a_role_and_its_scaling_adapter_are_one_target() -> None:
    router = {"name": "router", "apiVersion": "apps/v1", "kind": "Deployment"}
    # RSG a: decode is role `decode` of RBG pool (which enables its scaling adapter, so
    # RSG writes RoleBasedGroupScalingAdapter pool-decode's /scale).
    by_role = inplace(
        router,
        {"name": "pool", "apiVersion": RBG, "kind": "RoleBasedGroup",
         "subResources": [{"roleName": "decode"}]},
    )  # fmt: skip
    # RSG b (younger): decode is the adapter itself, a scalable kind (its /scale), as
    # RBG's docs tell an external scaler to do.
    gateway = {"name": "gateway", "apiVersion": "apps/v1", "kind": "Deployment"}
    by_adapter = inplace(
        gateway,
        {"name": "pool-decode", "apiVersion": RBG, "kind": "RoleBasedGroupScalingAdapter"},
        "pool-decode",
    )
    older = graph.claim(("ai", "a"), "2026-01-01T00:00:00Z", by_role)
    younger = graph.claim(("ai", "b"), "2026-01-02T00:00:00Z", by_adapter)
    found = graph.problems(younger, [older, younger])
    assert found, "two RSGs both write RoleBasedGroupScalingAdapter ai/pool-decode's /scale"
