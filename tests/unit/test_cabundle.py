"""The webhook's caBundle stays bounded: one CA per live replica plus one."""

from __future__ import annotations

import functools
import time

from cryptography import x509

from rsg_operator import cabundle, certs
from rsg_operator.cabundle import HEARTBEAT, STALE, Record, Trust

NOW = time.time()


@functools.cache
def ca(name: str, days: int = 365) -> bytes:
    return certs.Authority(f"ca-{name}", days=days).cert_pem


def names(trust: Trust) -> list[str]:
    """The CAs of the bundle, by the name they were made with, in the bundle's order."""
    return [
        cert.subject.rfc4514_string().removeprefix("CN=ca-")
        for cert in x509.load_pem_x509_certificates(trust.bundle)
    ]


def start(trust: Trust, replica: str, made: str, now: float, replicas: int = 2) -> Trust:
    """`replica` starts with a new CA `made` (or beats with it again) at `now`."""
    return cabundle.trust(trust.bundle, trust.records, replica, ca(made), replicas, now)


EMPTY = Trust(b"", {})


def test_each_replica_adds_its_ca_and_keeps_the_others() -> None:
    trust = start(EMPTY, "pod-a", "a", NOW)
    trust = start(trust, "pod-b", "b", NOW + 1)
    assert names(trust) == ["a", "b"]
    assert set(trust.records) == {"pod-a", "pod-b"}


def test_a_crash_looping_pod_replaces_its_own_ca_instead_of_adding_one() -> None:
    trust = start(start(EMPTY, "pod-a", "a", NOW), "pod-b", "b1", NOW + 1)
    for restart in range(2, 30):  # a container restarted again and again in pod-b
        trust = start(trust, "pod-b", f"b{restart}", NOW + 10 * restart)
    assert names(trust) == ["a", "b29"]  # pod-a's CA kept through it all


def test_never_more_than_one_ca_per_replica_plus_one() -> None:
    trust = EMPTY
    for pod in range(20):  # pods replaced by new ones (new names): evictions, rollouts
        trust = start(trust, f"pod-{pod}", f"p{pod}", NOW + pod, replicas=2)
        assert len(names(trust)) <= 3
        assert len(trust.records) <= 3
    assert names(trust) == ["p17", "p18", "p19"]  # the last heard from


def test_a_live_replica_outlasts_newer_dead_ones_by_its_heartbeat() -> None:
    """pod-a lives; pods b, c and d start and die one after the other, each a new pod
    (new name), faster than pod-a's heartbeat: none pushes pod-a out for long."""
    trust = start(EMPTY, "pod-a", "a", NOW)
    at = NOW
    for pod in "bcd":
        at += HEARTBEAT / 2
        trust = start(trust, f"pod-{pod}", pod, at)
        if "a" not in names(trust):
            break
        trust = start(trust, "pod-a", "a", at + 1)  # a beat: heard from again
    assert "a" in names(trust)
    assert len(names(trust)) <= 3


def test_a_replica_whose_ca_was_dropped_puts_it_back_at_its_next_beat() -> None:
    trust = start(start(EMPTY, "pod-a", "a", NOW), "pod-b", "b", NOW)
    for pod in "cde":  # three new pods, all heard from after pod-a's last beat
        trust = start(trust, f"pod-{pod}", pod, NOW + 1)
    assert "a" not in names(trust)
    trust = start(trust, "pod-a", "a", NOW + HEARTBEAT)
    assert "a" in names(trust) and len(names(trust)) == 3


def test_a_replica_silent_for_the_stale_time_is_no_longer_trusted() -> None:
    trust = start(start(EMPTY, "pod-a", "a", NOW), "pod-b", "b", NOW, replicas=5)
    trust = start(trust, "pod-a", "a", NOW + STALE - 1, replicas=5)
    assert names(trust) == ["a", "b"]
    trust = start(trust, "pod-a", "a", NOW + STALE, replicas=5)
    assert names(trust) == ["a"]
    assert set(trust.records) == {"pod-a"}


def test_expired_cas_are_dropped() -> None:
    short = cabundle.trust(b"", {}, "pod-old", ca("old", days=1), 2, NOW)
    trust = start(short, "pod-a", "a", NOW + 86400 + 1)
    assert names(trust) == ["a"]


def test_cas_without_a_record_age_from_first_sight() -> None:
    """CAs added by an operator from before the records (or by hand) are kept until they
    have been silent for the stale time, counting from when they were first seen."""
    legacy = ca("legacy-1") + ca("legacy-2")
    trust = cabundle.trust(legacy, {}, "pod-a", ca("a"), 2, NOW)
    assert names(trust) == ["legacy-1", "legacy-2", "a"]
    assert sum(name.startswith(cabundle.UNRECORDED) for name in trust.records) == 2
    trust = start(trust, "pod-a", "a", NOW + STALE - 1)
    assert len(names(trust)) == 3
    trust = start(trust, "pod-a", "a", NOW + STALE)
    assert names(trust) == ["a"]


def test_a_heartbeat_changes_no_byte_of_the_bundle() -> None:
    trust = start(start(EMPTY, "pod-a", "a", NOW), "pod-b", "b", NOW)
    beat = start(trust, "pod-a", "a", NOW + HEARTBEAT)
    assert beat.bundle == trust.bundle
    assert beat.records["pod-a"].seen == NOW + HEARTBEAT


def test_records_round_trip_through_the_annotation() -> None:
    records = {"pod-a": Record("ab" * 32, float(int(NOW)))}
    assert cabundle.parse_records(cabundle.format_records(records)) == records
    assert cabundle.parse_records("not json") == {}
    assert cabundle.parse_records(None) == {}


def test_a_bundle_that_is_not_pem_is_replaced() -> None:
    trust = cabundle.trust(b"garbage", {}, "pod-a", ca("a"), 2, NOW)
    assert names(trust) == ["a"]


def test_a_rolling_update_keeps_every_live_replica_trusted() -> None:
    """Two replicas beating; the chart's rolling update (maxSurge 1): pod-c starts, pod-a
    stops cleanly and leaves, pod-d starts. Found by review: before `leave`, pod-a's
    fresher beat outranked pod-c, which was dropped while it served."""
    trust = start(start(EMPTY, "pod-a", "a", NOW), "pod-b", "b", NOW + 1)
    for beat in range(1, 6):
        trust = start(trust, "pod-a", "a", NOW + HEARTBEAT * beat)
        trust = start(trust, "pod-b", "b", NOW + HEARTBEAT * beat + 1)
    trust = start(trust, "pod-c", "c", NOW + 330)
    trust = start(start(trust, "pod-a", "a", NOW + 360), "pod-b", "b", NOW + 361)
    trust = cabundle.leave(trust.bundle, trust.records, "pod-a")
    assert names(trust) == ["b", "c"]
    trust = start(trust, "pod-d", "d", NOW + 366)
    assert names(trust) == ["b", "c", "d"]
    trust = cabundle.leave(trust.bundle, trust.records, "pod-b")
    assert names(trust) == ["c", "d"]
    assert set(trust.records) == {"pod-c", "pod-d"}


def test_leaving_takes_out_only_the_replicas_own_ca() -> None:
    legacy = ca("legacy-1")
    trust = cabundle.trust(legacy, {}, "pod-a", ca("a"), 2, NOW)
    trust = start(trust, "pod-b", "b", NOW + 1)
    trust = cabundle.leave(trust.bundle, trust.records, "pod-b")
    assert names(trust) == ["legacy-1", "a"]
    assert cabundle.leave(trust.bundle, trust.records, "pod-gone") == trust
    # A CA in the bundle that no record names is nobody's to take out.
    bare = cabundle.leave(ca("hand-added") + ca("a"), trust.records, "pod-a")
    assert names(bare) == ["hand-added"]


def test_an_upgrade_from_a_release_without_records_keeps_its_live_pods_trusted() -> None:
    """The release before the records left two CAs (pods old-b, then old-a); its pods
    never beat and never leave. New pods c and d start while old-b still serves: the
    unrecorded CAs are not counted against replicas + 1 (found by review: old-b's was
    dropped), and go STALE after they were first seen."""
    trust = cabundle.trust(ca("old-b") + ca("old-a"), {}, "pod-c", ca("c"), 2, NOW)
    assert names(trust) == ["old-b", "old-a", "c"]
    trust = start(trust, "pod-d", "d", NOW + 20)
    assert names(trust) == ["old-b", "old-a", "c", "d"]
    trust = start(start(trust, "pod-c", "c", NOW + STALE), "pod-d", "d", NOW + STALE + 1)
    assert names(trust) == ["c", "d"]
