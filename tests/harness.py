"""Pieces the integration tests and the benchmarks share: the operator as a process,
and workload manifests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsg_operator.local_cluster import GPU_TOLERATION

ROOT = Path(__file__).parents[1]


def deployment(name: str, replicas: int = 0, runs: bool = False) -> dict[str, Any]:
    """A Deployment manifest. Its pods never run (no such image, and no kubelet), unless
    `runs`: then they tolerate the GPU nodes' taint, and on a control plane with kwok
    nodes they are scheduled there and become Running and Ready."""
    pod: dict[str, Any] = {"containers": [{"name": name, "image": "registry.invalid/x:1"}]}
    if runs:
        pod["tolerations"] = [GPU_TOLERATION]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }


@dataclass
class OperatorProcess:
    """The operator as users run it: `python -m rsg_operator run`, a separate process,
    its output appended to `log`."""

    kubeconfig: Path
    log: Path
    flags: tuple[str, ...] = ("--verbose",)
    process: subprocess.Popen[bytes] | None = None

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rsg_operator",
                    "run",
                    f"--kubeconfig={self.kubeconfig}",
                    *self.flags,
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
            )
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup code of the operator runs."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait()
        self.process = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
