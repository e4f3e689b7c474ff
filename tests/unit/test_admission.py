"""admission: what the webhook refuses, each message naming its field."""

from __future__ import annotations

import copy
from typing import Any

from rsg_operator import admission, api, graph
from tests.specs import follow, group_spec, rsg, target

NS = "ai"


def stored(name: str, spec: dict[str, Any]) -> graph.Claim:
    return graph.claim((NS, name), "2026-01-01T00:00:00Z", api.parse_spec(spec))


def given(*claims: graph.Claim) -> admission.Related:
    """The stored claims the webhook would find related (here: all of them)."""
    return lambda _: claims


def manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    obj = rsg(name, spec)
    obj["metadata"]["namespace"] = NS
    return obj


def test_an_invalid_ratio_is_refused_naming_its_binding() -> None:
    (message,) = admission.refusals(manifest("p", follow("a", "b", "-1")), None, given())
    assert message.startswith("spec.scalingStrategy.inplaceConfig.bindings[1].ratio")


def test_a_target_claimed_twice_names_the_binding_and_the_other_rsg() -> None:
    others = [stored("pool-a", follow("router", "decode"))]
    (message,) = admission.refusals(
        manifest("pool-b", follow("gateway", "decode")), None, given(*others)
    )
    assert message == (
        "spec.scalingStrategy.inplaceConfig.bindings[1]: Deployment ai/decode is already a "
        "Target of RSG ai/pool-a; a resource follows one Source only"
    )


def test_a_cycle_through_stored_rsgs_is_refused() -> None:
    two = [stored("ab", follow("a", "b"))]
    (message,) = admission.refusals(manifest("ba", follow("b", "a")), None, given(*two))
    assert message.startswith("spec.scalingStrategy.inplaceConfig.bindings[1]: Source->Target")
    three = [stored("ab", follow("a", "b")), stored("bc", follow("b", "c"))]
    (message,) = admission.refusals(manifest("ca", follow("c", "a")), None, given(*three))
    assert "cycle" in message


def test_a_seed_member_of_another_rsg_is_refused() -> None:
    others = [stored("units", group_spec(target("prefill"), target("decode")))]
    (message,) = admission.refusals(
        manifest("more", group_spec(target("decode"))), None, given(*others)
    )
    assert message.startswith("spec.targetResources[0]: Deployment ai/decode is already the seed")


def test_prefix_and_type_cannot_change_on_a_live_rsg() -> None:
    old = manifest("units", group_spec())
    renamed = copy.deepcopy(old)
    renamed["spec"]["scalingStrategy"]["groupConfig"]["groupNamePrefix"] = "other"
    (message,) = admission.refusals(renamed, old, given())
    assert message.startswith("spec.scalingStrategy.groupConfig.groupNamePrefix: cannot change")
    retyped = manifest("units", follow("prefill", "decode"))
    (message,) = admission.refusals(retyped, old, given())
    assert message.startswith("spec.scalingStrategy.type: cannot change from GroupReplication")


def test_a_valid_update_beside_other_rsgs_is_admitted() -> None:
    old = manifest("pool", follow("router", "decode"))
    new = manifest("pool", follow("router", "decode", "2.5"))
    others = [stored("pool", follow("router", "decode")), stored("x", follow("y", "z"))]
    assert admission.refusals(new, old, given(*others)) == []


def test_a_name_too_long_is_refused() -> None:
    (message,) = admission.refusals(manifest("p" * 64, follow("a", "b")), None, given())
    assert message.startswith("metadata.name: must be at most 63 characters")


def test_metadata_updates_and_deletions_are_admitted_even_in_conflict() -> None:
    others = [stored("pool-a", follow("router", "decode"))]
    old = manifest("pool-b", follow("gateway", "decode"))  # stored without the webhook
    released = copy.deepcopy(old)
    released["metadata"]["finalizers"] = []
    assert admission.refusals(released, old, given(*others)) == []
    deleting = copy.deepcopy(old)
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    deleting["spec"]["scalingStrategy"]["inplaceConfig"]["bindings"][1]["ratio"] = 3
    assert admission.refusals(deleting, old, given(*others)) == []
    changed = copy.deepcopy(old)
    changed["spec"]["scalingStrategy"]["inplaceConfig"]["bindings"][1]["ratio"] = 3
    assert admission.refusals(changed, old, given(*others)) != []  # a spec change is checked
