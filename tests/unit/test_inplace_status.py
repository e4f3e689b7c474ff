"""InplaceScaling's status from what runs, ReplicasNotTakenUp and its
Warning (inplace.py, contest.py, status.py), driven as the controller drives them: one
reconcile after another, each status patch stored, each Warning posted."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from rsg_operator import api, contest, status
from rsg_operator.kube import ApiResource
from rsg_operator.reconcilers import inplace
from tests.specs import follow, target

NS = "ai"


class FakeCluster:
    """What inplace.reconcile uses of Cluster: discovery, /scale and JSON-patch writes
    (kept, as the cache keeps our write's answer), and managedFields' writers."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, int]] = []

    async def resource(self, api_version: str, kind: str) -> ApiResource:
        plural = kind.lower() + "s"
        return ApiResource(api_version, kind, plural, True, frozenset({"scale", "status"}))

    def writers(self, obj: dict[str, Any]) -> dict[str, tuple[str, ...]]:
        return {}

    def latest(self, obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    async def scale(self, obj: dict[str, Any], replicas: int, pointer: str | None) -> int:
        self.writes.append((obj["metadata"]["name"], replicas))
        obj["spec"]["replicas"] = replicas
        return replicas

    async def json_patch(self, obj: dict[str, Any], operations: list[dict[str, Any]]) -> Any:
        patched = copy.deepcopy(obj)
        for op in operations:
            if op["op"] == "add":
                _, spec, roles, index, field = op["path"].split("/")
                patched[spec][roles][int(index)][field] = op["value"]
                self.writes.append((obj["metadata"]["name"], op["value"]))
        return patched


def workload(
    name: str, kind: str, spec: int, running: int | None, ready: int | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS, "resourceVersion": "1", "generation": 2},
        "spec": {"replicas": spec},
    }
    if running is not None:
        found["status"] = {
            "observedGeneration": 2,
            "replicas": running,
            "readyReplicas": running if ready is None else ready,
        }
    return found


class Driver:
    """The controller's loop for one RSG: reconcile, store the status patch, post the
    Warning `status.outcome` asks for."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = api.parse_spec(spec)
        self.cluster = FakeCluster()
        self.writes = contest.Members()
        self.stored: dict[str, Any] = {}
        self.warnings: list[tuple[str, str]] = []
        self.status_writes = 0

    def reconcile(self, objects: dict[str, dict[str, Any]], now: float) -> inplace.Report:
        strategy = self.spec.strategy
        assert isinstance(strategy, api.InplaceScaling)
        report = asyncio.run(
            inplace.reconcile(
                self.cluster,  # type: ignore[arg-type]
                self.spec,
                strategy,
                objects,
                NS,
                self.writes,
                now,
            )
        )
        outcome = status.outcome(
            self.stored, 1, report.problems, "2026-01-01T00:00:00Z", report.fields, report.healthy
        )
        if outcome.patch:
            self.status_writes += 1
            self.stored = {**self.stored, **outcome.patch}
        if outcome.warning is not None:
            self.warnings.append((str(outcome.warning.reason), outcome.warning.message))
        return report

    def ready(self) -> dict[str, Any]:
        return next(c for c in self.stored["conditions"] if c["type"] == "Ready")


def test_a_statefulset_that_scales_up_pod_by_pod_is_not_a_count_not_taken_up() -> None:
    """router 2 -> 4 makes decode (a StatefulSet, ratio 2) 8. A StatefulSet makes its pods
    one at a time, each once the previous is Ready (podManagementPolicy OrderedReady, the
    default); an inference pod takes minutes to load its model. Nothing overrides the
    count: the StatefulSet is on its way to 8. RSG reports Ready False
    ReplicasNotTakenUp, and posts a new Warning for every pod that comes up."""
    spec = follow("router", "decode")
    spec["targetResources"][1]["kind"] = "StatefulSet"
    driver = Driver(spec)
    router = workload("router", "Deployment", 4, 4)
    decode = workload("decode", "StatefulSet", 4, 4)
    driver.reconcile({"router": router, "decode": decode}, now=0)
    assert driver.cluster.writes == [("decode", 8)]
    for minute, running in enumerate(range(4, 9), start=1):  # one more pod a minute
        decode["status"]["replicas"] = running
        decode["status"]["readyReplicas"] = running - 1 if running < 8 else 8
        driver.reconcile({"router": router, "decode": decode}, now=60.0 * minute)
        print(minute, driver.ready()["reason"], driver.ready()["message"])
    not_taken_up = [w for w in driver.warnings if w[0] == "ReplicasNotTakenUp"]
    assert not not_taken_up, f"{len(not_taken_up)} Warnings: {not_taken_up}"


def test_a_deployment_rolling_out_is_not_a_count_not_taken_up() -> None:
    """decode (ratio 2 of router 2) is at 4 and rolls out a new image (maxSurge 25%: 5
    pods while the new ones start). RSG's count is taken up; nothing overrides it. RSG
    reports Ready False ReplicasNotTakenUp ('RSG set 4 replicas, it runs 5')."""
    driver = Driver(follow("router", "decode"))
    router = workload("router", "Deployment", 2, 2)
    decode = workload("decode", "Deployment", 4, 5, ready=4)  # mid-rollout
    decode["status"]["updatedReplicas"] = 1
    for now in (0.0, 30.0, 60.0):
        driver.reconcile({"router": router, "decode": decode}, now)
    assert driver.cluster.writes == []  # the count was never in question
    assert driver.ready()["status"] == "True", driver.ready()


def test_a_role_nothing_runs_is_not_reported_current() -> None:
    """RBG's controller has not reported the role (not running, not installed, or not yet
    to this role): nothing runs decode. SPEC §4: "a member's current and ready counts
    come from its workload's status, never from the spec RSG wrote". RSG reports decode
    current 4 (the count it wrote) and Ready True InSync."""
    rbg = target("pool", "RoleBasedGroup", "workloads.x-k8s.io/v1alpha2")
    rbg["subResources"] = [{"roleName": "decode"}]
    spec = {
        "targetResources": [target("router"), rbg],
        "scalingStrategy": {
            "type": "InplaceScaling",
            "inplaceConfig": {
                "bindings": [
                    {"name": "router", "role": "Source"},
                    {"name": "decode", "role": "Target", "ratio": 2},
                ]
            },
        },
    }
    driver = Driver(spec)
    router = workload("router", "Deployment", 2, 2)
    pool = {
        "apiVersion": "workloads.x-k8s.io/v1alpha2",
        "kind": "RoleBasedGroup",
        "metadata": {"name": "pool", "namespace": NS, "resourceVersion": "1", "generation": 1},
        "spec": {"roles": [{"name": "decode", "replicas": 1}]},
    }
    for now in (0.0, 60.0, 120.0):
        driver.reconcile({"router": router, "pool": pool}, now)
    decode = next(b for b in driver.stored["bindings"] if b["name"] == "decode")
    print(decode, driver.ready())
    assert decode.get("current") != 4, f"status says decode runs 4: {decode}"
