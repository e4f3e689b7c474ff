"""Print how the operator scales with the number of RSGs, on the local control plane.

    RSG_CONTROL_PLANE_BIN=$(bash hack/build-control-plane.sh) .venv/bin/python bench/scale.py
    (or `make bench`; `--quick` runs small sizes only, to check the script itself)

For each size N, on a fresh control plane:
- InplaceScaling: N RSGs of 3 Deployments each (a Source, Targets at ratios 1 and 2.5);
  GroupReplication: N RSGs of 2 Deployments each, 2 groups.
- time until all N are reconciled (observedGeneration current, Ready), from the first
  RSG create (the Deployments exist before);
- InplaceScaling: Source -> Target propagation over CHANGES changes of random RSGs,
  from the scale request to the Target's change seen on the bench's own watch, beside
  the raw watch round trip measured in the same run (the bench scales a Deployment no
  RSG knows and waits for its own watch event), at two pacings (changes 1 s and 0.2 s
  apart);
- operator RSS and open TCP connections (peak, sampled every 0.2 s);
- requests per minute while idle, of the whole control plane before the operator starts
  and of the operator alone once all are reconciled, during a window that holds a full
  resync pass, and the operator's writes in it (a no-op: there is nothing to change);
  the apiserver's audit log names each request's client, so these are the operator's
  own requests, counted by the server;
- a restart of the operator in front of the N RSGs: time until every RSG was reconciled
  again, and the operator's requests and writes, and any 429, meanwhile.
Then 0 -> 100 groups -> 0 on one RSG, beside a plain client creating and deleting the
same objects one by one (in the foreground, as the operator deletes clones).
"""

from __future__ import annotations

import argparse
import builtins
import contextlib
import math
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import psutil
from kubernetes import watch

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))  # the manifests and the operator process the tests use
from bench.common import NS, World, reconciled, settle, until, world  # noqa: E402
from tests.harness import deployment  # noqa: E402
from tests.specs import group_spec, rsg, target  # noqa: E402

RESYNC_SECONDS = 60.0
IDLE_SECONDS = 30.0
CHANGES = 100
PACINGS = (1.0, 0.2)


# ---------------------------------------------------------------------------- objects


def inplace_rsg(i: int) -> dict[str, Any]:
    return rsg(
        f"pool-{i}",
        {
            "targetResources": [target(f"src-{i}"), target(f"one-{i}"), target(f"more-{i}")],
            "scalingStrategy": {
                "type": "InplaceScaling",
                "inplaceConfig": {
                    "bindings": [
                        {"name": f"src-{i}", "role": "Source"},
                        {"name": f"one-{i}", "role": "Target", "ratio": 1},
                        {"name": f"more-{i}", "role": "Target", "ratio": "2.5"},
                    ]
                },
            },
        },
    )


def group_rsg(j: int, groups: int = 2) -> dict[str, Any]:
    return rsg(
        f"unit-{j}", group_spec(target(f"p-{j}"), target(f"d-{j}"), prefix=f"g{j}", replicas=groups)
    )


# ---------------------------------------------------------------------------- the world


class DeploymentWatch:
    """The bench's own watch of the namespace's Deployments: when each name was last
    seen with which replicas, and which names were seen added or deleted."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.replicas: dict[str, tuple[int, float]] = {}
        self.added: set[str] = set()
        self.deleted: set[str] = set()
        self.changed = threading.Condition()
        version = world.apps.list_namespaced_deployment(NS, limit=1).metadata.resource_version
        self._watch = watch.Watch()
        threading.Thread(target=self._follow, args=(version,), daemon=True).start()

    def _follow(self, version: str) -> None:
        with contextlib.suppress(Exception):  # the server goes away at the end
            for event in self._watch.stream(
                self.world.apps.list_namespaced_deployment, NS, resource_version=version
            ):
                now = time.perf_counter()
                raw = event["raw_object"]
                name = raw["metadata"]["name"]
                with self.changed:
                    if event["type"] == "DELETED":
                        self.deleted.add(name)
                    else:
                        if event["type"] == "ADDED":
                            self.added.add(name)
                        self.replicas[name] = (int(raw["spec"].get("replicas") or 0), now)
                    self.changed.notify_all()

    def wait(self, what: str, done: Callable[[], bool], timeout: float = 120.0) -> None:
        with self.changed:
            if not self.changed.wait_for(done, timeout):
                raise TimeoutError(f"timed out waiting for {what}")

    def seen_at(self, name: str, replicas: int, after: float, timeout: float = 60.0) -> float:
        """When `name` was first seen at `replicas` after `after`."""
        self.wait(
            f"{name} at {replicas}",
            lambda: (
                self.replicas.get(name, (-1, 0.0))[0] == replicas
                and self.replicas[name][1] >= after
            ),
            timeout,
        )
        return self.replicas[name][1]

    def stop(self) -> None:
        self._watch.stop()


class Sampler:
    """Peak RSS and open TCP connections of a process, sampled in the background."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak_rss = 0
        self.peak_connections = 0
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(psutil.Error):
                self.peak_rss = max(self.peak_rss, self.process.memory_info().rss)
                established = [
                    c
                    for c in self.process.net_connections(kind="tcp")
                    if c.status == psutil.CONN_ESTABLISHED
                ]
                self.peak_connections = max(self.peak_connections, len(established))

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------------------- runs


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    mode: str
    n: int
    reconciled_s: float = 0.0
    propagation: dict[float, tuple[list[float], list[float]]] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    peak_connections: int = 0
    idle_control_plane: float = 0.0  # requests/min, everyone
    idle_operator: float = 0.0  # requests/min, the operator's
    resync_writes: int = 0
    resync_reconciles: int = 0
    restart_s: float = 0.0
    restart_requests: int = 0
    restart_writes: int = 0
    restart_429: int = 0


def run_size(mode: str, n: int) -> Result:
    result = Result(mode, n)
    with world(RESYNC_SECONDS) as (w, op):
        if mode == "InplaceScaling":
            members = [deployment(f"{k}-{i}") for i in range(n) for k in ("src", "one", "more")]
            rsgs, groups = [inplace_rsg(i) for i in range(n)], None
        else:
            members = [deployment(f"{k}-{j}") for j in range(n) for k in ("p", "d")]
            rsgs, groups = [group_rsg(j) for j in range(n)], 2
        w.create([*members, deployment("raw-probe")])
        seen = DeploymentWatch(w)

        settle(w)  # the controller-manager's work on the new Deployments
        mark = w.audit.mark()
        time.sleep(IDLE_SECONDS)
        result.idle_control_plane = len(w.audit.since(mark)) * 60 / IDLE_SECONDS

        op.start()
        sampler = Sampler(op.pid)
        began = time.perf_counter()
        w.create(rsgs)
        until(
            f"{n} RSGs reconciled",
            lambda: sum(reconciled(r, groups) for r in w.rsgs()) == n,
            timeout=600,
        )
        result.reconciled_s = time.perf_counter() - began

        # Idle, and a full resync pass with nothing to change.
        settle(w)
        reconciles = op.reconciles()
        mark = w.audit.mark()
        window = RESYNC_SECONDS * 1.15
        time.sleep(window)
        ours = w.audit.since(mark).by_operator()
        result.idle_operator = len(ours) * 60 / window
        result.resync_writes = len(ours.writes())
        result.resync_reconciles = op.reconciles() - reconciles

        if mode == "InplaceScaling":
            current = dict.fromkeys(range(n), 0)
            rng = random.Random(n)
            raw = 0
            for pacing in PACINGS:
                ours: list[float] = []
                plain: list[float] = []
                for _ in range(CHANGES):
                    i = rng.randrange(n)
                    current[i] = current[i] % 4 + 1
                    started = time.perf_counter()
                    w.scale(f"src-{i}", current[i])
                    ours.append((seen.seen_at(f"one-{i}", current[i], started) - started) * 1e3)
                    time.sleep(pacing)
                    raw = raw % 4 + 1
                    started = time.perf_counter()
                    w.scale("raw-probe", raw)
                    plain.append((seen.seen_at("raw-probe", raw, started) - started) * 1e3)
                    time.sleep(pacing)
                result.propagation[pacing] = (ours, plain)

        result.peak_rss_mb = sampler.peak_rss / 2**20
        result.peak_connections = sampler.peak_connections
        sampler.stop()

        # A restart in front of N reconciled RSGs.
        settle(w)
        op.stop()
        mark = w.audit.mark()
        reconciles = op.reconciles()
        began = time.perf_counter()
        op.start()
        until(f"{n} reconciles after a restart", lambda: op.reconciles() - reconciles >= n, 600)
        result.restart_s = time.perf_counter() - began
        everyone = w.audit.since(mark)
        ours = everyone.by_operator()
        result.restart_requests, result.restart_writes = len(ours), len(ours.writes())
        result.restart_429 = len(everyone.throttled())
        op.stop()
        seen.stop()
    return result


def run_groups_up_and_down(count: int = 100) -> dict[str, float]:
    """0 -> count groups -> 0 on one RSG, and a plain client doing the same."""
    times: dict[str, float] = {}
    with world(RESYNC_SECONDS) as (w, op):
        w.create([deployment("p"), deployment("d")])
        seen = DeploymentWatch(w)
        op.start()
        w.create([rsg("unit", group_spec(target("p"), target("d"), prefix="g0", replicas=0))])
        until("the RSG at 0 groups", lambda: all(reconciled(r, 0) for r in w.rsgs()), 120)
        clones = {f"g0-{i:02d}-{m}" for i in range(2, count + 1) for m in ("p", "d")}

        began = time.perf_counter()
        w.scale_rsg("unit", count)
        seen.wait(f"{count} groups", lambda: clones <= seen.added, 600)
        times["operator up"] = time.perf_counter() - began
        began = time.perf_counter()
        w.scale_rsg("unit", 0)
        seen.wait("0 groups", lambda: clones <= seen.deleted, 600)
        times["operator down"] = time.perf_counter() - began
        op.stop()

        plain = [deployment(f"plain-{i:02d}-{m}") for i in range(2, count + 1) for m in ("p", "d")]
        names = {m["metadata"]["name"] for m in plain}
        began = time.perf_counter()
        w.create(plain, threads=1)
        seen.wait("plain creates", lambda: names <= seen.added, 600)
        times["plain up"] = time.perf_counter() - began
        began = time.perf_counter()
        for name in sorted(names):
            # The deletion the operator makes: a Deployment is gone once its ReplicaSets are.
            w.apps.delete_namespaced_deployment(name, NS, propagation_policy="Foreground")
        seen.wait("plain deletes", lambda: names <= seen.deleted, 600)
        times["plain down"] = time.perf_counter() - began
        seen.stop()
    return times


# ---------------------------------------------------------------------------- report


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = psutil.virtual_memory().total / 2**30
    versions = ", ".join(
        f"{p} {metadata.version(p)}" for p in ("kopf", "kubernetes_asyncio", "aiohttp")
    )
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory:.0f} GiB; Python {platform.python_version()}; "
        f"{versions}; control plane {Path(os.environ['RSG_CONTROL_PLANE_BIN']).parent.name}"
    )


def report(results: list[Result], updown: dict[str, float], out: TextIO = sys.stdout) -> None:
    def print(*lines: str) -> None:
        builtins.print(*lines, file=out, flush=True)

    print(f"\n{time.strftime('%Y-%m-%d')} on {machine()}\n")
    print(
        "| mode | N | all reconciled (s) | peak RSS (MB) | peak connections "
        "| idle req/min: control plane alone / operator | operator writes in a no-op resync "
        "(reconciles) | restart: all reconciled (s), operator requests, writes, 429s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.mode} | {r.n} | {r.reconciled_s:.1f} | {r.peak_rss_mb:.0f} | "
            f"{r.peak_connections} | {r.idle_control_plane:.0f} / {r.idle_operator:.1f} | "
            f"{r.resync_writes} ({r.resync_reconciles}) | "
            f"{r.restart_s:.1f}, {r.restart_requests}, {r.restart_writes}, {r.restart_429} |"
        )
    print(
        "\n| N | pacing (s) | Source->Target p50 / p99 (ms) | raw round trip p50 / p99 (ms) "
        "| ratio p50 / p99 |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        for pacing, (ours, plain) in r.propagation.items():
            o50, o99 = statistics.median(ours), percentile(ours, 99)
            p50, p99 = statistics.median(plain), percentile(plain, 99)
            print(
                f"| {r.n} | {pacing} | {o50:.1f} / {o99:.1f} | {p50:.1f} / {p99:.1f} "
                f"| {o50 / p50:.2f} / {o99 / p99:.2f} |"
            )
    if updown:
        print("\n| 0 -> 100 -> 0 groups | operator (s) | plain client (s) | ratio |")
        print("|---|---|---|---|")
        for way in ("up", "down"):
            ours, plain = updown[f"operator {way}"], updown[f"plain {way}"]
            print(f"| {way} | {ours:.2f} | {plain:.2f} | {ours / plain:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1 and 10 only; 10 groups")
    parser.add_argument("--only", choices=["inplace", "group", "updown"], action="append")
    parser.add_argument("--sizes", type=int, nargs="+", help="instead of the default sizes")
    args = parser.parse_args()
    global CHANGES, RESYNC_SECONDS, IDLE_SECONDS
    if args.quick:
        CHANGES, RESYNC_SECONDS, IDLE_SECONDS = 10, 10.0, 5.0
    only = set(args.only or ["inplace", "group", "updown"])
    inplace_sizes = args.sizes or ((1, 10) if args.quick else (1, 100, 1000))
    group_sizes = args.sizes or ((1, 10) if args.quick else (1, 100, 300))
    results = []
    if "inplace" in only:
        for n in inplace_sizes:
            results.append(run_size("InplaceScaling", n))
            report(results, {}, sys.stderr)  # so far, in case a later size fails
    if "group" in only:
        for n in group_sizes:
            results.append(run_size("GroupReplication", n))
            report(results, {}, sys.stderr)
    updown = run_groups_up_and_down(10 if args.quick else 100) if "updown" in only else {}
    report(results, updown)


if __name__ == "__main__":
    main()
