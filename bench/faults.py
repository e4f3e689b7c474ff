"""Kill the operator at random points of whole-group changes; check what it leaves.

    RSG_CONTROL_PLANE_BIN=$(bash hack/build-control-plane.sh) .venv/bin/python bench/faults.py
    (or `make bench-faults`; `--trials 8` checks the script itself)

One RSG `pool` groups the Deployments prefill (2 replicas) and decode (3). Beside it
stand other apps' Deployments: `unit-21-prefill` (a clone's name, outside every plan
here), `lookalike` (carrying RSG's labels for group unit-05, copied, with no owner) and
`bystander`. Four operations, each a trial scenario:

- out:     1 -> 20 groups
- down:    20 -> 1 groups (Ordered: unit-20 first, the seed stays)
- remove:  2 -> 1 groups naming unit-01 the candidate: the seed group is taken to 0
- restore: 1 -> 2 groups: the seed group comes back (its recorded replica counts)

and two reversals: a removal or a restore of the seed group, crashed and then reversed by
the user while the operator is down (the restarted operator must not finish the first
only to undo it). With `drainTimeoutSeconds` (DRAIN_SECONDS):

- drain:   2 -> 1 groups: unit-02 drains, then goes at its deadline (no acknowledgement)
- up:      1 -> 2 groups, with the drain timeout set
- drain, then up: a drain crashed, then the user scales back to 2 while the operator is
           down: a group still draining must come back, not be deleted and made again

Control-plane faults (`--control-plane-trials`): two replicas with `--leader-elect`, each
through a TCP proxy of its own, carry out `out` or `down`, and at a random point of it:

- restart: kube-apiserver restarts in place (every watch ends; a resume may need a list);
- hang:    every connection of the leader goes silent, no byte moving, nothing reset (a
           dead apiserver instance behind a load balancer); the standby must take over.

The operator must be done within 30 s of the fault (45 s for a hang: a lease duration
more), timed from the fault (a restart: from when the apiserver is back, which takes
~12 s): the RSG reports the change, the planned objects exist, every other one is being
deleted. The garbage collector's part (foreground deletions, which a restarted
kube-controller-manager can be slow to resume) is timed apart, not judged. Then the
same checks as after a crash, plus "never two writers": no write reached the API server
from a process outside its leadership (from its "leading" line to its "lost"/"released"
line), as the audit log names each process in its user agent.

Each crash trial: the operator is stopped; the RSG's spec is changed; an operator started
with RSG_CRASH_AFTER_WRITES=N (N drawn uniformly below the writes the operation took
when nothing failed, as the apiserver's audit log counts them) dies as by SIGKILL right
before its write N+1. An operator that outlives its N (fewer writes this time) is killed
with SIGKILL once the RSG reports the change. Then a normal operator starts, and the
bench checks, from its own watch of the namespace and the state once converged:

- converged within 30 s of the restart: the RSG Ready and not Degraded at its
  generation, with the desired groups, and exactly the planned objects;
- no duplicate group: each group has one object per target, groups[] ids are distinct;
- no orphan: every clone has the RSG as controller and belongs to a planned group;
- nothing outside the plan: no object was created that the plan does not hold (after a
  scale-down, nothing was created at all: a group being removed is never re-completed);
- no foreign object touched: the other apps' Deployments keep their resourceVersion;
- drains: no member of a draining group deleted before its deadline, one drain start
  per drain whatever the crash (a restarted operator keeps the deadline), and a revived
  group's members never deleted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from kubernetes import watch

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import World, reconciled, until, world  # noqa: E402
from rsg_operator.local_cluster import free_port  # noqa: E402
from tests.harness import OperatorProcess, deployment  # noqa: E402
from tests.integration.proxy import TcpProxy  # noqa: E402
from tests.specs import group_spec, rsg  # noqa: E402

NAME_LABEL = "resourcescalinggroup.com/name"
GROUP_ID = "resourcescalinggroup.com/group-id"
GROUP_INDEX = "resourcescalinggroup.com/group-index"
SEED_REPLICAS = "resourcescalinggroup.com/seed-replicas"
DRAIN_STARTED = "resourcescalinggroup.com/drain-started"
DRAINING = "resourcescalinggroup.com/draining"
DRAIN_SECONDS = 4
SEED = {"prefill": 2, "decode": 3}
REVISION = "deployment.kubernetes.io/revision"
CONVERGE_SECONDS = 30.0
LEASE_SECONDS = 15  # the operator's default: a standby takes over after this, at most
GIVE_UP_SECONDS = 120.0  # a trial that has not converged by then stops the bench
RSG_PLURAL = ("resourcescalinggroup.com", "v1")


def foreign() -> list[dict[str, Any]]:
    lookalike = deployment("lookalike", 1)
    lookalike["metadata"]["labels"] = {
        NAME_LABEL: "pool",
        GROUP_ID: "unit-05",
        GROUP_INDEX: "5",
    }
    return [deployment("unit-21-prefill", 1), lookalike, deployment("bystander", 1)]


def fingerprint(d: dict[str, Any]) -> str:
    """What a write by anyone but the controller-manager's status updates would change."""
    meta = d["metadata"]
    managers = sorted(
        (e["manager"], e["operation"], e.get("subresource", ""))
        for e in meta.get("managedFields") or []
        if e.get("subresource") != "status"
    )
    parts = [d["spec"], meta.get("labels"), meta.get("annotations"), meta.get("ownerReferences")]
    return json.dumps([*parts, managers], sort_keys=True)


@dataclass(frozen=True)
class Scenario:
    name: str
    groups: int  # desired groups
    candidates: tuple[str, ...]
    expected: tuple[str, ...]  # group ids once converged
    drain: int = 0  # drainTimeoutSeconds
    # Also right: a scale-out while a removed group's objects still go away takes the
    # next id (the removed one is not reused before they are gone).
    alternative: tuple[str, ...] = ()

    def clones(self) -> set[str]:
        return {f"{g}-{t}" for g in self.expected if g != "unit-01" for t in SEED}

    def plans(self) -> list[Scenario]:
        """This scenario, and the same with its alternative outcome, if any."""
        other = [replace(self, expected=self.alternative)] if self.alternative else []
        return [self, *other]


OUT = Scenario("out", 20, (), tuple(f"unit-{i:02d}" for i in range(1, 21)))
DOWN = Scenario("down", 1, (), ("unit-01",))
REMOVE = Scenario("remove", 1, ("unit-01",), ("unit-02",))
RESTORE = Scenario("restore", 2, (), ("unit-01", "unit-02"))
DRAIN = Scenario("drain", 1, (), ("unit-01",), DRAIN_SECONDS)
UP = Scenario("up", 2, (), ("unit-01", "unit-02"), DRAIN_SECONDS, ("unit-01", "unit-03"))


@dataclass
class Trial:
    scenario: str
    n: int  # the write the operator died before (N + 1)
    crashed: bool  # died at N (exit 137), else killed once the change was reported
    at_crash: list[str]  # what the crash left half-done
    clones_at_crash: int
    converged: float | None  # seconds from the restart (from the fault)
    violations: list[str] = field(default_factory=list)
    fault: str = ""  # a control-plane fault: "restart" or "hang"; "" for a crash
    gone: float | None = None  # (faults) seconds until the removed objects were all gone


class Added:
    """The bench's watch of the namespace's Deployments: names added, other apps'
    objects changed (from their `foreign` fingerprints) or deleted, and the seed members'
    replica counts in the order seen, since `reset`. The watch may deliver an event after
    the reset that happened before it: events are told apart by resourceVersion (etcd's
    revision; opaque to clients in general, an integer on this apiserver)."""

    def __init__(self, w: World, foreign: dict[str, str]) -> None:
        self.w, self.foreign = w, foreign
        self.lock = threading.Lock()
        self.added: list[str] = []
        self.touched: list[str] = []
        self.seed: dict[str, list[int]] = {}
        self.drain_starts: set[str] = set()  # drain-started values seen on clones
        self.deleted: dict[str, float] = {}  # clone -> when first seen deleted (epoch)
        self.broken: Exception | None = None
        self.gaps = 0  # resumes refused (410): events between them may be unseen
        self._watch = watch.Watch()
        version = self._now()
        self.since = int(version)
        threading.Thread(target=self._follow, args=(version,), daemon=True).start()

    def _follow(self, version: str) -> None:
        """Follow the namespace, resuming after the apiserver restarts (control-plane
        trials); a resume that is refused (410) lists again, and counts a gap."""
        failures = 0
        while True:
            try:
                for event in self._watch.stream(
                    self.w.apps.list_namespaced_deployment,
                    self.w.namespace,
                    resource_version=version,
                ):
                    self._record(event)
                    version = event["raw_object"]["metadata"]["resourceVersion"]
                    failures = 0
            except Exception as error:
                failures += 1
                if failures > 120:  # the checks would pass on nothing seen: say so
                    self.broken = error
                    return
                time.sleep(0.5)
                if getattr(error, "status", None) == 410:
                    self.gaps += 1
                    with contextlib.suppress(Exception):
                        version = self._now()

    def _record(self, event: dict[str, Any]) -> None:
        obj = event["raw_object"]
        name = obj["metadata"]["name"]
        with self.lock:
            if int(obj["metadata"]["resourceVersion"]) <= self.since:
                return
            if name in SEED:
                self.seed.setdefault(name, []).append(obj["spec"]["replicas"])
            started = (obj["metadata"].get("annotations") or {}).get(DRAIN_STARTED)
            if started and name not in SEED:
                self.drain_starts.add(started)
            gone = event["type"] == "DELETED" or obj["metadata"].get("deletionTimestamp")
            if gone and name not in SEED and name not in self.foreign and name not in self.deleted:
                self.deleted[name] = time.time()
            if event["type"] == "ADDED":
                self.added.append(name)
            elif name in self.foreign and (
                event["type"] == "DELETED" or fingerprint(obj) != self.foreign[name]
            ):
                self.touched.append(f"{event['type']} {name}")

    def _now(self) -> str:
        listing = self.w.apps.list_namespaced_deployment(self.w.namespace, limit=1)
        return str(listing.metadata.resource_version)

    def reset(self) -> None:
        version = int(self._now())
        with self.lock:
            self.since = version
            self.added, self.touched, self.seed = [], [], {}
            self.drain_starts, self.deleted = set(), {}

    def since_reset(self) -> tuple[list[str], list[str], dict[str, list[int]]]:
        if self.broken is not None:
            raise RuntimeError(f"the bench's watch broke: {self.broken!r}")
        with self.lock:
            return list(self.added), list(self.touched), dict(self.seed)

    def drains(self) -> tuple[set[str], dict[str, float]]:
        """Drain starts seen on clones, and when each clone was first seen deleted."""
        with self.lock:
            return set(self.drain_starts), dict(self.deleted)


class Bench:
    def __init__(self, w: World, op: OperatorProcess, rng: random.Random) -> None:
        self.w, self.op, self.rng = w, op, rng
        for name, replicas in SEED.items():
            w.create([deployment(name, replicas)])
        w.create(foreign())
        names = [o["metadata"]["name"] for o in foreign()]
        # Once the controller-manager has taken them in (a ReplicaSet, its revision
        # annotation), nobody else writes to the other apps' objects.
        until(
            "the other apps' Deployments rolled out",
            lambda: all(
                REVISION in (self.deployment(n)["metadata"].get("annotations") or {}) for n in names
            ),
            60,
        )
        self.foreign = {n: fingerprint(self.deployment(n)) for n in names}
        w.create([rsg("pool", group_spec(replicas=1))])
        self.watch = Added(w, self.foreign)

    # ------------------------------------------------------------------ reading

    def deployment(self, name: str) -> dict[str, Any]:
        return self.w.api.sanitize_for_serialization(
            self.w.apps.read_namespaced_deployment(name, self.w.namespace)
        )

    def deployments(self) -> dict[str, dict[str, Any]]:
        listing = self.w.apps.list_namespaced_deployment(self.w.namespace)
        raw = self.w.api.sanitize_for_serialization(listing)
        return {d["metadata"]["name"]: d for d in raw["items"]}

    def rsg(self) -> dict[str, Any]:
        return dict(
            self.w.custom.get_namespaced_custom_object(
                *RSG_PLURAL, self.w.namespace, "resourcescalinggroups", "pool"
            )
        )

    def settled(self, s: Scenario) -> bool:
        """The RSG reports the change done, not Degraded, and the objects are the plan
        (or its alternative)."""
        return any(self._settled(plan) for plan in s.plans())

    def done_by_operator(self, s: Scenario) -> bool:
        """The operator's part of `s` is done: the RSG reports it, the planned objects are
        there, and every other one is being deleted (its foreground deletion is the
        garbage collector's to finish)."""
        for plan in s.plans():
            obj = self.rsg()
            conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}
            if conditions.get("Degraded", {}).get("status") == "True":
                continue
            if not reconciled(obj, plan.groups):
                continue
            groups = obj["status"].get("groups") or []
            serving = sorted(g["id"] for g in groups if g["phase"] in ("Creating", "Ready"))
            if serving != sorted(plan.expected) or any(
                g["phase"] not in ("Creating", "Ready", "Deleting") for g in groups
            ):
                continue
            objects = self.deployments()
            planned = set(SEED) | set(self.foreign) | plan.clones()
            extra = set(objects) - planned
            if planned <= set(objects) and all(
                objects[n]["metadata"].get("deletionTimestamp") for n in extra
            ):
                return self.seed_as_planned(plan)
        return False

    def plan_now(self, s: Scenario) -> Scenario:
        """The plan (or its alternative) the RSG's groups are, else the plan."""
        ids = sorted(g["id"] for g in self.rsg().get("status", {}).get("groups") or [])
        return next((p for p in s.plans() if sorted(p.expected) == ids), s)

    def _settled(self, s: Scenario) -> bool:
        obj = self.rsg()
        conditions = {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}
        degraded = conditions.get("Degraded", {}).get("status") == "True"
        if degraded or not reconciled(obj, s.groups):
            return False
        groups = obj["status"].get("groups") or []
        ids = [g["id"] for g in groups]
        names = set(self.deployments())
        return (
            sorted(ids) == sorted(s.expected)
            and all(g["phase"] in ("Creating", "Ready") for g in groups)
            and names == set(SEED) | set(self.foreign) | s.clones()
            and self.seed_as_planned(s)
        )

    def seed_as_planned(self, s: Scenario) -> bool:
        present = "unit-01" in s.expected
        for name, replicas in SEED.items():
            seed = self.deployment(name)
            recorded = SEED_REPLICAS in (seed["metadata"].get("annotations") or {})
            if present and (recorded or seed["spec"]["replicas"] != replicas):
                return False
            if not present and (not recorded or seed["spec"]["replicas"] != 0):
                return False
        return True

    # ------------------------------------------------------------------ acting

    def change(self, s: Scenario) -> None:
        config = {
            "replicas": s.groups,
            "scaleDown": {"candidates": list(s.candidates), "drainTimeoutSeconds": s.drain},
        }
        body = {"spec": {"scalingStrategy": {"groupConfig": config}}}
        self.w.custom.patch_namespaced_custom_object(
            *RSG_PLURAL, self.w.namespace, "resourcescalinggroups", "pool", body
        )

    def run_clean(self, s: Scenario) -> int:
        """Carry out `s` with nothing failing; return the operator's counted writes."""
        mark = self.w.audit.mark()
        self.change(s)
        self.op.start()
        try:
            until(f"{s.name} done", lambda: self.settled(s), GIVE_UP_SECONDS)
        finally:
            self.op.stop()
        ours = self.w.audit.since(mark).by_operator().writes().events
        return sum(1 for e in ours if (e.get("objectRef") or {}).get("resource") != "events")

    def trial(self, s: Scenario, writes: int, then: Scenario | None = None) -> Trial:
        """Crash the operator during `s`; with `then`, the user reverses the change
        while the operator is down, and the restarted one must carry out `then`."""
        n = self.rng.randrange(writes)
        self.watch.reset()
        self.change(s)
        crashing = self.op.start(env={"RSG_CRASH_AFTER_WRITES": str(n)})
        crashed = self._died(crashing, s)
        self.op.process = None
        at_crash = self.half_done()
        clones_at_crash = len(set(self.deployments()) - set(SEED) - set(self.foreign))
        # A group still whole and draining when the operator died can come back; one
        # whose deletion had begun cannot.
        revivable = "drain under way" in at_crash and not {
            "removal begun",
            "group incomplete",
        } & set(at_crash)
        final = s
        if then is not None:
            final = then
            self.watch.reset()  # from here on, only `then` may happen
            self.change(then)
        began = time.monotonic()
        self.op.start()
        try:
            converged = self._converged(final, began)
        finally:
            self.op.stop()
        name = s.name if then is None else f"{s.name}, then {then.name}"
        trial = Trial(name, n + 1, crashed, at_crash, clones_at_crash, converged)
        trial.violations = self.violations(
            self.plan_now(final), converged, revived=revivable and then is not None
        )
        return trial

    def _died(self, process: subprocess.Popen[bytes], s: Scenario) -> bool:
        """True if the operator died at its write N + 1; else (it wrote less than N this
        time) it is killed with SIGKILL once the RSG reports the change."""
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return process.wait(timeout=0.2) == 137
            if self.settled(s):
                process.send_signal(signal.SIGKILL)
                process.wait()
                return False
        raise TimeoutError(f"{s.name}: the crashing operator neither died nor finished")

    def _converged(self, s: Scenario, began: float) -> float | None:
        with contextlib.suppress(TimeoutError):
            until(f"{s.name} converged", lambda: self.settled(s), CONVERGE_SECONDS, every=0.1)
            return time.monotonic() - began
        until(f"{s.name} converged at all", lambda: self.settled(s), GIVE_UP_SECONDS)
        return None

    # ------------------------------------------------------------------ checking

    def half_done(self) -> list[str]:
        """What the crash left in the middle: groups missing clones, removals recorded,
        a seed group partly at 0."""
        found: list[str] = []
        members = Counter(
            d["metadata"]["labels"][GROUP_ID]
            for d in self.deployments().values()
            if (d["metadata"].get("labels") or {}).get(GROUP_INDEX, "1") != "1"
            and d["metadata"].get("ownerReferences")
        )
        if any(count < len(SEED) for count in members.values()):
            found.append("group incomplete")
        if any(d["metadata"].get("deletionTimestamp") for d in self.deployments().values()):
            found.append("removal begun")
        groups = self.rsg().get("status", {}).get("groups") or []
        if any(g.get("phase") == "Deleting" for g in groups):
            found.append("removal recorded")
        at_zero = [n for n in SEED if self.deployment(n)["spec"]["replicas"] == 0]
        if 0 < len(at_zero) < len(SEED):
            found.append("seed group half at 0")
        marked = [
            d
            for name, d in self.deployments().items()
            if name not in SEED and DRAINING in (d["metadata"].get("labels") or {})
        ]
        if marked:
            found.append("drain under way")
            if len(marked) < len(SEED):
                found.append("drain half marked")
        return found

    def violations(
        self,
        s: Scenario,
        converged: float | None,
        revived: bool = False,
        limit: float = CONVERGE_SECONDS,
    ) -> list[str]:
        """What went wrong; `revived`: a group was draining when the operator died, and
        the user asked for it back (it must be revived, never deleted)."""
        found: list[str] = []
        if converged is None:
            found.append(f"not converged within {limit:.0f}s")
        uid = self.rsg()["metadata"]["uid"]
        objects = self.deployments()
        per_group = Counter(
            (d["metadata"]["labels"].get(GROUP_ID), name.split("-", 2)[-1])
            for name, d in objects.items()
            if name not in self.foreign and name not in SEED
        )
        found += [f"duplicate {key}" for key, count in per_group.items() if count > 1]
        ids = [g["id"] for g in self.rsg()["status"].get("groups") or []]
        if len(ids) != len(set(ids)):
            found.append(f"duplicate ids in groups[]: {ids}")
        for name, d in objects.items():
            if name in self.foreign or name in SEED:
                continue
            owners = d["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") == uid and o.get("controller") for o in owners):
                found.append(f"orphan {name}")
            if name not in s.clones():
                found.append(f"outside the plan: {name}")
        added, touched, seed = self.watch.since_reset()
        found += [f"created outside the plan: {n}" for n in added if n not in s.clones()]
        if s.groups < 2 and added:
            found.append(f"created during a scale-down: {sorted(added)}")
        found += [f"foreign object touched: {t}" for t in touched]
        # The seed group goes one way only: a removal never restores it on the way, a
        # restore never takes it back to 0.
        for name, seen in seed.items():
            steps = list(itertools.pairwise(seen))
            if any(b > a for a, b in steps) and s.name == "remove":
                found.append(f"seed member {name} restored during a removal: {seen}")
            if any(b < a for a, b in steps) and s.name == "restore":
                found.append(f"seed member {name} taken down during a restore: {seen}")
        for name, before in self.foreign.items():
            if fingerprint(objects[name]) != before:
                found.append(f"foreign object changed: {name}")
        starts, deleted = self.watch.drains()
        if len(starts) > 1:
            found.append(f"one drain, several starts (a deadline moved): {sorted(starts)}")
        for name, when in deleted.items():
            if revived:
                found.append(f"{name} deleted although its group was wanted back while draining")
            for start in starts:
                early = epoch(start) + s.drain - when
                if early > 0:
                    found.append(f"{name} deleted {early:.1f} s before its drain's deadline")
        return found


# ---------------------------------------------------------------------------- control plane


@dataclass
class Replica:
    """One of two operator processes with --leader-elect, through a proxy of its own."""

    process: OperatorProcess
    proxy: TcpProxy
    port: int

    def leading(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                return "\nrsg_leader 1.0" in r.read().decode()
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process.process is not None and self.process.process.poll() is None


class ControlPlaneFaults:
    """Trials of `out`/`down` with the apiserver restarted or the leader's connections
    hung at a random point; the bench's usual checks, and one writer at a time."""

    def __init__(self, bench: Bench, w: World) -> None:
        self.bench, self.w = bench, w
        assert w.plane.work_dir is not None
        self.replicas: list[Replica] = []
        for i in (1, 2):
            proxy = TcpProxy(w.plane.api_port).start()
            config = yaml.safe_load(w.plane.kubeconfig.read_text())
            for cluster in config["clusters"]:
                cluster["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
            kubeconfig = w.plane.work_dir / f"kubeconfig-replica-{i}"
            kubeconfig.write_text(yaml.safe_dump(config))
            port = free_port()
            flags = (
                "--verbose",
                "--resync-seconds=3600",
                "--leader-elect",
                f"--leader-election-namespace={w.namespace}",
                f"--http-address=127.0.0.1:{port}",
            )
            log = w.plane.work_dir / "logs" / f"operator-replica-{i}.log"
            self.replicas.append(Replica(OperatorProcess(kubeconfig, log, flags), proxy, port))

    def start(self) -> None:
        """Both replicas running (one that ended is started again, as its pod would be)."""
        for r in self.replicas:
            if not r.alive():
                r.proxy.heal()
                r.process.start()
        until("a leader", lambda: any(r.leading() for r in self.replicas), 60)

    def stop(self) -> None:
        for r in self.replicas:
            r.process.stop()
            r.proxy.stop()

    def duration(self, s: Scenario) -> float:
        """How long `s` takes when nothing fails (the window faults are drawn in)."""
        self.start()
        began = time.monotonic()
        self.bench.change(s)
        until(f"{s.name} done", lambda: self.bench.settled(s), GIVE_UP_SECONDS, every=0.1)
        return time.monotonic() - began

    def trial(self, s: Scenario, fault: str, window: float, rng: random.Random) -> Trial:
        self.start()
        mark = self.w.audit.mark()
        self.bench.watch.reset()
        self.bench.change(s)
        delay = rng.uniform(0, window)
        time.sleep(delay)  # the fault's moment, drawn: not a wait for anything
        at_fault = self.bench.half_done()
        if fault == "restart":  # from when it is back (it takes ~12 s to stop and start)
            self.w.plane.restart_apiserver()
        else:
            leader = next((r for r in self.replicas if r.leading()), None)
            if leader is not None:
                leader.proxy.hang()
        began = time.monotonic()
        limit = CONVERGE_SECONDS + (LEASE_SECONDS if fault == "hang" else 0)
        converged: float | None = None
        with contextlib.suppress(TimeoutError):
            until(f"{s.name} done", lambda: self.bench.done_by_operator(s), limit, every=0.1)
            converged = time.monotonic() - began
        # Then the garbage collector's part (foreground deletions), which a restarted
        # kube-controller-manager may be slow to resume: timed, not judged.
        until(f"{s.name} converged", lambda: self.bench.settled(s), GIVE_UP_SECONDS, every=0.2)
        trial = Trial(f"{s.name} + {fault}", 0, False, at_fault, 0, converged, fault=fault)
        trial.gone = time.monotonic() - began
        trial.violations = self.bench.violations(self.bench.plan_now(s), converged, limit=limit)
        trial.violations += self.two_writers(mark)
        for r in self.replicas:  # a hung leader has ended itself; its proxy heals
            if r.proxy._hung.is_set():
                until("the hung leader to end", lambda r=r: not r.alive(), 60)
                r.process.process = None
        return trial

    def two_writers(self, mark: int) -> list[str]:
        """Writes that reached the API server from a process while it did not lead."""
        found = []
        events = self.w.audit.since(mark).by_operator().writes().events
        for r in self.replicas:
            identity, spans = leadership(r.process.log_text())
            for e in events:
                if identity not in e.get("userAgent", ""):
                    continue
                if (e.get("objectRef") or {}).get("resource") == "leases":
                    continue  # campaigning is a standby's job
                at = epoch(e["requestReceivedTimestamp"])
                if not any(start <= at <= end for start, end in spans):
                    ref = e.get("objectRef") or {}
                    found.append(
                        f"{e['verb']} {ref.get('resource')}/{ref.get('name')} by {identity} "
                        "while not leading"
                    )
        return found


def leadership(log: str) -> tuple[str, list[tuple[float, float]]]:
    """The process's identity, and when it led: from each "leading:" line to the next
    "lost Lease"/"released Lease" line (or now)."""
    identity = ""
    spans: list[tuple[float, float]] = []
    began: float | None = None
    for line in log.splitlines():
        if "waiting to acquire Lease" in line:
            identity = line.rsplit(" as ", 1)[-1].strip()
        elif "leading: acquired Lease" in line:
            began = line_time(line)
        elif began is not None and ("lost Lease" in line or "released Lease" in line):
            spans.append((began, line_time(line)))
            began = None
    if began is not None:
        spans.append((began, time.time()))
    return identity, spans


def line_time(line: str) -> float:
    """The time a log line was written ([2026-11-30 00:04:36,081], local time)."""
    return dt.datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()


# ---------------------------------------------------------------------------- report


def epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def report(trials: list[Trial], writes: dict[str, int], seed: int) -> None:
    print(f"\n{len(trials)} trials (random seed {seed}); writes per operation: {writes}")
    print(
        "| scenario | trials | died at write N | killed after | left half-done | "
        "converged <= 30 s | restart -> converged median / max | violations |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(t.scenario for t in trials if not t.fault):
        mine = [t for t in trials if t.scenario == name]
        if not mine:
            continue
        times = [t.converged for t in mine if t.converged is not None]
        half = Counter(h for t in mine for h in t.at_crash)
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(half.items()))
        print(
            f"| {name} | {len(mine)} | {sum(t.crashed for t in mine)} | "
            f"{sum(not t.crashed for t in mine)} | "
            f"{sum(bool(t.at_crash) for t in mine)} ({kinds or '-'}) | "
            f"{len(times)} | "
            f"{statistics.median(times) if times else float('nan'):.1f} s / "
            f"{max(times) if times else float('nan'):.1f} s | "
            f"{sum(len(t.violations) for t in mine)} |"
        )
    faulted = [t for t in trials if t.fault]
    if faulted:
        print(
            "\n| control-plane fault | trials | mid-change when it struck | done in time "
            "| fault -> operator done, median / max | -> all objects gone, median / max "
            "| violations |"
        )
        print("|---|---|---|---|---|---|---|")
    for name in dict.fromkeys(t.scenario for t in faulted):
        mine = [t for t in faulted if t.scenario == name]
        times = [t.converged for t in mine if t.converged is not None]
        gone = [t.gone for t in mine if t.gone is not None]
        print(
            f"| {name} | {len(mine)} | {sum(bool(t.at_crash) for t in mine)} | {len(times)} | "
            f"{statistics.median(times) if times else float('nan'):.1f} s / "
            f"{max(times) if times else float('nan'):.1f} s | "
            f"{statistics.median(gone) if gone else float('nan'):.1f} s / "
            f"{max(gone) if gone else float('nan'):.1f} s | "
            f"{sum(len(t.violations) for t in mine)} |"
        )
    for t in trials:
        if t.violations:
            print(f"  {t.scenario} N+1={t.n}: {'; '.join(t.violations)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="in all (default 100)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: drawn)")
    parser.add_argument(
        "--control-plane-trials",
        type=int,
        default=20,
        help="apiserver restarts and hung leaders, half each (default 20)",
    )
    parser.add_argument(
        "--control-plane-faults",
        default="restart,hang",
        help="which faults, comma-separated, in turn (default restart,hang)",
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    # A quarter each to 1 -> 20 and 20 -> 1; a fifth to drains, in rounds of three: a
    # drain, a scale-out with the drain set, a drain reversed into a scale-out; the rest
    # to the seed group, in rounds of four: its removal, a restore reversed into a
    # removal, its restore, a removal reversed into a restore. Each trial ends where the
    # next begins.
    pairs = round(args.trials * 0.25)
    drain_rounds = round(args.trials * 0.2 / 3)
    seed_rounds = (args.trials - 2 * pairs - 3 * drain_rounds) // 4
    trials: list[Trial] = []
    with world(resync_seconds=3600) as (w, op):
        bench = Bench(w, op, rng)
        op.start()
        until("the seed group", lambda: bench.settled(Scenario("seed", 1, (), ("unit-01",))), 60)
        op.stop()
        writes = {s.name: bench.run_clean(s) for s in (OUT, DOWN)}

        def run(s: Scenario, then: Scenario | None = None) -> None:
            trials.append(bench.trial(s, writes[s.name], then))
            print(json.dumps(trials[-1].__dict__), file=sys.stderr)  # progress

        for _ in range(pairs):
            run(OUT)
            run(DOWN)
        bench.run_clean(RESTORE)  # 1 -> 2: the start of a seed removal
        writes.update({s.name: bench.run_clean(s) for s in (REMOVE, RESTORE)})
        for _ in range(seed_rounds):
            run(REMOVE)
            run(RESTORE, then=REMOVE)
            run(RESTORE)
            run(REMOVE, then=RESTORE)
        if drain_rounds:  # from 2 groups (the seed rounds end there)
            writes.update({s.name: bench.run_clean(s) for s in (DRAIN, UP)})
        for _ in range(drain_rounds):
            run(DRAIN)
            run(UP)
            run(DRAIN, then=UP)
        if args.control_plane_trials:
            faults = ControlPlaneFaults(bench, w)
            try:
                bench.change(DOWN)  # from 1 group, with no drain set
                windows = {s.name: faults.duration(s) for s in (OUT, DOWN)}
                kinds = args.control_plane_faults.split(",")
                for i in range(args.control_plane_trials):
                    s = (OUT, DOWN)[i % 2]
                    fault = kinds[(i // 2) % len(kinds)]
                    trials.append(faults.trial(s, fault, windows[s.name], rng))
                    print(json.dumps(trials[-1].__dict__), file=sys.stderr)  # progress
            finally:
                faults.stop()
        gaps = bench.watch.gaps
    report(trials, writes, seed)
    if gaps:
        print(f"\nthe bench's own watch was refused a resume {gaps} time(s) (410) and relisted")


if __name__ == "__main__":
    main()
