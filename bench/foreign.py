"""The operator in a cluster that holds far more than RSG's objects.

    RSG_CONTROL_PLANE_BIN=$(bash hack/build-control-plane.sh) .venv/bin/python bench/foreign.py
    (or `make bench-foreign`; `--deployments 2000 --configmaps 500` is quick)

On one fresh control plane, with InplaceScaling RSGs of 3 Deployments each:
1. without other objects, at each size N (10, then 1,000 RSGs): the operator started in
   front of the N RSGs; once all are reconciled, its RSS and CPU over 60 s; the P1 hop
   (Source -> Target, beside the raw watch round trip, as bench/scale.py measures it);
   RSS peak from its start (start-up included);
2. then another app's objects: D Deployments (replicas 0), each with a 20 KB
   `kubectl.kubernetes.io/last-applied-configuration`, and C ConfigMaps; at each size
   again (1,000, then 10: RSGs deleted), measured the same way while the other app
   updates CHURN Deployments a second. The reconciles in the window are counted (from
   the operator's log): nothing of the RSGs' changes then, so each would be the churn's.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import Operator, World, reconciled, settle, until, world  # noqa: E402
from bench.scale import DeploymentWatch, Sampler, inplace_rsg, machine, percentile  # noqa: E402
from tests.harness import deployment  # noqa: E402

OTHER = "other-app"
APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
WINDOW = 60.0  # seconds of RSS/CPU sampling, each phase
HOPS = 50  # Source -> Target changes, each phase, 0.5 s apart
SCALED: dict[int, int] = {}  # src-i (-1: raw-probe) -> the replicas last set


@dataclass
class Phase:
    name: str
    rss_mb: list[float] = field(default_factory=list)
    cpu_percent: float = 0.0
    reconciles_in_window: int = 0
    hop_ms: list[float] = field(default_factory=list)
    raw_ms: list[float] = field(default_factory=list)
    cached: str = ""
    peak_mb: float = 0.0  # from the operator's start, start-up included

    def row(self) -> str:
        hop, raw = percentile(self.hop_ms, 50), percentile(self.raw_ms, 50)
        return (
            f"| {self.name} | {statistics.median(self.rss_mb):.0f} | {self.peak_mb:.0f} | "
            f"{self.cpu_percent:.1f} | {self.reconciles_in_window} | {hop:.0f} / {raw:.0f} "
            f"({hop / raw:.2f}) | {self.cached} |"
        )


def padded(name: str) -> dict[str, object]:
    manifest = deployment(name, 0)
    manifest["metadata"]["annotations"] = {
        APPLIED: json.dumps({"padding": "x" * 20_000, "name": name})
    }
    return manifest


def fill(w: World, deployments: int, configmaps: int) -> None:
    w.core.create_namespace({"metadata": {"name": OTHER}})

    def one(i: int) -> None:
        if i < deployments:
            w.apps.create_namespaced_deployment(OTHER, padded(f"web-{i:05d}"))
        else:
            j = i - deployments
            w.core.create_namespaced_config_map(
                OTHER, {"metadata": {"name": f"conf-{j:05d}"}, "data": {"k": "v" * 1000}}
            )

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(deployments + configmaps)))


class Churn:
    """Another app updating its Deployments, `rate` a second."""

    def __init__(self, w: World, deployments: int, rate: float) -> None:
        self.w, self.deployments, self.rate = w, deployments, rate
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rng = random.Random(1)
        pool = ThreadPoolExecutor(4)
        next_at = time.monotonic()
        while not self._stop.is_set():
            name = f"web-{rng.randrange(self.deployments):05d}"
            body = {"metadata": {"annotations": {"churn": str(self.done)}}}
            pool.submit(self.w.apps.patch_namespaced_deployment, name, OTHER, body)
            self.done += 1
            next_at += 1 / self.rate
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        pool.shutdown(wait=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cached_objects(port: int) -> str:
    """The operator's rsg_cached_objects for Deployments, `whole/stub`."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    found = {"whole": 0.0, "stub": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "rsg_cached_objects" and sample.labels.get("resource") == (
                "deployments"
            ):
                found[sample.labels["form"]] = sample.value
    return f"{found['whole']:.0f} / {found['stub']:.0f}"


def measure(
    w: World, op: Operator, port: int, n: int, name: str, foreign: int = 0, rate: float = 0
) -> Phase:
    phase = Phase(name)
    before = op.reconciles() if op.log.exists() else 0  # (one log for every start)
    op.start(f"--http-address=127.0.0.1:{port}")
    sampler = Sampler(op.pid)  # the peak includes start-up: every list read once
    until(f"{n} reconciles", lambda: op.reconciles() - before >= n, timeout=900)
    until(
        f"{n} RSGs reconciled, no other",
        lambda: (rsgs := w.rsgs()) and len(rsgs) == n and all(reconciled(r) for r in rsgs),
        600,
    )
    settle(w)
    churn = Churn(w, foreign, rate) if foreign and rate else None
    try:
        return _window(w, op, port, n, phase, churn)
    finally:
        phase.peak_mb = sampler.peak_rss / 2**20
        sampler.stop()
        if churn is not None:
            churn.stop()
        op.stop()


def _window(w: World, op: Operator, port: int, n: int, phase: Phase, churn: Churn | None) -> Phase:
    process = psutil.Process(op.pid)
    reconciles = op.reconciles()
    cpu_before, began = process.cpu_times(), time.monotonic()
    while time.monotonic() - began < WINDOW:
        phase.rss_mb.append(process.memory_info().rss / 2**20)
        time.sleep(1.0)
    cpu_after = process.cpu_times()
    used = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    phase.cpu_percent = 100 * used / (time.monotonic() - began)
    phase.reconciles_in_window = op.reconciles() - reconciles
    if churn is not None:
        print(f"  churn: {churn.done} foreign updates so far", file=sys.stderr)

    seen = DeploymentWatch(w)
    rng = random.Random(n + len(phase.name))
    current = SCALED  # (what each earlier phase left: a write of the same count is no change)
    for _ in range(HOPS):
        i = rng.randrange(n)
        current[i] = current.get(i, 0) % 4 + 1
        started = time.perf_counter()
        w.scale(f"src-{i}", current[i])
        phase.hop_ms.append((seen.seen_at(f"one-{i}", current[i], started) - started) * 1e3)
        time.sleep(0.5)
        raw = current[-1] = current.get(-1, 0) % 4 + 1
        started = time.perf_counter()
        w.scale("raw-probe", raw)
        phase.raw_ms.append((seen.seen_at("raw-probe", raw, started) - started) * 1e3)
        time.sleep(0.5)
    seen.stop()
    phase.rss_mb.append(process.memory_info().rss / 2**20)
    phase.cached = cached_objects(port)
    return phase


def run(sizes: list[int], deployments: int, configmaps: int, rate: float) -> list[Phase]:
    """One control plane: the sizes without other objects (RSGs added), then with them
    (RSGs removed), so that the foreign objects are made once."""
    from rsg_operator.local_cluster import free_port

    phases: list[Phase] = []
    with world(resync_seconds=3600) as (w, op):
        top = max(sizes)
        members = [deployment(f"{k}-{i}") for i in range(top) for k in ("src", "one", "more")]
        w.create([*members, deployment("raw-probe")])
        port, made = free_port(), 0
        for n in sorted(sizes):
            w.create([inplace_rsg(i) for i in range(made, n)])
            made = n
            settle(w)
            phases.append(measure(w, op, port, n, f"{n} RSGs, nothing else"))
        began = time.monotonic()
        fill(w, deployments, configmaps)
        print(
            f"  {deployments} + {configmaps} foreign objects made in "
            f"{time.monotonic() - began:.0f}s",
            file=sys.stderr,
        )
        settle(w, timeout=900)
        crowd = f"+ {deployments} Deployments (20 KB) + {configmaps} ConfigMaps, churn {rate:.0f}/s"
        for n in sorted(sizes, reverse=True):
            for i in range(n, made):  # released by the operator when it starts
                w.custom.delete_namespaced_custom_object(
                    "resourcescalinggroup.com", "v1", w.namespace, "resourcescalinggroups",
                    f"pool-{i}",
                )  # fmt: skip
            made = n
            phases.append(measure(w, op, port, n, f"{n} RSGs, {crowd}", deployments, rate))
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--deployments", type=int, default=20_000)
    parser.add_argument("--configmaps", type=int, default=5_000)
    parser.add_argument("--churn", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="5 s windows, 5 hops: a check")
    args = parser.parse_args()
    global WINDOW, HOPS
    if args.quick:
        WINDOW, HOPS = 5.0, 5
    sizes = [int(x) for x in args.sizes.split(",")]
    phases = run(sizes, args.deployments, args.configmaps, args.churn)
    print(f"\n{machine()}\n")
    print(
        "| run | RSS median MB (steady) | RSS peak MB (start-up included) | CPU % (mean) "
        "| reconciles in the 60 s window "
        "| P1 hop / raw ms, p50 (ratio) | Deployments held whole / stub |"
    )
    print("|---|---|---|---|---|---|---|")
    for phase in phases:
        print(phase.row())


if __name__ == "__main__":
    main()
