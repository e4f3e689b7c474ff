"""A real, local Kubernetes control plane: etcd + kube-apiserver + kube-controller-manager
(with nodes: kube-scheduler, kwok, and metrics-server behind the aggregation layer).

Used by the test suite and by `rsg-operator run` when no cluster is configured. The
binaries are built from pinned Go modules by hack/build-control-plane.sh; this module
only starts them on free loopback ports with generated certificates, waits until the
control plane is really usable (the controller-manager has created the `default`
ServiceAccount), and stops them leaving no process behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from rsg_operator import certs

PR_SET_PDEATHSIG = 1  # linux/prctl.h
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")
# With nodes: kube-scheduler places Pods, kwok plays the nodes' kubelets (and serves their
# resource metrics), metrics-server serves the metrics API (kubectl top, the HPA).
NODE_BINARIES = ("kube-scheduler", "kwok", "metrics-server")
# The aggregated API metrics-server serves, and where the aggregator finds it: an
# ExternalName Service to loopback (no address but 127.0.0.0/8 is ever dialed).
METRICS_API = ("metrics.k8s.io", "v1beta1")
NODE_LABEL = "rsg.local/kwok"
# The taint GPU nodes commonly carry (e.g. set by cloud providers' GPU node pools), and
# the toleration of Pods meant to run there.
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
SERVICE_CIDR = "10.0.0.0/24"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


class ControlPlaneError(RuntimeError):
    """The local control plane could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _Pki:
    """CA, apiserver serving cert, admin client cert and the service-account key."""

    directory: Path

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        ca = certs.Authority("rsg-local-ca")
        self.ca = self._write("ca.crt", ca.cert_pem)
        serving = ca.issue(
            "kube-apiserver",
            dns_names=["localhost", "kubernetes.default.svc"],
            ips=["127.0.0.1", "10.0.0.1"],
        )
        self.serving_cert = self._write("apiserver.crt", serving.cert_pem)
        self.serving_key = self._write("apiserver.key", serving.key_pem)
        admin = ca.issue("rsg-admin", organization="system:masters")
        self.admin_cert = self._write("admin.crt", admin.cert_pem)
        self.admin_key = self._write("admin.key", admin.key_pem)
        self.service_account_key = self._write("sa.key", certs.key_pem())
        # The aggregation layer: the apiserver proxies to extension apiservers with a
        # client certificate of a CA of its own, and they trust the user it names.
        front_proxy = certs.Authority("rsg-local-front-proxy-ca")
        self.front_proxy_ca = self._write("front-proxy-ca.crt", front_proxy.cert_pem)
        client = front_proxy.issue("front-proxy-client")
        self.front_proxy_cert = self._write("front-proxy-client.crt", client.cert_pem)
        self.front_proxy_key = self._write("front-proxy-client.key", client.key_pem)
        # Loopback servers: metrics-server, and kwok's kubelet endpoints (HTTPS).
        local = ca.issue("localhost", dns_names=["localhost"], ips=["127.0.0.1"])
        self.local_cert = self._write("local.crt", local.cert_pem)
        self.local_key = self._write("local.key", local.key_pem)

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path


@dataclass
class LocalControlPlane:
    """etcd, kube-apiserver and kube-controller-manager on loopback, in a work directory.

    Use as a context manager, or call start() and stop(). `kubeconfig` is an admin
    (system:masters) kubeconfig; `logs` holds one log file per process.
    """

    bin_dir: Path
    work_dir: Path | None = None
    startup_timeout: float = 120.0
    # Record every request (who, what, answer) in `audit_log`, one JSON line each: the
    # benchmarks count the operator's own requests by user agent.
    audit: bool = False
    # Only writes (create, update, patch, delete) are recorded: the tests' audit.
    audit_writes_only: bool = False
    # Fake nodes (kwok) with GPU-like capacity, and kube-scheduler: Pods are scheduled,
    # "run" and become Ready. 0: no nodes, no scheduler (every Pod stays Pending).
    nodes: int = 0
    # Taint the nodes as GPU nodes often are (GPU_TAINT): only Pods that tolerate it run
    # there, the others stay Pending. Tests use it to choose which Pods run.
    gpu_taint: bool = False
    # The controller-manager's request rate to the API server (its default: 20/s, burst
    # 30), which sets the pace of making and deleting pods in bulk; None: the default.
    controller_qps: int | None = None
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _log_files: list[IO[bytes]] = field(default_factory=list)
    _args: dict[str, list[str]] = field(default_factory=dict)
    _own_work_dir: bool = False

    def __post_init__(self) -> None:
        wanted = (*BINARIES, *NODE_BINARIES) if self.nodes else BINARIES
        missing = [b for b in wanted if not (self.bin_dir / b).is_file()]
        if missing:
            raise ControlPlaneError(
                f"control-plane binaries missing in {self.bin_dir}: {', '.join(missing)}; "
                "build them with `make control-plane` (hack/build-control-plane.sh)"
            )
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="rsg-control-plane-"))
            self._own_work_dir = True
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.work_dir / "logs"
        self.kubeconfig = self.work_dir / "kubeconfig"
        self.audit_log = self.logs / "audit.log"
        self.api_port = 0

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubectl(self) -> Path:
        return self.bin_dir / "kubectl"

    def __enter__(self) -> LocalControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        assert self.work_dir is not None
        self.logs.mkdir(exist_ok=True)
        try:
            pki = _Pki(self.work_dir / "pki")
            self.api_port = free_port()
            self._write_kubeconfig(pki)
            self._start_etcd()
            self._start_apiserver(pki)
            self._wait("kube-apiserver /readyz", lambda: self._get("/readyz") == "ok")
            self._start_controller_manager(pki)
            self._wait(
                "kube-controller-manager (default ServiceAccount)",
                lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            )
            if self.nodes:
                self._start_nodes(pki)
                self._start_metrics_server(pki)
        except BaseException:
            self.stop(keep_logs=True)
            raise

    def stop(self, keep_logs: bool = False) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and remove the work directory.

        keep_logs leaves the work directory (logs, kubeconfig) for a post-mortem.
        """
        for name in reversed(list(self._processes)):
            process = self._processes.pop(name)
            _terminate(process)
        for log in self._log_files:
            log.close()
        self._log_files.clear()
        if self._own_work_dir and not keep_logs and self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def apply(self, manifest: Path, namespace: str | None = None) -> None:
        """kubectl apply a file or directory; wait for any CRDs in it to be established."""
        kubectl = [str(self.kubectl), f"--kubeconfig={self.kubeconfig}"]
        scope = ["-n", namespace] if namespace else []
        subprocess.run([*kubectl, "apply", *scope, "-f", str(manifest)], check=True)
        if not _holds_crds(manifest):
            return
        wait = [*kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"]
        # A CRD created a moment ago may have no conditions yet, which `kubectl wait`
        # reports as an error rather than waiting: ask again until it has them.
        self._wait(
            "CRDs established",
            lambda: subprocess.run(wait, capture_output=True).returncode == 0,
        )

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the running components, by binary name."""
        return {name: process.pid for name, process in self._processes.items()}

    def wait(self) -> int:
        """Block until one of the processes exits (returns its code) or Ctrl-C (returns 0)."""
        try:
            while True:
                for process in self._processes.values():
                    if process.poll() is not None:
                        return process.returncode or 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0

    # ------------------------------------------------------------------ processes

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver and start it again on the same port, as an upgrade does:
        every client connection is dropped, etcd and the controller-manager keep running.
        Returns when the new one is ready."""
        process = self._processes.pop("kube-apiserver")
        _terminate(process)
        self._spawn("kube-apiserver", self._args["kube-apiserver"])
        self._wait("kube-apiserver /readyz after restart", lambda: self._get("/readyz") == "ok")

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision, as etcd's periodic compaction
        does: every watch that would resume from an older resourceVersion is answered 410
        (by the watch cache and by etcd alike), so its client must list again. Returns the
        revision compacted to."""
        status = _etcd_call(f"{self.etcd_url}/v3/maintenance/status", {})
        revision = int(status["header"]["revision"])
        _etcd_call(f"{self.etcd_url}/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def _spawn(self, name: str, args: list[str]) -> None:
        self._args[name] = args
        log = (self.logs / f"{name}.log").open("ab")
        self._log_files.append(log)
        self._processes[name] = subprocess.Popen(
            [str(self.bin_dir / name), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: a Ctrl-C on the terminal reaches us, and we stop them.
            start_new_session=True,
            # And if we die without stopping them (SIGKILL), the kernel kills them.
            preexec_fn=_die_with_parent,
        )

    def _start_etcd(self) -> None:
        assert self.work_dir is not None
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                "--name=default",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._wait("etcd /health", lambda: _http_ok(f"{self.etcd_url}/health"))

    def _start_apiserver(self, pki: _Pki) -> None:
        assert self.work_dir is not None
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--cert-dir={self.work_dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={pki.service_account_key}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                "--allow-privileged=true",
                # The aggregation layer (metrics-server's API).
                f"--requestheader-client-ca-file={pki.front_proxy_ca}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki.front_proxy_cert}",
                f"--proxy-client-key-file={pki.front_proxy_key}",
                # Not --enable-aggregator-routing: it resolves a Service through its
                # endpoints and refuses an ExternalName one ("unsupported service type").
                "--v=1",
                *self._audit_flags(),
            ],
        )

    def _audit_flags(self) -> list[str]:
        if not self.audit:
            return []
        assert self.work_dir is not None
        policy = self.work_dir / "audit-policy.yaml"
        policy.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "audit.k8s.io/v1",
                    "kind": "Policy",
                    "omitStages": ["RequestReceived", "ResponseStarted"],
                    "rules": [
                        {
                            "level": "Metadata",
                            **({"verbs": list(WRITE_VERBS)} if self.audit_writes_only else {}),
                        },
                        {"level": "None"},
                    ],
                }
            )
        )
        return [
            f"--audit-policy-file={policy}",
            f"--audit-log-path={self.audit_log}",
            # Buffered, so that recording costs the requests themselves nothing; on disk
            # within a second.
            "--audit-log-mode=batch",
            "--audit-log-batch-max-wait=1s",
            "--audit-log-maxsize=0",
        ]

    def _start_controller_manager(self, pki: _Pki) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--controllers=*",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki.service_account_key}",
                f"--root-ca-file={pki.ca}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Fast HPA reactions in tests; the production default is 15s.
                "--horizontal-pod-autoscaler-sync-period=2s",
                "--v=1",
                *self._controller_rate(),
            ],
        )

    def _controller_rate(self) -> list[str]:
        if not self.controller_qps:
            return []
        return [
            f"--kube-api-qps={self.controller_qps}",
            f"--kube-api-burst={2 * self.controller_qps}",
        ]

    def _start_nodes(self, pki: _Pki) -> None:
        """kube-scheduler, kwok, and `nodes` Node objects that kwok keeps Ready."""
        kubelet_port = free_port()
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--v=1",
            ],
        )
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-label-selector={NODE_LABEL}=true",
                # The nodes' kubelet endpoint, where metrics-server scrapes them: loopback.
                f"--server-address=127.0.0.1:{kubelet_port}",
                f"--node-port={kubelet_port}",
                "--node-ip=127.0.0.1",
                f"--tls-cert-file={pki.local_cert}",
                f"--tls-private-key-file={pki.local_key}",
                # Pod IPs are labels only (nothing dials them).
                "--cidr=10.64.0.1/16",
                "--node-lease-duration-seconds=40",
                # Its default stages, which the control-plane build puts beside the binaries.
                *(f"--config={stage}" for stage in sorted(self._kwok_stages().glob("*.yaml"))),
            ],
        )
        assert self.work_dir is not None
        manifest = self.work_dir / "nodes.yaml"
        nodes = [_node(i, self.gpu_taint) for i in range(1, self.nodes + 1)]
        manifest.write_text(yaml.safe_dump_all(nodes))
        self.apply(manifest)
        self._wait(f"{self.nodes} nodes Ready", self._nodes_ready)

    def _start_metrics_server(self, pki: _Pki) -> None:
        """metrics-server on loopback, scraping kwok's kubelet endpoints, and registered
        with the aggregator (an APIService and an ExternalName Service to 127.0.0.1)."""
        assert self.work_dir is not None
        port = free_port()
        self._spawn(
            "metrics-server",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={pki.local_cert}",
                f"--tls-private-key-file={pki.local_key}",
                # As kwok's own tooling runs it: nodes by their InternalIP (127.0.0.1) and
                # the port they report (kwok's), and kwok's certificate not verified.
                "--kubelet-preferred-address-types=InternalIP",
                "--kubelet-use-node-status-port",
                "--kubelet-insecure-tls",
                "--metric-resolution=10s",
                "--kubelet-request-timeout=5s",
                "--v=1",
            ],
        )
        group, version = METRICS_API
        manifest = self.work_dir / "metrics-server.yaml"
        manifest.write_text(
            yaml.safe_dump_all(
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "metadata": {"name": "metrics-server", "namespace": "kube-system"},
                        "spec": {
                            "type": "ExternalName",
                            "externalName": "127.0.0.1",
                            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                        },
                    },
                    {
                        "apiVersion": "apiregistration.k8s.io/v1",
                        "kind": "APIService",
                        "metadata": {"name": f"{version}.{group}"},
                        "spec": {
                            "group": group,
                            "version": version,
                            "service": {
                                "name": "metrics-server",
                                "namespace": "kube-system",
                                "port": port,
                            },
                            "insecureSkipTLSVerify": True,
                            "groupPriorityMinimum": 100,
                            "versionPriority": 100,
                        },
                    },
                ]
            )
        )
        self.apply(manifest)
        self._wait(
            "the metrics API (metrics-server through the aggregator)",
            lambda: self._get(f"/apis/{group}/{version}/nodes") is not None,
        )

    def _kwok_stages(self) -> Path:
        stages = self.bin_dir.parent / "kwok-stages"
        if not stages.is_dir():
            raise ControlPlaneError(
                f"kwok's stages are missing in {stages}: rebuild with hack/build-control-plane.sh"
            )
        return stages

    def _nodes_ready(self) -> bool:
        listing = json.loads(self._get(f"/api/v1/nodes?labelSelector={NODE_LABEL}%3Dtrue") or "{}")
        ready = [
            n
            for n in listing.get("items", [])
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n.get("status", {}).get("conditions", [])
            )
        ]
        return len(ready) == self.nodes

    # ------------------------------------------------------------------ readiness

    def _write_kubeconfig(self, pki: _Pki) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "rsg-local",
                    "cluster": {"server": self.server, "certificate-authority": str(pki.ca)},
                }
            ],
            "users": [
                {
                    "name": "rsg-admin",
                    "user": {
                        "client-certificate": str(pki.admin_cert),
                        "client-key": str(pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {"name": "rsg-local", "context": {"cluster": "rsg-local", "user": "rsg-admin"}}
            ],
            "current-context": "rsg-local",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self._ssl = ssl.create_default_context(cafile=str(pki.ca))
        self._ssl.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))

    def _get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(
                f"{self.server}{path}", context=self._ssl, timeout=5
            ) as response:
                body: bytes = response.read()
                return body.decode()
        except (OSError, ValueError):
            return None

    def _wait(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    raise ControlPlaneError(
                        f"{name} exited with code {process.returncode} while waiting for "
                        f"{what}; see {self.logs / (name + '.log')}"
                    )
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneError(
            f"timed out after {self.startup_timeout:.0f}s waiting for {what}; logs in {self.logs}"
        )


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGKILL when the parent dies (SIGTERM
    would let the apiserver wait on an etcd that is stopping too; the data is throwaway)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: stop() is then the only way out


def _etcd_call(url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One call to etcd's JSON gateway (served on its client URL)."""
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        found: dict[str, Any] = json.loads(answer.read())
    return found


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status == 200
    except OSError:
        return False


def _terminate(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        process.wait(timeout=grace)


def _node(index: int, gpu_taint: bool = False) -> dict[str, object]:
    """A fake node: 64 CPUs, 512 GiB, 8 GPUs (`nvidia.com/gpu`), managed by kwok."""
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "8"}
    name = f"kwok-node-{index}"
    node: dict[str, object] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {NODE_LABEL: "true", "kubernetes.io/hostname": name, "type": "kwok"},
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                # Where kwok serves this node's resource metrics (metrics-server asks).
                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource",
            },
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }
    if gpu_taint:
        node["spec"] = {"taints": [GPU_TAINT]}
    return node


def _holds_crds(manifest: Path) -> bool:
    files = sorted(manifest.rglob("*.y*ml")) if manifest.is_dir() else [manifest]
    return any("kind: CustomResourceDefinition" in f.read_text() for f in files)
