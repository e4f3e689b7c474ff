"""Running it as a cluster runs it: two replicas with one leader, probes, metrics."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rsg_operator.leader import LeaseConfig
from rsg_operator.local_cluster import LocalControlPlane, free_port
from tests.integration.conftest import Kubectl, Operator
from tests.integration.workloads import deployment, replicas
from tests.specs import follow, group_spec, rsg, target

DRAINED = "resourcescalinggroup.com/drained"

LEASE = LeaseConfig()
# A standby takes over at most a lease duration after the leader's last renewal, which
# it sees within one retry period; then it reconciles what is queued.
TAKEOVER_TIMEOUT = LEASE.lease_seconds + 2 * LEASE.retry_seconds + 5


class Replica(Operator):
    """One operator process serving its endpoints on a port of its own."""

    port: int = 0

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""  # not serving (yet)

    def metric(self, metric: str, /, **labels: str) -> float:
        """The sum of the samples of `metric` whose labels include `labels`."""
        status, text = self.get("/metrics")
        assert status == 200, f"/metrics answered {status}"
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == metric and labels.items() <= sample.labels.items()
        )


def replica(
    control_plane: LocalControlPlane, name: str, *args: str, kubeconfig: Path | None = None
) -> Replica:
    """An operator process serving its endpoints; connected directly, or through the
    `kubeconfig` given (a proxy's)."""
    assert control_plane.work_dir is not None
    log = control_plane.work_dir / "logs" / f"operator-{name}.log"
    started = Replica(kubeconfig or control_plane.kubeconfig, Path(log))
    started.port = free_port()
    started.start(f"--http-address=127.0.0.1:{started.port}", *args)
    return started


@pytest.fixture
def pair(
    alone: None, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> Iterator[tuple[Replica, Replica]]:
    """Two --leader-elect replicas, (leader, standby), the leader having reconciled an
    RSG `pool` in which decode follows router (1 -> 2)."""
    kubectl.apply(deployment("router", 1), namespace)
    kubectl.apply(deployment("decode", 0), namespace)
    election = ("--leader-elect", f"--leader-election-namespace={namespace}")
    both = [replica(control_plane, f"{namespace}-{i}", *election) for i in (1, 2)]
    try:
        for process in both:  # both serving: a standby is ready too
            process.wait_for(lambda p=process: p.get("/readyz")[0] == 200, what="ready")
        leader = both[0].wait_for(
            lambda: next((r for r in both if r.metric("rsg_leader") == 1), None),
            what="a leader",
        )
        standby = both[1] if leader is both[0] else both[0]
        kubectl.apply(rsg("pool", follow("router", "decode")), namespace)
        leader.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 2)
        yield leader, standby
    finally:
        for process in both:
            process.stop()


def holder(kubectl: Kubectl, namespace: str) -> str | None:
    lease = kubectl.get("lease", "rsg-operator", namespace) or {}
    return (lease.get("spec") or {}).get("holderIdentity")


def taken_over(standby: Replica, kubectl: Kubectl, namespace: str, how: str, since: float) -> None:
    """The old leader is gone: a change (router 1 -> 3) is reconciled by the standby."""
    kubectl.run("scale", "deployment/router", "--replicas=3", "-n", namespace)
    standby.wait_for(
        lambda: replicas(kubectl, "deployment", "decode", namespace) == 6,
        timeout=TAKEOVER_TIMEOUT,
        what="the standby reconciling the change",
    )
    print(f"taken over and reconciled {time.monotonic() - since:.1f}s after {how}")


def test_of_two_replicas_one_leads_and_the_other_takes_over_when_it_dies(
    pair: tuple[Replica, Replica], kubectl: Kubectl, namespace: str
) -> None:
    leader, standby = pair
    # The standby serves its probes and metrics, and has reconciled nothing.
    assert standby.metric("rsg_leader") == 0
    assert standby.metric("rsg_reconciles_total") == 0
    assert standby.get("/healthz")[0] == 200 and standby.get("/readyz")[0] == 200
    assert "standby: waiting to acquire Lease" in standby.log_text()
    assert "leading:" not in standby.log_text()
    assert leader.metric("rsg_reconciles_total", result="ok") >= 1
    assert (holder(kubectl, namespace) or "?") in leader.log_text()

    leader.kill()  # SIGKILL: no release of the Lease
    taken_over(standby, kubectl, namespace, "SIGKILL", since=time.monotonic())
    assert standby.metric("rsg_leader") == 1
    assert "leading: acquired Lease" in standby.log_text()


def test_a_leader_stopped_gracefully_hands_the_lease_over(
    pair: tuple[Replica, Replica], kubectl: Kubectl, namespace: str
) -> None:
    """SIGTERM, as a rolling upgrade sends it: the leader stops its workers, then clears
    the Lease's holder, so the standby need not wait for the Lease to expire."""
    leader, standby = pair
    held_by = holder(kubectl, namespace)
    assert held_by is not None and held_by in leader.log_text()
    leader.stop()  # SIGTERM, then waits for the process to exit
    stopped = time.monotonic()
    # Not expired yet (15 s): only the release can have taken the old holder off.
    assert holder(kubectl, namespace) != held_by
    assert "released Lease" in leader.log_text()
    taken_over(standby, kubectl, namespace, "SIGTERM", since=stopped)
    assert (holder(kubectl, namespace) or "?") in standby.log_text()
    assert standby.metric("rsg_leader") == 1


def test_metrics_count_reconciles_writes_and_scale_events(
    alone: None, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    kubectl.apply(deployment("router", 1), namespace)
    kubectl.apply(deployment("decode", 0), namespace)
    single = replica(control_plane, namespace, f"--namespace={namespace}")
    try:
        single.wait_for(lambda: single.get("/readyz")[0] == 200, what="serving")
        kubectl.apply(rsg("pool", follow("router", "decode")), namespace)
        single.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 2)
        assert single.get("/healthz") == (200, "ok\n")
        assert single.get("/readyz") == (200, "ok\n")
        assert single.metric("rsg_leader") == 1  # no election: it always leads
        reconciles = single.metric("rsg_reconciles_total", result="ok")
        writes = single.metric("rsg_writes_total", resource="deployments/scale")
        scaled = single.metric("rsg_scale_events_total", reason="Scaled")

        kubectl.run("scale", "deployment/router", "--replicas=4", "-n", namespace)
        single.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 8)
        single.wait_for(
            lambda: single.metric("rsg_scale_events_total", reason="Scaled") == scaled + 1,
            what="the Scaled event counted",
        )
        assert single.metric("rsg_reconciles_total", result="ok") > reconciles
        assert single.metric("rsg_writes_total", resource="deployments/scale") == writes + 1
        assert single.metric("rsg_reconcile_duration_seconds_count") >= reconciles + 1
        assert single.metric("rsg_queue_depth") == 0

        # A group drained and acknowledged, another drained and wanted back.
        kubectl.apply(deployment("prefill", 1), namespace)
        drain = {"drainTimeoutSeconds": 600}
        kubectl.apply(rsg("units", group_spec(target("prefill"), replicas=3, **drain)), namespace)
        single.wait_for(lambda: single.metric("rsg_groups", name="units", state="current") == 3)
        kubectl.apply(rsg("units", group_spec(target("prefill"), replicas=1, **drain)), namespace)
        single.wait_for(lambda: single.metric("rsg_groups", name="units", state="draining") == 2)
        kubectl.run("annotate", "deployment/unit-03-prefill", "-n", namespace, f"{DRAINED}=true")
        kubectl.apply(rsg("units", group_spec(target("prefill"), replicas=2, **drain)), namespace)
        single.wait_for(
            lambda: single.metric("rsg_groups", name="units", state="draining") == 0,
            what="no drain left",
        )
        assert single.metric("rsg_groups", name="units", state="current") == 2
        single.wait_for(
            lambda: (
                single.metric("rsg_drains_total", outcome="revived") == 1
                and single.metric("rsg_drains_total", outcome="acknowledged") == 1
            ),
            what="unit-02 revived and unit-03's acknowledged drain counted",
        )
        assert single.metric("rsg_drains_total", outcome="deadline") == 0
    finally:
        single.stop()
