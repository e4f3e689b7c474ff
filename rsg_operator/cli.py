"""`rsg-operator run ...`: arguments, credentials, and the kopf main loop.

With no cluster configured (no --kubeconfig, no $KUBECONFIG, not in a pod, no
~/.kube/config), `run` starts the embedded local control plane from
--control-plane-bin (or $RSG_CONTROL_PLANE_BIN), applies the --apply manifests to it,
and runs the operator against it until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import kopf

from rsg_operator import handlers
from rsg_operator.local_cluster import ControlPlaneError, LocalControlPlane
from rsg_operator.settings import (
    DEFAULT_MAX_CONCURRENT_RECONCILES,
    DEFAULT_RESYNC_SECONDS,
    Settings,
    WebhookSettings,
)

log = logging.getLogger("rsg_operator")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rsg-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the operator")
    run.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: standard lookup)")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=[], help="watch this namespace (repeatable)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="watch every namespace (default)"
    )
    run.add_argument(
        "--allow-cross-namespace",
        action="store_true",
        help="allow targets in another namespace than their RSG",
    )
    run.add_argument(
        "--resync-seconds",
        type=_positive,
        default=DEFAULT_RESYNC_SECONDS,
        help="re-check every RSG this often, a safety net behind the watches "
        f"(default: {DEFAULT_RESYNC_SECONDS:.0f}, with 10%% jitter)",
    )
    run.add_argument(
        "--max-concurrent-reconciles",
        type=_positive_int,
        default=DEFAULT_MAX_CONCURRENT_RECONCILES,
        help="reconcile at most this many RSGs at once "
        f"(default: {DEFAULT_MAX_CONCURRENT_RECONCILES})",
    )
    run.add_argument(
        "--http-address",
        default=None,
        help="serve /metrics, /healthz and /readyz on HOST:PORT, e.g. 0.0.0.0:8080 "
        "(default: not served)",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="reconcile only while holding a coordination.k8s.io Lease (for 2+ replicas)",
    )
    run.add_argument("--leader-election-id", default="rsg-operator", help="the Lease's name")
    run.add_argument(
        "--leader-election-namespace",
        default=None,
        help="the Lease's namespace (default: the pod's namespace, else 'default')",
    )
    run.add_argument(
        "--webhook-address",
        default=None,
        help="serve the validating admission webhook over TLS on HOST:PORT (default: not served)",
    )
    run.add_argument(
        "--webhook-cert-dir",
        type=Path,
        default=None,
        help="tls.crt and tls.key to serve it with (default: made at start by a CA of its own)",
    )
    run.add_argument(
        "--webhook-configuration",
        default=None,
        help="ValidatingWebhookConfiguration whose caBundle trusts the CA made at start",
    )
    run.add_argument(
        "--webhook-host",
        action="append",
        default=[],
        help="a DNS name or IP of the webhook, for the certificate made at start "
        "(repeatable; default: localhost, 127.0.0.1)",
    )
    run.add_argument(
        "--webhook-replicas",
        type=_positive_int,
        default=1,
        help="how many replicas serve the webhook (the chart's replicaCount): the caBundle "
        "keeps the CAs made at start of at most this many replicas plus one (default: 1)",
    )
    run.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="json: one object a line"
    )
    run.add_argument("-v", "--verbose", action="store_true")
    cluster = commands.add_parser(
        "cluster", help="start the local control plane alone and print its kubeconfig"
    )
    for command in (run, cluster):
        command.add_argument(
            "--nodes",
            type=int,
            default=3,
            help="fake nodes (kwok, 8 GPUs each) of the local control plane, where Pods are "
            "scheduled and become Ready (default: 3; 0: none, Pods stay Pending)",
        )
        command.add_argument(
            "--control-plane-bin",
            type=Path,
            default=os.environ.get("RSG_CONTROL_PLANE_BIN"),
            help="binaries of the local control plane (hack/build-control-plane.sh prints it)",
        )
        command.add_argument(
            "--apply",
            type=Path,
            action="append",
            default=[],
            help="manifest file or directory to apply to the local control plane (repeatable); "
            "'NAMESPACE=PATH' applies into a namespace",
        )
    return parser.parse_args(argv)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def cluster_configured(kubeconfig: Path | None) -> bool:
    return (
        kubeconfig is not None
        or bool(os.environ.get("KUBECONFIG"))
        or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        or (Path.home() / ".kube" / "config").exists()
    )


@contextlib.contextmanager
def local_control_plane(args: argparse.Namespace) -> Iterator[LocalControlPlane]:
    """Start the local control plane, apply the --apply manifests, yield it."""
    if args.control_plane_bin is None:
        raise SystemExit(
            "rsg-operator: no cluster is configured (no --kubeconfig, $KUBECONFIG, "
            "in-cluster service account or ~/.kube/config) and no local control plane "
            "binaries were given: pass --control-plane-bin or set RSG_CONTROL_PLANE_BIN "
            "(`make demo` does both)"
        )
    try:
        with LocalControlPlane(bin_dir=args.control_plane_bin, nodes=args.nodes) as plane:
            log.info("local control plane at %s", plane.server)
            for item in args.apply:
                namespace, sep, path = str(item).rpartition("=")
                plane.apply(Path(path), namespace if sep else None)
            print(f"\nexport KUBECONFIG={plane.kubeconfig}\n", file=sys.stderr, flush=True)
            yield plane
    except ControlPlaneError as error:
        raise SystemExit(f"rsg-operator: {error}") from None


def run(args: argparse.Namespace) -> None:
    settings = Settings(
        allow_cross_namespace=args.allow_cross_namespace,
        resync_seconds=args.resync_seconds,
        max_concurrent_reconciles=args.max_concurrent_reconciles,
        cluster_wide=not args.namespace,
        namespaces=tuple(args.namespace),
        leader_election=args.leader_elect,
        lease_name=args.leader_election_id,
        lease_namespace=args.leader_election_namespace,
        http_address=args.http_address,
        webhook=WebhookSettings(
            args.webhook_address,
            args.webhook_cert_dir,
            args.webhook_configuration,
            tuple(args.webhook_host) or ("localhost", "127.0.0.1"),
            args.webhook_replicas,
        )
        if args.webhook_address
        else None,
    )
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    log_format = kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=args.verbose, log_format=log_format, log_prefix=True)
    # Per-event chatter of kopf and of the client's transport would drown the operator's
    # own lines at hundreds of RSGs; their warnings and errors still show.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    logging.getLogger("kubernetes_asyncio").setLevel(logging.INFO)
    with contextlib.ExitStack() as stack:
        kubeconfig = args.kubeconfig
        if not cluster_configured(kubeconfig):
            kubeconfig = stack.enter_context(local_control_plane(args)).kubeconfig
        if kubeconfig is not None:
            # kopf's login and our client both read the same kubeconfig.
            os.environ["KUBECONFIG"] = str(kubeconfig)
        memo = kopf.Memo(settings=settings, kubeconfig=kubeconfig)
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    standalone=True,
                    clusterwide=not args.namespace,
                    namespaces=args.namespace,
                    memo=memo,
                )
            )
        except KeyboardInterrupt:
            pass
        except Exception as error:
            startup = memo.get("startup")
            if startup is not None and startup.runtime is None and startup.failures:
                raise SystemExit(
                    f"rsg-operator: start-up failed {startup.failures} times, the last time "
                    f"with {startup.last_error}"
                ) from None
            raise SystemExit(f"rsg-operator: stopped: {type(error).__name__}: {error}") from None


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "run":
        run(args)
    elif args.command == "cluster":
        kopf.configure(verbose=False)
        with local_control_plane(args) as plane:
            sys.exit(plane.wait())
