"""Found by review: the RSG's status.labelSelector (the HPA's `status.selector`) must
match the first member's pods in every group (SPEC: "the pod selector of the first target
resource, which clones keep, so it matches that member's pods in every group")."""

from __future__ import annotations

import math
import re
from typing import Any

from rsg_operator import api, clone, labels
from rsg_operator.reconcilers import group_replication
from tests.specs import target

RBG_LABEL = "rbg.workloads.x-k8s.io/group-name"  # what RBG labels each group's pods with


def seed_rbg(version: str) -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "router"}}, "spec": {"containers": []}}
    role: dict[str, Any] = {"name": "router", "replicas": 1}
    if version == "v1alpha1":
        role["template"] = template
    else:
        role["standalonePattern"] = {"template": template}
    return {
        "apiVersion": f"workloads.x-k8s.io/{version}",
        "kind": "RoleBasedGroup",
        "metadata": {
            "name": "pool",
            "namespace": "ai",
            "uid": "u-pool",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": labels.group_labels("pd", "unit", 1),
        },
        "spec": {"roles": [role]},
        "status": {
            "observedGeneration": 1,
            "roleStatuses": [
                {"name": "router", "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}
            ],
        },
    }


def pods_of(rbg: dict[str, Any], version: str) -> dict[str, str]:
    """The labels RBG's controller gives the pod of the rbg's router role: the template's,
    and the group name (label.go; v1alpha1: the rolebasedgroup. prefix)."""
    role = rbg["spec"]["roles"][0]
    template = role.get("template") or role["standalonePattern"]["template"]
    prefix = "rbg" if version == "v1alpha2" else "rolebasedgroup"
    return {
        **(template["metadata"].get("labels") or {}),
        f"{prefix}.workloads.x-k8s.io/group-name": rbg["metadata"]["name"],
    }


def matches(selector: str, pod: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics for the forms RSG writes: `k=v`, `!k` and
    `k in (a,b)`."""
    terms = re.findall(r"[^,(]+(?:\([^)]*\))?", selector)
    for term in (t.strip() for t in terms if t.strip()):
        if term.startswith("!"):
            if term[1:] in pod:
                return False
        elif " in (" in term:
            key, _, values = term.partition(" in (")
            if pod.get(key) not in values.rstrip(")").split(","):
                return False
        else:
            key, _, value = term.partition("=")
            if pod.get(key) != value:
                return False
    return True


def test_the_hpa_selector_of_an_rsg_whose_first_member_is_an_rbg_matches_every_group() -> None:
    for version in ("v1alpha1", "v1alpha2"):
        rbg = target("pool", "RoleBasedGroup", f"workloads.x-k8s.io/{version}")
        spec = api.parse_spec(
            {
                "targetResources": [rbg],
                "scalingStrategy": {
                    "type": "GroupReplication",
                    "groupConfig": {"groupNamePrefix": "unit", "replicas": 3},
                },
            }
        )
        seed = seed_rbg(version)
        owner = clone.Owner(api.API_VERSION, api.KIND, "pd", "u-pd")
        groups: dict[int, dict[str, Any]] = {1: {"pool": seed}}
        for index in (2, 3):
            made = clone.clone(seed, owner, "unit", index, ["pool"])
            made["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
            made["status"] = seed["status"]
            groups[index] = {"pool": made}
        found = group_replication._status(
            spec, "unit", groups[1], groups, dict.fromkeys(groups, group_replication.SERVING), {}
        )
        selector = found["labelSelector"]
        pods = [pods_of(g["pool"], version) for _, g in sorted(groups.items())]
        matched = [p for p in pods if matches(selector, p)]
        # What the HPA then recommends (replica_calculator: ceil(ratio x ready pods
        # matched)) at 60 % against a 50 % target, with 3 groups serving:
        recommended = math.ceil(60 / 50 * len(matched))
        print(
            version,
            repr(selector),
            f"matches {len(matched)} of {len(pods)} groups' pods;",
            f"HPA at 60%/50% with {found['currentReplicas']} groups -> {recommended}",
        )
        assert len(matched) == len(pods), (
            f"{version}: status.labelSelector {selector!r} matches the pods of "
            f"{len(matched)} of {len(pods)} groups; an HPA at 60% of a 50% target "
            f"recommends {recommended} groups for {found['currentReplicas']} serving"
        )
