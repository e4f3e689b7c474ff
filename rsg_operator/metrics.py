"""The operator's Prometheus metrics: one registry, served at /metrics (serving.py).

Names follow Prometheus conventions (`_total` counters, `_seconds` histograms); every
metric starts with `rsg_`. No I/O here: the counters are plain objects in memory.
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "rsg_reconciles",
    "Reconciles, by result: ok, conflict (retried at once), error (retried with backoff)",
    ["result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "rsg_reconcile_duration_seconds",
    "How long a reconcile took",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "rsg_reconcile_errors",
    "Failed reconciles, by reason (the API's reason, or the exception's type)",
    ["reason"],
    registry=REGISTRY,
)
WRITES = Counter(
    "rsg_writes",
    "API writes, by resource (plural[/subresource]) and verb",
    ["resource", "verb"],
    registry=REGISTRY,
)
SCALE_EVENTS = Counter(
    "rsg_scale_events",
    "Scaling events posted: Scaled, GroupCreated, GroupCompleted, GroupRemoved, GroupUpdated",
    ["reason"],
    registry=REGISTRY,
)
GROUPS = Gauge(
    "rsg_groups",
    "Groups of a GroupReplication RSG, by state: current (serving), ready, draining and "
    "blocked (partial, a clone's name held by another app's object)",
    ["namespace", "name", "state"],
    registry=REGISTRY,
)
DRAINS = Counter(
    "rsg_drains",
    "Drains ended, by outcome: acknowledged (by the gateway), deadline (nobody acknowledged "
    "in time: requests may have been cut), revived (wanted back)",
    ["outcome"],
    registry=REGISTRY,
)
WATCH_RECONNECTS = Counter(
    "rsg_watch_reconnects",
    "Watch outages (each counted once, however many retries it took), by resource",
    ["resource"],
    registry=REGISTRY,
)
CACHED = Gauge(
    "rsg_cached_objects",
    "Objects the watches hold, by resource and form: whole (an RSG reads it) or stub "
    "(another app's object: its name, uid and resourceVersion only)",
    ["resource", "form"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "rsg_queue_depth",
    "RSGs queued for a reconcile now (not counting scheduled resyncs)",
    registry=REGISTRY,
)
LEADER = Gauge(
    "rsg_leader", "1 while this process is the leader (it reconciles), else 0", registry=REGISTRY
)

SCALE_REASONS = frozenset(
    {
        "Scaled",
        "GroupCreated",
        "GroupCompleted",
        "GroupRemoved",
        "GroupUpdated",
        "GroupDraining",
        "GroupRevived",
    }
)
VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def resource_of(path: str) -> str:
    """The resource an API path names: `deployments`, `resourcescalinggroups/status`."""
    parts = path.split("?", 1)[0].strip("/").split("/")
    parts = parts[2:] if parts[0] == "api" else parts[3:]  # after [api, v1] / [apis, g, v]
    if len(parts) >= 2 and parts[0] == "namespaces":
        parts = parts[2:] if len(parts) > 2 else ["namespaces"]
    return "/".join([parts[0], *parts[2:3]]) if parts else "?"


def forget_rsg(namespace: str, name: str) -> None:
    for state in ("current", "ready", "draining", "blocked"):
        with contextlib.suppress(KeyError):  # never set: not a GroupReplication RSG
            GROUPS.remove(namespace, name, state)
