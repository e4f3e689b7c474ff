"""Operator-wide settings, set once from the command line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WebhookSettings:
    address: str  # host:port
    cert_dir: Path | None = None  # tls.crt, tls.key; None: made at start
    configuration: str | None = None  # the ValidatingWebhookConfiguration to trust our CA
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1")  # names in the certificate made
    # How many replicas serve it (the chart's replicaCount): the caBundle keeps the CAs
    # of at most this many replicas plus one (cabundle.py).
    replicas: int = 1


DEFAULT_RESYNC_SECONDS = 300.0
DEFAULT_MAX_CONCURRENT_RECONCILES = 8


@dataclass(frozen=True)
class Settings:
    # SPEC §5: targets outside the RSG's namespace only with an explicit opt-in.
    allow_cross_namespace: bool = False
    # Every RSG is reconciled again this often (x0.9-1.1): a safety net only, since
    # watches wake an RSG whenever anything it concerns changes.
    resync_seconds: float = DEFAULT_RESYNC_SECONDS
    # At most this many RSGs are reconciled at once.
    max_concurrent_reconciles: int = DEFAULT_MAX_CONCURRENT_RECONCILES
    # Whether the operator watches every namespace (one watch per kind) or only some
    # (one watch per kind and namespace).
    cluster_wide: bool = True
    namespaces: tuple[str, ...] = ()  # those watched, when not cluster-wide
    # Only the holder of a Lease reconciles (leader.py); off for a single local process.
    leader_election: bool = False
    lease_name: str = "rsg-operator"
    lease_namespace: str | None = None  # default: the pod's namespace
    # host:port for /metrics, /healthz and /readyz (serving.py); None: not served.
    http_address: str | None = None
    # The validating admission webhook (webhook.py); None: not served.
    webhook: WebhookSettings | None = None
