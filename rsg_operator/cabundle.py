"""Which CAs the webhook configuration's caBundle trusts when each replica makes its own
CA at start (webhook.py). Pure.

Each replica records, in an annotation of the configuration, which CA is its own and
when it was last heard from: at start, then every `HEARTBEAT`. A write by a replica
keeps

- its own CA, in place of the one its replica recorded before: a container restarted in
  the same pod (a crash loop) replaces its CA instead of adding one;
- the CAs of at most `replicas` other replicas: those heard from most recently, none
  silent for `STALE` or longer, none expired.

A replica that stops cleanly takes its record and CA out (`leave`), after it has
stopped serving: in a rolling update the pods it replaces are gone from the records
before the next one starts. So the bundle holds at most replicas + 1 CAs: one per
replica the Deployment runs, and one for the pod a rolling update adds beside them (the
chart's maxSurge is 1). Only a replica that died without leaving (killed, or its last
write failed) and was heard from more recently than a live one can outrank it; the live
one puts its CA back at its next beat, within a minute.

CAs found without a record (an operator from before the records, during an upgrade from
it, or added by hand) are not counted against that bound: their pods never say they are
alive, so each is kept for STALE from when it was first seen, whatever else is there.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rsg_operator import labels

# On the ValidatingWebhookConfiguration: {replica: {"ca": fingerprint, "seen": RFC 3339}}.
ANNOTATION = f"{labels.PREFIX}/webhook-cas"
# Every replica says it is alive this often (seconds)...
HEARTBEAT = 60.0
# ...and the CA of one not heard from for this long is no longer trusted.
STALE = 600.0
# The record a CA found in the bundle without one gets (made by an older operator, or
# added by hand): it counts as heard from at first sight, and ages from there.
UNRECORDED = "unrecorded-"


@dataclass(frozen=True)
class Record:
    """A replica's CA (its SHA-256 fingerprint) and when it was last heard from."""

    fingerprint: str
    seen: float  # epoch seconds


@dataclass(frozen=True)
class Trust:
    """A caBundle (PEM) and the records of the replicas whose CAs it holds."""

    bundle: bytes
    records: dict[str, Record]


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def trust(
    bundle: bytes,
    records: Mapping[str, Record],
    replica: str,
    ca_pem: bytes,
    replicas: int,
    now: float,
) -> Trust:
    """The bundle and records after `replica` says, at `now`, that it serves with the CA
    `ca_pem`, of a webhook served by `replicas` replicas."""
    own = x509.load_pem_x509_certificate(ca_pem)
    own_print = fingerprint(own)
    found = {
        fingerprint(cert): cert
        for cert in _certificates(bundle)
        if cert.not_valid_after_utc.timestamp() > now
    }
    known = {
        name: record
        for name, record in records.items()
        if name != replica and record.fingerprint in found and record.fingerprint != own_print
    }
    # Every CA a record names (the writer's previous one included, which goes) has its
    # record; any other CA in the bundle gets one now.
    recorded = {record.fingerprint for record in records.values()}
    for print_ in found:
        if print_ not in recorded and print_ != own_print:
            known[UNRECORDED + print_[:16]] = Record(print_, now)
    alive = {name: record for name, record in known.items() if now - record.seen < STALE}
    unrecorded = {name: r for name, r in alive.items() if name.startswith(UNRECORDED)}
    heard = sorted(
        ((name, record) for name, record in alive.items() if name not in unrecorded),
        key=lambda item: (item[1].seen, found[item[1].fingerprint].not_valid_before_utc),
        reverse=True,
    )
    kept = {replica: Record(own_print, now), **dict(heard[: max(replicas, 1)]), **unrecorded}
    return Trust(_pem(found, {record.fingerprint for record in kept.values()}, own), kept)


def leave(bundle: bytes, records: Mapping[str, Record], replica: str) -> Trust:
    """The bundle and records once `replica` has stopped serving: its record goes, and
    its CA with it unless another record names the same CA."""
    found = {fingerprint(cert): cert for cert in _certificates(bundle)}
    kept = {name: record for name, record in records.items() if name != replica}
    # A CA no record names stays: it is not this replica's to take out.
    recorded = {record.fingerprint for record in records.values()}
    prints = {p for p in found if p not in recorded} | {r.fingerprint for r in kept.values()}
    return Trust(_pem(found, prints), kept)


def _pem(
    found: dict[str, x509.Certificate], prints: set[str], own: x509.Certificate | None = None
) -> bytes:
    """The bundle of the CAs in `prints`, in the order `found` has them; `own` goes last
    if it is not there yet, so a beat changes no byte of the bundle."""
    ordered = [cert for print_, cert in found.items() if print_ in prints]
    if own is not None and fingerprint(own) not in found:
        ordered.append(own)
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in ordered)


def _certificates(bundle: bytes) -> list[x509.Certificate]:
    """The bundle's CAs; none if it is not PEM (then no replica is trusted anyway)."""
    try:
        return x509.load_pem_x509_certificates(bundle) if bundle.strip() else []
    except ValueError:
        return []


def parse_records(text: str | None) -> dict[str, Record]:
    """The records as the annotation holds them; none if it is absent or unreadable (its
    CAs are then unrecorded, and age from now)."""
    try:
        raw = json.loads(text or "{}")
        return {
            str(name): Record(str(entry["ca"]), _epoch(str(entry["seen"])))
            for name, entry in raw.items()
        }
    except (ValueError, TypeError, KeyError, AttributeError):
        return {}


def format_records(records: Mapping[str, Record]) -> str:
    return json.dumps(
        {name: {"ca": r.fingerprint, "seen": _rfc3339(r.seen)} for name, r in records.items()},
        sort_keys=True,
        separators=(",", ":"),
    )


def _rfc3339(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
