"""Grove's scale scenarios, with RSG: whole groups of pods made and removed as one.

    RSG_CONTROL_PLANE_BIN=$(bash hack/build-control-plane.sh) .venv/bin/python bench/grove.py
    (or `make bench-grove`; `--groups 50 --nodes 2` is quick)

Grove published (k3d + KWOK, 30 nodes, 2 pods per replica): 0 -> 500 replicas, all
1,000 pods created in 35.5 s and all Ready in 72.0 s; 250 -> 500 Ready in 41.3 s;
500 -> 250 in 31.2 s; 500 -> 0 in 56.4 s.

Here, on one local control plane with kwok nodes (110 pods each): one GroupReplication
RSG of 2 Deployments of 1 pod each, scaled 0 -> G -> G/2 -> G -> 0 groups; then a plain
client creating and deleting the same Deployments (one request at a time; deletes in
the foreground, as the operator deletes clones) through the same steps. Each step's
time runs from the scale request (or the plain client's first request) until:
- up: every Deployment of the new groups exists ("created"), and every pod of them
  is Ready ("Ready");
- down: every Deployment of the removed groups is gone and their pods with them.
While each step runs, the CPU used by each process of the control plane, by the
operator and by the bench is sampled, to say what limits the pace.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from kubernetes import client, config, watch

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
from bench.scale import machine  # noqa: E402
from rsg_operator.local_cluster import LocalControlPlane  # noqa: E402
from tests.harness import OperatorProcess, deployment  # noqa: E402
from tests.specs import group_spec, rsg, target  # noqa: E402

NS = "grove"
State = Callable[[dict[str, Any]], bool]
GROVE = {"up": (35.5, 72.0), "half up": (None, 41.3), "half down": 31.2, "down": 56.4}


class Watched:
    """One kind's objects in the namespace, from a watch: name -> what `state` says of it."""

    def __init__(self, list_fn: Callable[..., Any], state: State) -> None:
        self.objects: dict[str, bool] = {}
        self.changed = threading.Condition()
        self._state = state
        version = list_fn(NS, limit=1).metadata.resource_version
        threading.Thread(target=self._follow, args=(list_fn, version), daemon=True).start()

    def _follow(self, list_fn: Callable[..., Any], version: str) -> None:
        try:
            for event in watch.Watch().stream(list_fn, NS, resource_version=version):
                obj = event["raw_object"]
                name = obj["metadata"]["name"]
                with self.changed:
                    if event["type"] == "DELETED":
                        self.objects.pop(name, None)
                    else:
                        self.objects[name] = self._state(obj)
                    self.changed.notify_all()
        except Exception as error:  # the server goes away at the end
            print(f"watch ended: {error}", file=sys.stderr)

    def wait(self, done: Callable[[Watched], bool], what: str, timeout: float = 1200) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: done(self), timeout):
                raise TimeoutError(f"timed out waiting for {what}")
        return time.perf_counter()

    def count(self, prefix: str, ready: bool | None = None) -> int:
        return sum(
            1
            for name, state in self.objects.items()
            if name.startswith(prefix) and (ready is None or state == ready)
        )

    def has(self, wanted: set[str]) -> bool:
        return wanted <= self.objects.keys()

    def has_none(self, wanted: set[str]) -> bool:
        return not (wanted & self.objects.keys())


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@dataclass
class Cpu:
    """CPU seconds used by each process while a step runs."""

    pids: dict[str, int]
    before: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        used = {}
        for name, pid in self.pids.items():
            try:
                times = psutil.Process(pid).cpu_times()
                used[name] = times.user + times.system
            except psutil.Error:
                used[name] = 0.0
        return used

    def start(self) -> None:
        self.before = self._now()

    def busiest(self, seconds: float) -> str:
        after = self._now()
        share = {n: (after[n] - self.before.get(n, 0.0)) / seconds for n in after}
        top = sorted(share.items(), key=lambda x: -x[1])[:3]
        if share.get("operator") and "operator" not in dict(top):
            top.append(("operator", share["operator"]))  # always shown: what it costs
        return ", ".join(f"{n} {100 * s:.0f}%" for n, s in top)


def names(groups: range, prefix: str) -> set[str]:
    return {f"{prefix}-{i:02d}-{m}" for i in groups for m in ("p", "d")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=12)
    parser.add_argument(
        "--controller-qps",
        type=int,
        default=None,
        help="the controller-manager's API request rate (its default, 20/s, sets the pace)",
    )
    parser.add_argument(
        "--plain-first", action="store_true", help="the plain client's steps before the operator's"
    )
    args = parser.parse_args()
    g, half = args.groups, args.groups // 2
    plane = LocalControlPlane(
        bin_dir=Path(os.environ["RSG_CONTROL_PLANE_BIN"]),
        nodes=args.nodes,
        controller_qps=args.controller_qps,
    )
    plane.start()
    rows: list[tuple[str, str, float | None, float | None, str]] = []
    try:
        plane.apply(ROOT / "crds")
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        custom = client.CustomObjectsApi(api)
        core.create_namespace({"metadata": {"name": NS}})
        pods = Watched(core.list_namespaced_pod, pod_ready)
        seen = Watched(apps.list_namespaced_deployment, lambda _: True)
        cpu = Cpu({**plane.pids, "bench": os.getpid()})

        def measure(
            who: str, label: str, act: Callable[[], None], wanted: set[str], up: bool, left: int
        ) -> None:
            """A step: `act`; then until the Deployments `wanted` exist (up) or are gone,
            and the namespace holds `left` pods, all Ready."""
            cpu.start()
            began = time.perf_counter()
            act()
            made = seen.wait(lambda d: d.has(wanted), f"{who} {label}") - began if up else None
            done = pods.wait(
                lambda p: p.count("", ready=True) == left == p.count(""), f"{who} {label}: pods"
            )
            if not up:
                done = max(done, seen.wait(lambda d: d.has_none(wanted), f"{who} {label}: gone"))
            rows.append((who, label, made, done - began, cpu.busiest(done - began)))
            print(rows[-1], file=sys.stderr)

        def by_operator() -> None:
            assert plane.work_dir is not None
            op = OperatorProcess(
                plane.kubeconfig, plane.work_dir / "logs" / "operator.log", ("--verbose",)
            )
            op.start()
            cpu.pids["operator"] = op.pid
            for name in ("p", "d"):
                apps.create_namespaced_deployment(NS, deployment(name, 1))
            spec = group_spec(target("p"), target("d"), prefix="g", replicas=0)
            custom.create_namespaced_custom_object(
                "resourcescalinggroup.com", "v1", NS, "resourcescalinggroups", rsg("unit", spec)
            )
            pods.wait(lambda p: p.count("") == 0, "the seed group at 0 pods", 120)

            def scale(count: int) -> Callable[[], None]:
                return lambda: custom.patch_namespaced_custom_object_scale(
                    "resourcescalinggroup.com", "v1", NS, "resourcescalinggroups", "unit",
                    {"spec": {"replicas": count}},
                )  # fmt: skip

            every, back = names(range(2, g + 1), "g"), names(range(half + 1, g + 1), "g")
            measure("operator", f"0 -> {g}", scale(g), every | {"p", "d"}, True, 2 * g)
            measure("operator", f"{g} -> {half}", scale(half), back, False, 2 * half)
            measure("operator", f"{half} -> {g}", scale(g), back, True, 2 * g)
            measure("operator", f"{g} -> 0", scale(0), every, False, 0)
            op.stop()
            del cpu.pids["operator"]

        def by_plain() -> None:
            def create(wanted: set[str]) -> Callable[[], None]:
                def act() -> None:
                    for name in sorted(wanted):
                        apps.create_namespaced_deployment(NS, deployment(name, 1))

                return act

            def delete(wanted: set[str]) -> Callable[[], None]:
                def act() -> None:
                    for name in sorted(wanted):
                        apps.delete_namespaced_deployment(name, NS, propagation_policy="Foreground")

                return act

            every = names(range(1, g + 1), "plain")
            back = names(range(half + 1, g + 1), "plain")
            measure("plain client", f"0 -> {g}", create(every), every, True, 2 * g)
            measure("plain client", f"{g} -> {half}", delete(back), back, False, 2 * half)
            measure("plain client", f"{half} -> {g}", create(back), back, True, 2 * g)
            measure("plain client", f"{g} -> 0", delete(every), every, False, 0)

        for who in (by_plain, by_operator) if args.plain_first else (by_operator, by_plain):
            who()
    finally:
        plane.stop(keep_logs=True)
        print(f"logs in {plane.work_dir}", file=sys.stderr)

    qps = f"{args.controller_qps}/s" if args.controller_qps else "20/s (its default)"
    print(
        f"\n{time.strftime('%Y-%m-%d')} on {machine()}; {args.nodes} kwok nodes; "
        f"controller-manager API rate {qps}; "
        f"{'plain client' if args.plain_first else 'operator'} first\n"
    )
    print("| step | who | all created (s) | all Ready / all gone (s) | busiest (CPU) |")
    print("|---|---|---|---|---|")
    for who, label, created, done, busy in rows:
        made = "" if created is None else f"{created:.1f}"
        print(f"| {label} | {who} | {made} | {done:.1f} | {busy} |")
    ours = {label: done for who, label, _, done, _ in rows if who == "operator"}
    theirs = {label: done for who, label, _, done, _ in rows if who != "operator"}
    print("\n| step | operator / plain client |")
    print("|---|---|")
    for label, done in ours.items():
        if done is not None and theirs.get(label):
            print(f"| {label} | {done / theirs[label]:.2f} |")


if __name__ == "__main__":
    main()
