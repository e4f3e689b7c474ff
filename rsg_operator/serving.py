"""The operator's HTTP endpoints: /metrics (Prometheus), /healthz (liveness) and
/readyz (readiness), on one address (`--http-address`), served on the event loop.

An answer from /healthz proves the event loop runs; it fails (503) if a check says a
part of the operator has died (a watch task that ended, the leader election loop).
/readyz is ready when this process leads and its workers run, or when it is a healthy
standby: a standby is ready to take over, and Kubernetes should keep it in the
Service's endpoints for the metrics it serves.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rsg_operator import metrics

log = logging.getLogger("rsg_operator.serving")

Check = Callable[[], str | None]  # None: fine; else what is wrong


@dataclass
class Probes:
    """What /healthz and /readyz ask, registered by the parts that know."""

    alive: list[Check] = field(default_factory=list)
    ready: list[Check] = field(default_factory=list)


async def serve(address: str, probes: Probes) -> web.AppRunner:
    """Start serving on `address` (host:port); stop with `await runner.cleanup()`."""
    host, _, port = address.rpartition(":")
    app = web.Application()
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _probe(probes.alive))
    app.router.add_get("/readyz", _probe(probes.ready))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host or "0.0.0.0", int(port)).start()
    log.info("serving /metrics, /healthz and /readyz on %s", address)
    return runner


async def _metrics(_: web.Request) -> web.Response:
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _probe(checks: list[Check]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_: web.Request) -> web.Response:
        failures = [problem for check in checks if (problem := check()) is not None]
        if failures:
            return web.Response(status=503, text="\n".join(failures) + "\n")
        return web.Response(text="ok\n")

    return handle
