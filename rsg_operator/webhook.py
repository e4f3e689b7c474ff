"""The validating admission webhook for RSGs, served over TLS by every replica (leader
or not: the RSG watch, and so the claims of stored RSGs, runs in each).

The serving certificate comes from `--webhook-cert-dir` (tls.crt, tls.key: e.g. a
cert-manager Certificate's Secret, mounted), read again whenever those files change
(a renewal takes effect at the next TLS handshake, without a restart); or it is made at
start by a CA of the process's own; then, with `--webhook-configuration`, that CA is
added to the ValidatingWebhookConfiguration's caBundle beside the CAs of the other live
replicas (cabundle.py: at most one per replica plus one), so the API server trusts
whichever replica it reaches.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509

from rsg_operator import admission, cabundle, certs, tasks
from rsg_operator.admission import Related
from rsg_operator.kube import Conflict, Kube, KubeError
from rsg_operator.settings import WebhookSettings

log = logging.getLogger("rsg_operator.webhook")

PATH = "/validate-rsg"
CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
CA_DAYS = 365
LEAVE_TIMEOUT = 5.0  # seconds a stopping replica gives its last write


@dataclass
class Webhook:
    """The webhook being served, and the beat that keeps this replica's CA trusted."""

    runner: web.AppRunner
    heartbeat: asyncio.Task[None] | None = None
    trusted: Trusted | None = None

    def died(self) -> str | None:
        return tasks.ended(self.heartbeat, "the webhook CA's heartbeat", "it returned")

    async def stop(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.heartbeat
        await self.runner.cleanup()
        if self.trusted is not None:
            # Serving no more: its CA leaves the bundle, so that the pod a rolling update
            # starts next cannot drop a live replica's in favour of this one's.
            try:
                await asyncio.wait_for(self.trusted.leave(), LEAVE_TIMEOUT)
            except (KubeError, OSError, RuntimeError, LookupError, TimeoutError) as error:
                log.warning("could not take this replica's CA out of the caBundle: %s", error)


async def serve(settings: WebhookSettings, kube: Kube, related: Related) -> Webhook:
    """Serve the webhook; `related` gives the stored RSGs' claims connected to a claim."""
    if settings.cert_dir is not None:
        context = CertificateFiles(settings.cert_dir).context
    else:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority = certs.Authority("rsg-operator-webhook-ca", days=CA_DAYS)
        names = [h for h in settings.hosts if not _is_ip(h)]
        issued = authority.issue(
            names[0] if names else "rsg-operator", names, [h for h in settings.hosts if _is_ip(h)]
        )
        # ssl loads a chain from files only: they live just long enough for that, so
        # the private key is not left on disk.
        with tempfile.TemporaryDirectory(prefix="rsg-webhook-") as made:
            directory = Path(made)
            (directory / "tls.crt").write_bytes(issued.cert_pem)
            (directory / "tls.key").write_bytes(issued.key_pem)
            context.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    app = web.Application()
    app.router.add_post(PATH, _handler(related))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    served = Webhook(runner)
    host, _, port = settings.address.rpartition(":")
    try:
        # The port first: a CA is added to the caBundle (for a year) only by a replica
        # that serves, so a start-up failing on its port leaves nothing behind.
        await web.TCPSite(runner, host or "0.0.0.0", int(port), ssl_context=context).start()
        if settings.cert_dir is None and settings.configuration is not None:
            trusted = Trusted(kube, settings.configuration, authority.cert_pem, settings.replicas)
            served.trusted = trusted
            await trusted.say()
            served.heartbeat = asyncio.create_task(trusted.beat(), name="webhook CA heartbeat")
    except BaseException:
        await served.stop()
        raise
    log.info("serving the validating webhook on https://%s%s", settings.address, PATH)
    return served


class CertificateFiles:
    """The serving certificate in a directory (tls.crt, tls.key), read again when the
    files change: cert-manager renews the Secret, the kubelet swaps the mounted files.

    `context` is what the server is given. At each TLS handshake (its SNI callback, which
    runs whether or not the client names a server), the files' stat is compared with the
    last one read, and on a change a new context is loaded and put in that connection's
    place; connections already open keep theirs. Files caught half-written (a certificate
    without its key yet) are not used: the previous certificate serves until a later
    change reads whole."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._seen = self._stat()
        self.context = self._load()  # fails at start, as it should, if they are unusable
        self.context.sni_callback = self._on_hello
        self._current = self.context

    def _paths(self) -> tuple[Path, Path]:
        return self.directory / "tls.crt", self.directory / "tls.key"

    def _stat(self) -> tuple[tuple[int, int, int], ...]:
        """What tells a renewal: each file's inode, size and modification time (through
        the kubelet's symlinks, which it swaps atomically)."""
        return tuple(
            (found.st_ino, found.st_size, found.st_mtime_ns)
            for found in (path.stat() for path in self._paths())
        )

    def _load(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*self._paths())
        return context

    def _on_hello(
        self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        self._reload()
        if self._current is not self.context:
            connection.context = self._current

    def _reload(self) -> None:
        try:
            stamp = self._stat()
        except OSError:
            return  # mid-swap: the next handshake looks again
        if stamp == self._seen:
            return
        self._seen = stamp
        try:
            self._current = self._load()
        except (OSError, ssl.SSLError) as error:
            log.warning(
                "the webhook's certificate in %s changed but cannot be used (yet): %s; "
                "still serving the previous one",
                self.directory,
                error,
            )
            return
        log.info("serving the webhook with the renewed certificate in %s", self.directory)


def review(body: dict[str, Any], related: Related) -> dict[str, Any]:
    """An AdmissionReview response to an AdmissionReview request."""
    request = body.get("request") or {}
    response: dict[str, Any] = {"uid": request.get("uid"), "allowed": True}
    new = request.get("object")
    if request.get("operation") in ("CREATE", "UPDATE") and isinstance(new, dict):
        found = admission.refusals(new, request.get("oldObject"), related)
        if found:
            response["allowed"] = False
            response["status"] = {"code": 422, "reason": "Invalid", "message": "; ".join(found)}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _handler(
    related: Related,
) -> Callable[[web.Request], Any]:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response(review(await request.json(), related))

    return handle


def replica_name() -> str:
    """This replica among those adding CAs: its pod's name (POD_NAME, set by the chart),
    which a restarted container keeps; else the host's name and the process id."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class Trusted:
    """This replica's CA in the configuration's caBundle: added at start, then said
    alive every cabundle.HEARTBEAT (and added again if it was dropped meanwhile)."""

    kube: Kube
    configuration: str
    ca_pem: bytes
    replicas: int

    @property
    def fingerprint(self) -> str:
        return cabundle.fingerprint(x509.load_pem_x509_certificate(self.ca_pem))

    async def say(self) -> None:
        """Add or keep this replica's CA in every webhook's caBundle of the configuration
        (dropping dead replicas' CAs), retrying on a conflict with another replica."""
        replica = replica_name()

        def said(bundle: bytes, records: dict[str, cabundle.Record]) -> cabundle.Trust:
            return cabundle.trust(bundle, records, replica, self.ca_pem, self.replicas, now)

        now = time.time()
        before = await self._update(said)
        mine = before.get(replica)
        if mine is None or mine.fingerprint != self.fingerprint:
            log.info(
                "ValidatingWebhookConfiguration %s trusts this replica's CA (%s)",
                self.configuration,
                replica,
            )

    async def leave(self) -> None:
        """Take this replica's record and CA out (it serves no more)."""
        replica = replica_name()
        await self._update(lambda bundle, records: cabundle.leave(bundle, records, replica))
        log.info("this replica's CA (%s) left the caBundle", replica)

    async def _update(
        self, change: Callable[[bytes, dict[str, cabundle.Record]], cabundle.Trust]
    ) -> dict[str, cabundle.Record]:
        """Apply `change` to every webhook's caBundle and the records, as one update
        guarded by the configuration's resourceVersion; returns the records before it."""
        path = f"{CONFIGURATIONS}/{self.configuration}"
        for _ in range(10):
            configuration = await self.kube.get(path)
            if configuration is None:
                # Created later with another caBundle, it would refuse every RSG write.
                raise LookupError(
                    f"ValidatingWebhookConfiguration {self.configuration} not found: cannot "
                    "add this replica's CA to its caBundle (create it first, or drop "
                    "--webhook-configuration)"
                )
            annotations = configuration["metadata"].setdefault("annotations", {})
            before = cabundle.parse_records(annotations.get(cabundle.ANNOTATION))
            records = before
            for hook in configuration.get("webhooks") or []:
                client = hook.setdefault("clientConfig", {})
                kept = change(base64.b64decode(client.get("caBundle") or ""), before)
                client["caBundle"] = base64.b64encode(kept.bundle).decode()
                records = kept.records
            annotations[cabundle.ANNOTATION] = cabundle.format_records(records)
            try:
                await self.kube.replace(path, configuration)  # guarded by its resourceVersion
            except Conflict:
                continue
            return before
        raise RuntimeError(
            f"could not update the caBundle of {self.configuration}: it kept changing"
        )

    async def beat(self) -> None:
        """Say it every HEARTBEAT until cancelled; a failed beat is logged and the next
        one tries again (the CA stays trusted for cabundle.STALE without one)."""
        while True:
            await asyncio.sleep(cabundle.HEARTBEAT)
            try:
                await self.say()
            except (KubeError, OSError, RuntimeError, LookupError) as error:
                log.warning("could not say this replica's webhook CA is alive: %s", error)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
