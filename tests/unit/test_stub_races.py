"""Rule 5 (stubs): a read of a stub that races the object's own watch events or a relist
(found by review: the object read as absent)."""

from __future__ import annotations

import asyncio
from typing import Any

from rsg_operator.informers import Informer
from rsg_operator.kube import ApiResource, Kube
from tests.unit.test_informers import DEPLOYMENTS, Lister, Recorder, event, obj


class SlowGetter:
    """A server whose GET is answered at version `served`, but whose answer reaches the
    client only after the watch has delivered a later event (`during`)."""

    def __init__(self, answer: dict[str, Any], during: Any) -> None:
        self.answer, self.during = answer, during

    async def get(self, path: str) -> Any:
        await asyncio.sleep(0)
        self.during()  # the watch delivers a later state while the GET's answer travels
        return self.answer


def test_a_stub_read_while_its_next_event_arrives_still_reads_the_object() -> None:
    """A foreign object (a name a clone would get, held by another app: no RSG names it
    or labels it) is held as a stub. A reconcile reads it (`_foreign_names` ->
    Cluster.get -> full()); the GET is served at version 5, and before its answer is
    processed the object's next event (version 6, its own controller's status update)
    arrives and is held as a stub too (still nobody names it). `full()` then returns None:
    the object exists, but the reader is told the name is free."""
    recorder = Recorder()
    store = Informer(Kube.__new__(Kube), DEPLOYMENTS, recorder, keep=lambda _s, _o: False)
    store.resource = ApiResource("apps/v1", "Deployment", "deployments", True, frozenset())
    store._apply(event("ADDED", obj("unit-03-b", 5)))
    assert store.stubbed("ai", "unit-03-b")
    store.kube = SlowGetter(  # type: ignore[assignment]
        obj("unit-03-b", 5), lambda: store._apply(event("MODIFIED", obj("unit-03-b", 6)))
    )
    found = asyncio.run(store.full("ai", "unit-03-b"))
    assert store.stubbed("ai", "unit-03-b")  # it exists...
    assert found is not None, "full() says the object does not exist"  # ...but reads as absent


class RacingGetter(Lister):
    """GET answered at version 5 while a relist (after a 410) brings version 7."""

    def __init__(self, store: Informer) -> None:
        super().__init__([obj("unit-03-b", 7)], 30)
        self.store = store

    async def get(self, path: str) -> Any:
        await self.store._list()  # the relist completes while the GET's answer travels
        return obj("unit-03-b", 5)


def test_a_stub_read_across_a_relist_still_reads_the_object() -> None:
    recorder = Recorder()
    store = Informer(Kube.__new__(Kube), DEPLOYMENTS, recorder, keep=lambda _s, _o: False)
    store.resource = ApiResource("apps/v1", "Deployment", "deployments", True, frozenset())
    store._apply(event("ADDED", obj("unit-03-b", 5)))
    store.synced = True
    store.kube = RacingGetter(store)
    found = asyncio.run(store.full("ai", "unit-03-b"))
    assert store.stubbed("ai", "unit-03-b")
    assert found is not None, "full() says the object does not exist"


def test_a_name_another_app_holds_is_not_taken_for_free() -> None:
    """The consequence in GroupReplication: `_foreign_names` asks for the clone names a
    scale-out would use; unit-03-decode is another app's Deployment (no RSG names or
    labels it: a stub). Its GET races its next status update, and the name is judged
    free: the planner then creates group 03 (unit-03-prefill made, unit-03-decode refused
    AlreadyExists: a partial group that stands Blocked, prefill's pods running for
    nothing), where SPEC §3 says "a new group whose names are taken is not created"."""
    from rsg_operator import api
    from rsg_operator.cluster import Cluster
    from rsg_operator.informers import Watches
    from rsg_operator.reconcilers import group_replication
    from tests.specs import group_spec

    kube = Kube.__new__(Kube)
    watches = Watches(kube, lambda _keys: None, cluster_wide=True)
    store = Informer(kube, DEPLOYMENTS, watches._on_change, keep=watches._interest.read)
    store.resource = ApiResource("apps/v1", "Deployment", "deployments", True, frozenset())
    store.synced = True
    store._ready.set()
    watches._informers[DEPLOYMENTS] = store
    store._apply(event("ADDED", obj("unit-03-decode", 5)))  # another app's object
    assert store.stubbed("ai", "unit-03-decode")
    store.kube = SlowGetter(  # type: ignore[assignment]
        obj("unit-03-decode", 5),
        lambda: store._apply(event("MODIFIED", obj("unit-03-decode", 6))),
    )

    class NoneGetter(SlowGetter):
        async def get(self, path: str) -> Any:
            if "unit-03-decode" in path:
                return await super().get(path)
            return None

    store.kube = NoneGetter(store.kube.answer, store.kube.during)  # type: ignore[attr-defined,assignment]
    spec = api.parse_spec(group_spec(replicas=3))
    assert isinstance(spec.strategy, api.GroupReplication)
    rsg = group_replication.Rsg("ai", "pd", "u-pd")
    taken = asyncio.run(
        group_replication._foreign_names(
            Cluster(kube, watches), spec, rsg, "unit", {}, spec.strategy
        )
    )
    assert (3, "decode") in taken, f"unit-03-decode exists, not ours; taken: {taken}"
