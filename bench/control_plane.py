"""Print how long the local control plane takes to start and stop, and its memory.

    RSG_CONTROL_PLANE_BIN=$(bash hack/build-control-plane.sh) \
        .venv/bin/python bench/control_plane.py [RUNS (3)] [NODES (3)]
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from rsg_operator.local_cluster import LocalControlPlane


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(runs: int = 3, nodes: int = 3) -> None:
    bin_dir = Path(os.environ["RSG_CONTROL_PLANE_BIN"])
    starts, stops = [], []
    for _ in range(runs):
        began = time.monotonic()
        plane = LocalControlPlane(bin_dir=bin_dir, nodes=nodes)
        plane.start()
        starts.append(time.monotonic() - began)
        memory = {name: rss_mib(p.pid) for name, p in plane._processes.items()}
        began = time.monotonic()
        plane.stop()
        stops.append(time.monotonic() - began)
    print(
        f"start with {nodes} kwok nodes (until they are Ready): "
        f"median {statistics.median(starts):.1f}s "
        f"over {runs} runs, {', '.join(f'{s:.1f}' for s in starts)}"
    )
    print(f"stop: median {statistics.median(stops):.1f}s")
    print(
        "RSS right after start: "
        + ", ".join(f"{k} {v:.0f} MiB" for k, v in memory.items())
        + f"; total {sum(memory.values()):.0f} MiB"
    )


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
