"""Print how fast a Target follows its Source (InplaceScaling), on the local control plane.

    RSG_CONTROL_PLANE_BIN=$(bash hack/build-control-plane.sh) .venv/bin/python bench/inplace_latency.py

Starts the control plane and the operator, creates router -> prefill (ratio 2), then
scales the router N times and measures, per change, the time from the scale request
returning to the watch event that shows prefill at the new count.
"""

from __future__ import annotations

import contextlib
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from kubernetes import client, config, watch

from rsg_operator.local_cluster import LocalControlPlane

ROOT = Path(__file__).parents[1]
NS = "bench"


def manifests() -> str:
    def deployment(name: str, replicas: int) -> dict[str, object]:
        return {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "x"}]}}},
        }
    rsg = {
        "apiVersion": "resourcescalinggroup.com/v1", "kind": "ResourceScalingGroup",
        "metadata": {"name": "pool"},
        "spec": {
            "targetResources": [
                {"name": "router", "apiVersion": "apps/v1", "kind": "Deployment"},
                {"name": "prefill", "apiVersion": "apps/v1", "kind": "Deployment"},
            ],
            "scalingStrategy": {"type": "InplaceScaling", "inplaceConfig": {"bindings": [
                {"name": "router", "role": "Source"},
                {"name": "prefill", "role": "Target", "ratio": 2}]}},
        },
    }
    return yaml.safe_dump_all([deployment("router", 1), deployment("prefill", 2), rsg])


def main(changes: int = 20) -> None:
    with LocalControlPlane(bin_dir=Path(os.environ["RSG_CONTROL_PLANE_BIN"])) as plane:
        plane.apply(ROOT / "crds")
        kubectl = [str(plane.kubectl), f"--kubeconfig={plane.kubeconfig}"]
        subprocess.run([*kubectl, "create", "namespace", NS], check=True, capture_output=True)
        subprocess.run([*kubectl, "apply", "-n", NS, "-f", "-"], input=manifests().encode(),
                       check=True, capture_output=True)
        operator = subprocess.Popen(
            [sys.executable, "-m", "rsg_operator", "run", f"--kubeconfig={plane.kubeconfig}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            api_client = config.new_client_from_config(config_file=str(plane.kubeconfig))
            apps = client.AppsV1Api(api_client)
            seen: queue.Queue[tuple[int, float]] = queue.Queue()

            def follow() -> None:
                stream = watch.Watch().stream(apps.list_namespaced_deployment, NS,
                                              field_selector="metadata.name=prefill")
                with contextlib.suppress(Exception):  # the server goes away at the end
                    for event in stream:
                        seen.put((event["object"].spec.replicas, time.perf_counter()))

            threading.Thread(target=follow, daemon=True).start()
            latencies = []
            for i in range(changes):
                source = 2 + i % 5  # 2..6, never the same twice in a row
                started = time.perf_counter()
                apps.patch_namespaced_deployment_scale("router", NS, {"spec": {"replicas": source}})
                while True:
                    replicas, at = seen.get(timeout=30)
                    if replicas == 2 * source and at >= started:
                        latencies.append((at - started) * 1000)
                        break
            latencies.sort()
            print(f"Source change -> Target updated, {len(latencies)} changes: "
                  f"median {statistics.median(latencies):.0f} ms, "
                  f"p90 {latencies[int(len(latencies) * 0.9) - 1]:.0f} ms, "
                  f"max {latencies[-1]:.0f} ms")
        finally:
            operator.terminate()
            operator.wait(timeout=20)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
