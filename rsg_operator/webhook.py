"""The validating admission webhook for RSGs, served over TLS by every replica (leader
or not: the RSG watch, and so the claims of stored RSGs, runs in each).

The serving certificate comes from `--webhook-cert-dir` (tls.crt, tls.key: e.g. a
cert-manager Certificate's Secret, mounted), or is made at start by a CA of the
process's own; then, with `--webhook-configuration`, that CA is added to the
ValidatingWebhookConfiguration's caBundle (kept beside the other replicas' CAs; CAs
that have expired are dropped), so the API server trusts whichever replica it reaches.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rsg_operator import admission, certs
from rsg_operator.admission import Related
from rsg_operator.kube import Conflict, Kube
from rsg_operator.settings import WebhookSettings

log = logging.getLogger("rsg_operator.webhook")

PATH = "/validate-rsg"
CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
CA_DAYS = 365


async def serve(settings: WebhookSettings, kube: Kube, related: Related) -> web.AppRunner:
    """Serve the webhook; `related` gives the stored RSGs' claims connected to a claim."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if settings.cert_dir is not None:
        context.load_cert_chain(settings.cert_dir / "tls.crt", settings.cert_dir / "tls.key")
    else:
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
    host, _, port = settings.address.rpartition(":")
    try:
        # The port first: a CA is added to the caBundle (for a year) only by a replica
        # that serves, so a start-up failing on its port leaves nothing behind.
        await web.TCPSite(runner, host or "0.0.0.0", int(port), ssl_context=context).start()
        if settings.cert_dir is None and settings.configuration is not None:
            await _trust(kube, settings.configuration, authority.cert_pem)
    except BaseException:
        await runner.cleanup()
        raise
    log.info("serving the validating webhook on https://%s%s", settings.address, PATH)
    return runner


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


async def _trust(kube: Kube, name: str, ca_pem: bytes) -> None:
    """Add `ca_pem` to every webhook's caBundle in the configuration `name` (dropping
    expired CAs), retrying on a conflict with another replica doing the same."""
    path = f"{CONFIGURATIONS}/{name}"
    for _ in range(10):
        configuration = await kube.get(path)
        if configuration is None:
            # Created later with another caBundle, it would refuse every RSG write.
            raise LookupError(
                f"ValidatingWebhookConfiguration {name} not found: cannot add this "
                "replica's CA to its caBundle (create it first, or drop --webhook-configuration)"
            )
        for hook in configuration.get("webhooks") or []:
            client = hook.setdefault("clientConfig", {})
            bundle = base64.b64decode(client.get("caBundle") or "")
            client["caBundle"] = base64.b64encode(_bundle(bundle, ca_pem)).decode()
        try:
            await kube.replace(path, configuration)  # guarded by its resourceVersion
            log.info("ValidatingWebhookConfiguration %s trusts this replica's CA", name)
            return
        except Conflict:
            continue
    raise RuntimeError(f"could not update the caBundle of {name}: it kept changing")


def _bundle(existing: bytes, ca_pem: bytes) -> bytes:
    now = dt.datetime.now(dt.UTC)
    kept = [
        cert.public_bytes(serialization.Encoding.PEM)
        for cert in (x509.load_pem_x509_certificates(existing) if existing.strip() else [])
        if cert.not_valid_after_utc > now
    ]
    return b"".join([*kept, ca_pem])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
