"""Many RSGs at once, and connections that drop (SPEC §6): the operator runs with a
resync of an hour (conftest), so every reaction here comes from a watch."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from rsg_operator.local_cluster import LocalControlPlane
from tests.integration.conftest import Kubectl, Operator
from tests.integration.proxy import TcpProxy
from tests.integration.workloads import deployment, replicas, writers
from tests.specs import follow, group_spec, rsg, target

INPLACE, GROUPED, OTHERS = 50, 10, 20
# Every connection the operator holds (its RSG watch, one watch per member kind, a
# bounded pool for requests) stays far below what a few dozen RSGs used to need.
MAX_CONNECTIONS = 20


def apply_all(kubectl: Kubectl, manifests: list[dict[str, Any]], namespace: str) -> None:
    kubectl.run("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(manifests))


def listed(kubectl: Kubectl, kind: str, namespace: str) -> dict[str, dict[str, Any]]:
    out = kubectl.run("get", kind, "-n", namespace, "-o", "json", "--show-managed-fields")
    items = json.loads(out.stdout)["items"]
    return {item["metadata"]["name"]: item for item in items}


def reconciled(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and ready.get("status") == "True"
    )


@pytest.mark.slow
def test_sixty_rsgs_converge_and_the_last_follows_its_source(
    operator: Operator, kubectl: Kubectl, namespace: str, proxy: TcpProxy
) -> None:
    manifests = [deployment(f"other-{k}", 0) for k in range(OTHERS)]
    for i in range(INPLACE):
        manifests += [deployment(f"router-{i}", 1 + i % 3), deployment(f"decode-{i}", 0)]
    manifests += [deployment(f"seed-{j}", 0) for j in range(GROUPED)]
    apply_all(kubectl, manifests, namespace)
    others_before = listed(kubectl, "deployments", namespace)
    rsgs = [rsg(f"pool-{i}", follow(f"router-{i}", f"decode-{i}")) for i in range(INPLACE)]
    rsgs += [
        rsg(f"unit-{j}", group_spec(target(f"seed-{j}"), prefix=f"u{j}", replicas=2))
        for j in range(GROUPED)
    ]
    apply_all(kubectl, rsgs, namespace)

    def converged() -> bool:
        found = listed(kubectl, "deployments", namespace)
        followed = all(
            found[f"decode-{i}"]["spec"]["replicas"] == 2 * (1 + i % 3) for i in range(INPLACE)
        )
        cloned = all(f"u{j}-02-seed-{j}" in found for j in range(GROUPED))
        every = listed(kubectl, "rsg", namespace).values()
        return (
            followed and cloned and len(every) == INPLACE + GROUPED and all(map(reconciled, every))
        )

    operator.wait_for(converged, timeout=120, what="all 60 RSGs reconciled")

    last = INPLACE - 1
    kubectl.run("scale", f"deployment/router-{last}", "--replicas=7", "-n", namespace)
    operator.wait_for(
        lambda: replicas(kubectl, "deployment", f"decode-{last}", namespace) == 14,
        what=f"decode-{last} follows router-{last} to 14",
    )

    after = listed(kubectl, "deployments", namespace)
    for k in range(OTHERS):
        name = f"other-{k}"
        assert "rsg-operator" not in writers(after[name]), f"{name} was written"
        assert after[name]["metadata"].get("labels") == others_before[name]["metadata"].get(
            "labels"
        )
    assert proxy.peak_connections <= MAX_CONNECTIONS, (
        f"the operator held up to {proxy.peak_connections} connections"
    )


def assert_reactions_come_back(
    operator: Operator, kubectl: Kubectl, namespace: str, attempt: str
) -> None:
    """After connections were lost: a Source change, a deleted clone and an RSG scaled
    are each acted on, through watches that came back by themselves."""
    kubectl.run("scale", "deployment/router", "--replicas=3", "-n", namespace)
    operator.wait_for(
        lambda: replicas(kubectl, "deployment", "decode", namespace) == 6,
        what=f"decode follows router after {attempt}",
    )
    clone = kubectl.get("deployment", "unit-02-seed", namespace)
    assert clone is not None
    kubectl.run("delete", "deployment/unit-02-seed", "-n", namespace)
    operator.wait_recreated(kubectl, "deployment", "unit-02-seed", namespace, clone)
    kubectl.run("scale", "rsg/units", "--replicas=3", "-n", namespace)
    operator.wait_for(
        lambda: kubectl.get("deployment", "unit-03-seed", namespace),
        what=f"group unit-03 created after {attempt}",
    )


def setup_pair(operator: Operator, kubectl: Kubectl, namespace: str) -> None:
    apply_all(
        kubectl,
        [deployment("router", 1), deployment("decode", 0), deployment("seed", 0)],
        namespace,
    )
    apply_all(
        kubectl,
        [
            rsg("pool", follow("router", "decode")),
            rsg("units", group_spec(target("seed"), replicas=2)),
        ],
        namespace,
    )
    operator.wait_for(
        lambda: (
            replicas(kubectl, "deployment", "decode", namespace) == 2
            and kubectl.get("deployment", "unit-02-seed", namespace)
        ),
        what="both RSGs reconciled",
    )


def lost_watches(operator: Operator) -> int:
    return operator.log_text().count("lost (")


def test_cut_connections_are_resumed_by_the_watches(
    operator: Operator, kubectl: Kubectl, namespace: str, proxy: TcpProxy
) -> None:
    setup_pair(operator, kubectl, namespace)
    before = lost_watches(operator)
    assert proxy.cut() > 0
    assert_reactions_come_back(operator, kubectl, namespace, "a connection reset")
    assert lost_watches(operator) > before, "the lost member watch was not reported"


@pytest.mark.slow
def test_an_apiserver_restart_is_survived(
    operator: Operator,
    kubectl: Kubectl,
    namespace: str,
    control_plane: LocalControlPlane,
) -> None:
    setup_pair(operator, kubectl, namespace)
    control_plane.restart_apiserver()
    assert_reactions_come_back(operator, kubectl, namespace, "an apiserver restart")
