"""The control plane's real failures: connections that hang, start-ups that fail, watches
that relist over a deletion they never saw."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rsg_operator.leader import LeaseConfig
from rsg_operator.local_cluster import LocalControlPlane, free_port
from tests.integration.conftest import Kubectl, kubeconfig_through, wait_for
from tests.integration.proxy import TcpProxy
from tests.integration.test_operations import TAKEOVER_TIMEOUT, Replica, replica
from tests.integration.test_webhook import configuration
from tests.integration.workloads import deployment, replicas
from tests.specs import follow, rsg

LEASE = LeaseConfig()


@pytest.fixture
def proxies(control_plane: LocalControlPlane) -> Iterator[list[TcpProxy]]:
    """Proxies of the test's own (one per operator process), stopped at its end."""
    started: list[TcpProxy] = []
    yield started
    for proxy in started:
        proxy.stop()


def through_proxy(
    control_plane: LocalControlPlane, proxies: list[TcpProxy], name: str
) -> tuple[TcpProxy, Path]:
    proxy = TcpProxy(control_plane.api_port).start()
    proxies.append(proxy)
    return proxy, kubeconfig_through(proxy, control_plane, f"kubeconfig-{name}")


def log_time(process: Replica, pattern: str) -> float:
    """When the process logged a line matching `pattern` (its first), as epoch seconds."""
    for line in process.log_text().splitlines():
        if re.search(pattern, line):
            stamp = line[1:24]  # [2026-11-30 00:04:36,081]
            local = dt.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
            return local.timestamp()
    raise AssertionError(f"no line matches {pattern!r}")


def identity_of(process: Replica) -> str:
    """The process's identity, as its Lease and its user agent carry it."""
    found = re.search(r"waiting to acquire Lease \S+ as (\S+)", process.log_text())
    assert found is not None
    return found[1]


def audited_writes(control_plane: LocalControlPlane) -> list[dict[str, Any]]:
    """Every write the API server answered, from its audit log: who, what, when."""
    writes = []
    for line in control_plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        writes.append(
            {
                "agent": event.get("userAgent", ""),
                "verb": event.get("verb"),
                "namespace": ref.get("namespace"),
                "name": ref.get("name"),
                "subresource": ref.get("subresource", ""),
                "at": micro_time(event["requestReceivedTimestamp"]),
            }
        )
    return writes


def micro_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_a_leader_whose_connections_hang_stops_before_the_standby_takes_over(
    alone: None,
    control_plane: LocalControlPlane,
    kubectl: Kubectl,
    namespace: str,
    proxies: list[TcpProxy],
) -> None:
    """Every connection of the leader goes silent (no byte moves, nothing is reset): a
    dead apiserver instance behind a load balancer. It stops leading within its renew
    deadline, before the Lease can pass; the standby takes over and reconciles."""
    kubectl.apply(deployment("router", 1), namespace)
    kubectl.apply(deployment("decode", 0), namespace)
    election = ("--leader-elect", f"--leader-election-namespace={namespace}")
    pair = []
    for i in (1, 2):
        proxy, kubeconfig = through_proxy(control_plane, proxies, f"{namespace}-{i}")
        started = replica(control_plane, f"{namespace}-{i}", *election, kubeconfig=kubeconfig)
        pair.append((started, proxy))
    try:
        for process, _ in pair:
            process.wait_for(lambda p=process: p.get("/readyz")[0] == 200, what="ready")
        leader, leader_proxy = pair[0][0].wait_for(
            lambda: next(((r, p) for r, p in pair if r.metric("rsg_leader") == 1), None),
            what="a leader",
        )
        standby = next(r for r, _ in pair if r is not leader)
        kubectl.apply(rsg("pool", follow("router", "decode")), namespace)
        leader.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 2)

        leader_proxy.hang()
        hung = time.time()
        assert leader.process is not None

        def stopped_leading() -> bool:
            # Its metrics are served locally, not through the proxy; once it stops
            # serving them, it is on its way out.
            if leader.get("/metrics")[0] != 200:
                return True
            return leader.metric("rsg_leader") == 0

        wait_for(stopped_leading, timeout=LEASE.lease_seconds, what="the old leader to stop")
        stopped = time.time()
        standby.wait_for(
            lambda: standby.metric("rsg_leader") == 1,
            timeout=TAKEOVER_TIMEOUT,
            what="the standby to lead",
        )
        lease = kubectl.get("lease", "rsg-operator", namespace) or {}
        acquired = micro_time(lease["spec"]["acquireTime"])
        print(
            f"hung at 0; the old leader stopped leading by {stopped - hung:.1f}s "
            f"(renew deadline {LEASE.renew_deadline_seconds:g}s); "
            f"the standby acquired the Lease at {acquired - hung:.1f}s"
        )
        # Within the renew deadline of its last renewal (at most a retry period before
        # the hang), and before the Lease could pass to anyone else.
        assert stopped - hung <= LEASE.renew_deadline_seconds + 1.0
        assert stopped < acquired
        lost = log_time(leader, "lost Lease")
        assert lost - hung <= LEASE.renew_deadline_seconds + 0.5
        assert leader.process.wait(timeout=30) is not None  # it ends; the pod restarts

        # The standby reconciles what comes next.
        kubectl.run("scale", "deployment/router", "--replicas=3", "-n", namespace)
        standby.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 6)
        # The API server received no write from the old leader after it stopped leading
        # (its audit log names each process in its user agent); decode's last write came
        # from the new leader once it held the Lease.
        old, new = identity_of(leader), identity_of(standby)
        writes = wait_for(
            lambda: (
                [w for w in audited_writes(control_plane) if w["namespace"] == namespace] or None
            ),
            what="audited writes",
        )
        assert not [w for w in writes if old in w["agent"] and w["at"] > lost]
        scaled = wait_for(
            lambda: [
                w
                for w in audited_writes(control_plane)
                if w["name"] == "decode" and w["subresource"] == "scale" and w["at"] > hung
            ],
            what="the new leader's write audited",
        )
        assert all(new in w["agent"] and w["at"] > acquired for w in scaled)
    finally:
        for process, proxy in pair:
            proxy.heal()
            process.stop()


def test_a_start_up_that_keeps_failing_is_undone_each_time_then_ends(
    alone: None, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """The webhook configuration it must trust its CA in is absent: each attempt fails
    before the election starts and is undone; after the last, the process exits. It
    never holds the Lease, and /healthz says why meanwhile."""
    single = replica(
        control_plane,
        f"{namespace}-startup",
        "--leader-elect",
        f"--leader-election-namespace={namespace}",
        f"--webhook-address=127.0.0.1:{free_port()}",
        f"--webhook-configuration=rsg-{namespace}",
    )
    try:
        _, body = wait_for(
            lambda: found if (found := single.get("/healthz"))[0] == 503 else None,
            what="/healthz failing",
        )
        assert "start-up failed" in body and f"rsg-{namespace} not found" in body
        assert single.get("/readyz")[0] == 503
        assert single.process is not None
        assert single.process.wait(timeout=60) != 0
        log = single.log_text()
        assert log.count("failed, all of it undone") == 3
        assert "rsg-operator: start-up failed 3 times, the last time with LookupError" in log
        assert "standby: waiting" not in log and "leading:" not in log
        assert kubectl.get("lease", "rsg-operator", namespace) is None
    finally:
        single.stop()


def test_a_start_up_that_fails_once_then_runs_whole(
    alone: None, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """The configuration appears after the first attempt failed: the second attempt
    starts everything, once (one election, one webhook, one RSG watch)."""
    kubectl.apply(deployment("router", 1), namespace)
    kubectl.apply(deployment("decode", 0), namespace)
    port, name = free_port(), f"rsg-{namespace}"
    single = replica(
        control_plane,
        f"{namespace}-startup",
        "--leader-elect",
        f"--leader-election-namespace={namespace}",
        f"--webhook-address=127.0.0.1:{port}",
        f"--webhook-configuration={name}",
    )
    try:
        single.wait_for(
            lambda: "start-up attempt 1 failed" in single.log_text(), what="a failed attempt"
        )
        kubectl.apply(configuration(name, port, namespace), "default")
        single.wait_for(lambda: single.metric("rsg_leader") == 1, what="leading")
        assert single.get("/healthz") == (200, "ok\n")
        kubectl.apply(rsg("pool", follow("router", "decode")), namespace)  # via the webhook
        single.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 2)
        log = single.log_text()
        assert log.count("standby: waiting") == 1 and log.count("leading: acquired") == 1
        assert log.count("serving the validating webhook") == 1
    finally:
        single.stop()
        kubectl.run("delete", "validatingwebhookconfiguration", name, check=False)


@pytest.mark.slow
def test_an_rsg_deleted_while_the_watch_was_away_is_forgotten(
    alone: None,
    control_plane: LocalControlPlane,
    kubectl: Kubectl,
    namespace: str,
    proxies: list[TcpProxy],
) -> None:
    """The operator is cut off; meanwhile its InplaceScaling RSG is deleted and the
    apiserver restarts, so the watch cannot resume (410) and lists again. The RSG is
    forgotten: its Targets are left alone, and a new RSG for them is admitted."""
    kubectl.apply(deployment("router", 1), namespace)
    kubectl.apply(deployment("decode", 0), namespace)
    port, name = free_port(), f"rsg-{namespace}"
    kubectl.apply(configuration(name, port, namespace), "default")
    proxy, kubeconfig = through_proxy(control_plane, proxies, namespace)
    single = replica(
        control_plane,
        namespace,
        f"--webhook-address=127.0.0.1:{port}",
        f"--webhook-configuration={name}",
        kubeconfig=kubeconfig,
    )
    try:
        single.wait_for(lambda: single.get("/readyz")[0] == 200, what="running")
        kubectl.apply(rsg("pool", follow("router", "decode")), namespace)
        single.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 2)

        proxy.refuse()
        kubectl.run("delete", "rsg", "pool", "-n", namespace)
        # The watch's version is gone: compacted in etcd, and with the apiserver's cache.
        # (A restart alone is not enough: until its cache is ready the new apiserver may
        # serve the resumed watch from etcd, which still holds the deletion.)
        control_plane.compact_etcd()
        control_plane.restart_apiserver()
        proxy.heal()
        single.wait_for(
            lambda: f"[{namespace}/pool] deleted: forgotten" in single.log_text(),
            timeout=60,
            what="the relist to forget the deleted RSG",
        )
        # (Another watch's relist may wake the RSG first, whose reconcile then finds it
        # gone; the RSGs' own watch, still backing off, lists again within its cap.)
        relisted = (
            r"watch of ResourceScalingGroup \S+ in all namespaces: version \d+ is gone \(410\)"
        )
        single.wait_for(
            lambda: re.search(relisted, single.log_text()),
            timeout=30,
            what="the RSGs' watch to list again (410)",
        )

        # A ghost would refuse this RSG at admission (decode is its Target), and fight it.
        kubectl.run("scale", "deployment/router", "--replicas=3", "-n", namespace)
        kubectl.apply(rsg("pool-2", follow("router", "decode", ratio=3)), namespace)
        single.wait_for(lambda: replicas(kubectl, "deployment", "decode", namespace) == 9)
        after = single.log_text().split(f"[{namespace}/pool] deleted: forgotten", 1)[1]
        # Nothing more of pool than the end of the reconcile that forgot it (and of any
        # reconcile woken meanwhile, which finds it gone): no write, no scaling.
        acted = [
            line
            for line in after.splitlines()
            if f"[{namespace}/pool]" in line
            and "reconciled: 0 problem(s), status unchanged" not in line
            and "deleted: forgotten" not in line
        ]
        assert acted == []
    finally:
        proxy.heal()
        single.stop()
        kubectl.run("delete", "validatingwebhookconfiguration", name, check=False)


def test_a_start_up_that_cannot_bind_its_webhook_port_trusts_no_ca(
    alone: None, control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str
) -> None:
    """Found by review: each attempt added its new CA (valid a year) to the caBundle
    before binding its port, and a failed bind left it there: a crash-looping pod grew
    the bundle by three CAs a restart."""
    port, name = free_port(), f"rsg-{namespace}"
    kubectl.apply(configuration(name, port, namespace), "default")
    taken = socket.socket()
    taken.bind(("127.0.0.1", port))  # another process holds the webhook's port
    taken.listen()
    single = replica(
        control_plane,
        f"{namespace}-ca",
        f"--webhook-address=127.0.0.1:{port}",
        f"--webhook-configuration={name}",
    )
    try:
        assert single.process is not None
        assert single.process.wait(timeout=90) != 0  # every attempt failed: it exited
        assert single.log_text().count("failed, all of it undone") == 3
        found = kubectl.get("validatingwebhookconfiguration", name, "default") or {}
        bundle = base64.b64decode(found["webhooks"][0]["clientConfig"].get("caBundle") or "")
        assert not bundle.strip(), "a failed attempt left its CA trusted"
    finally:
        taken.close()
        single.stop()
        kubectl.run("delete", "validatingwebhookconfiguration", name, check=False)
