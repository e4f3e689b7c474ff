"""The webhook's serving certificate, renewed in its directory, is served from the next
TLS handshake on, without a restart."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from cryptography import x509

from rsg_operator import certs
from rsg_operator.webhook import CertificateFiles
from tests.mounted import MountedSecret

AUTHORITY = certs.Authority("test-ca")


def issued() -> certs.Issued:
    return AUTHORITY.issue("localhost", ["localhost"], ["127.0.0.1"])


def files(cert: certs.Issued) -> dict[str, bytes]:
    return {"tls.crt": cert.cert_pem, "tls.key": cert.key_pem}


async def served_serial(port: int) -> int:
    """The serial number of the certificate a new TLS connection is served."""
    client = ssl.create_default_context(cadata=AUTHORITY.cert_pem.decode())
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()
        await writer.wait_closed()


def serial(cert: certs.Issued) -> int:
    return x509.load_pem_x509_certificate(cert.cert_pem).serial_number


async def _renewals(directory: Path) -> list[bool]:
    mounted = MountedSecret(directory)
    first, second, third = issued(), issued(), issued()
    mounted.update(files(first))
    certificate = CertificateFiles(directory)

    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=certificate.context)
    port = server.sockets[0].getsockname()[1]
    try:
        seen = [await served_serial(port) == serial(first)]
        mounted.update(files(second))  # as the kubelet swaps a renewed Secret's files
        seen.append(await served_serial(port) == serial(second))
        # Written in place, one file after the other: the certificate alone does not
        # match the key, so the last whole pair still serves until the key follows.
        (directory / "..data" / "tls.crt").write_bytes(third.cert_pem)
        seen.append(await served_serial(port) == serial(second))
        (directory / "..data" / "tls.key").write_bytes(third.key_pem)
        seen.append(await served_serial(port) == serial(third))
        return seen
    finally:
        server.close()
        await server.wait_closed()


def test_a_renewed_certificate_is_served_from_the_next_handshake(tmp_path: Path) -> None:
    assert asyncio.run(_renewals(tmp_path / "webhook")) == [True, True, True, True]
