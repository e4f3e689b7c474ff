"""Leader election against an in-memory Lease that can stop answering: leadership never
outlives its renew deadline, whatever the requests do."""

from __future__ import annotations

import asyncio
import copy
import signal
import time
from typing import Any

import pytest

from rsg_operator import leader
from rsg_operator.kube import Conflict, Kube
from rsg_operator.leader import Election, LeaseConfig

FAST = LeaseConfig("op", "ns", lease_seconds=3, renew_deadline_seconds=1.0, retry_seconds=0.2)


class Leases(Kube):
    """One Lease, stored with resourceVersions; `hang` makes every request wait forever."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.hang = asyncio.Event()
        self.requests = 0

    async def _answer(self) -> None:
        self.requests += 1
        if self.hang.is_set():
            await asyncio.Event().wait()  # no answer, no error: a hung connection

    async def get(self, path: str) -> dict[str, Any] | None:
        await self._answer()
        return copy.deepcopy(self.lease)

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        await self._answer()
        return self._store(obj)

    async def replace(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        await self._answer()
        assert self.lease is not None
        if obj["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("the Lease changed", 409)
        return self._store(obj)

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(obj)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    def holder(self) -> str | None:
        return ((self.lease or {}).get("spec") or {}).get("holderIdentity")


@pytest.fixture
def terminated(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """SIGTERMs the election sends itself (recorded, not delivered)."""
    sent: list[int] = []
    monkeypatch.setattr(leader.signal, "raise_signal", sent.append)
    return sent


async def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_leader_whose_renewals_hang_stops_before_a_standby_could_take_over(
    terminated: list[int],
) -> None:
    async def scenario() -> None:
        leases = Leases()
        leading = asyncio.Event()
        stopped = asyncio.Event()

        async def lead() -> None:
            leading.set()
            try:
                await asyncio.Event().wait()
            finally:
                stopped.set()

        election = Election(leases, FAST, lead)
        election.start()
        await asyncio.wait_for(leading.wait(), 2)
        assert election.fence() is None and leases.holder() == election.identity
        await asyncio.sleep(0.5)  # a few renewals
        renewed = leases.lease["spec"]["renewTime"]  # type: ignore[index]
        last = time.monotonic()
        leases.hang.set()  # the API server stops answering; nothing is reset
        await asyncio.wait_for(stopped.wait(), 3)
        lost_after = time.monotonic() - last
        # A standby takes over no earlier than a lease duration after the last renewal
        # it could have seen; this leader had stopped within the renew deadline.
        assert lost_after <= FAST.renew_deadline_seconds + 0.3
        assert lost_after < FAST.lease_seconds
        assert election.fence() is not None and "not the leader" in election.fence()  # type: ignore[operator]
        assert leases.lease["spec"]["renewTime"] == renewed  # type: ignore[index]
        assert terminated == [signal.SIGTERM]
        await election.stop()

    asyncio.run(scenario())


def test_the_fence_closes_at_the_deadline_even_before_the_timer_runs() -> None:
    now = [100.0]
    election = Election(Leases(), FAST, lambda: asyncio.sleep(0), clock=lambda: now[0])
    election.leading = True
    election._until = 101.0
    assert election.fence() is None
    now[0] = 101.0
    assert "leadership expired" in (election.fence() or "")


def test_a_standby_waits_a_lease_duration_from_when_it_saw_the_last_change() -> None:
    async def scenario() -> None:
        leases = Leases()
        held = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "op", "namespace": "ns"},
            "spec": {"holderIdentity": "other", "leaseDurationSeconds": 1, "leaseTransitions": 4},
        }
        leases._store(held)
        started = time.monotonic()
        election = Election(leases, FAST, lambda: asyncio.Event().wait())
        election.start()
        await until(lambda: leases.holder() == election.identity)
        # Never before the other holder's lease duration, counted from our first look.
        assert time.monotonic() - started >= 1.0
        assert leases.lease["spec"]["leaseTransitions"] == 5  # type: ignore[index]
        await election.stop()

    asyncio.run(scenario())


def test_a_released_lease_is_taken_at_once_and_a_graceful_stop_releases() -> None:
    async def scenario() -> None:
        leases = Leases()
        leases._store(
            {
                "metadata": {"name": "op", "namespace": "ns"},
                "spec": {"leaseDurationSeconds": 15},  # no holder: released
            }
        )
        election = Election(leases, FAST, lambda: asyncio.Event().wait())
        election.start()
        await until(lambda: leases.holder() == election.identity, timeout=1.0)
        await until(lambda: election.leading)
        await election.stop()
        assert leases.holder() is None  # handed over without waiting for expiry

    asyncio.run(scenario())


class SlowRead(Leases):
    """A replica's view of the shared Lease (`store`): its first read is slow, and
    `after_slow_read` runs when the server has answered it."""

    def __init__(self, store: Leases, delay: float = 0.0) -> None:
        self.store, self.delay, self.after_slow_read = store, delay, None
        self.hang = asyncio.Event()
        self.requests = 0

    async def get(self, path: str) -> dict[str, Any] | None:
        await self._answer()
        if self.delay:
            delay, self.delay = self.delay, 0.0
            await asyncio.sleep(delay)  # the server read it; the answer is slow to come
            if self.after_slow_read is not None:
                self.after_slow_read()
        return copy.deepcopy(self.store.lease)

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        await self._answer()
        return self.store._store(obj)

    async def replace(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        await self._answer()
        return await Leases.replace(self.store, path, obj)


def test_a_slow_read_by_the_standby_never_makes_two_leaders(
    terminated: list[int],
) -> None:
    """Found by review: a standby dated the last change it saw from when it asked, not
    from when the answer came, so a slow read ate the margin (a lease 4 s, renew
    deadline 3.5 s pair overlapped by ~0.9 s)."""
    config = LeaseConfig("op", "ns", lease_seconds=4, renew_deadline_seconds=3.5, retry_seconds=0.2)

    async def scenario() -> float:
        store = Leases()
        first, second = SlowRead(store), SlowRead(store, delay=1.7)
        a = Election(first, config, lambda: asyncio.Event().wait())
        b = Election(second, config, lambda: asyncio.Event().wait())
        a.identity, b.identity = "replica-a", "replica-b"
        a.start()
        await until(lambda: a.leading)
        second.after_slow_read = first.hang.set  # a's last renewal is in; then a partition
        b.start()
        overlap = 0.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (b.leading and b.fence() is None and a.lost):
            if a.fence() is None and b.fence() is None:
                overlap += 0.005
            await asyncio.sleep(0.005)
        assert b.leading and a.lost
        await a.stop()
        await b.stop()
        return overlap

    assert asyncio.run(scenario()) == 0.0


def test_the_renew_deadline_must_fit_in_the_lease() -> None:
    with pytest.raises(ValueError, match="renew deadline"):
        LeaseConfig(lease_seconds=10, renew_deadline_seconds=10)
