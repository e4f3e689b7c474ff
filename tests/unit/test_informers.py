"""The informers' store and the index of who an object concerns (no server: the
list+watch loop itself is proven against the real control plane)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rsg_operator import labels
from rsg_operator.informers import (
    WRITER,
    Informer,
    Scope,
    Selection,
    Watches,
    backoff,
    newer,
)
from rsg_operator.kube import ApiResource, Gone, Kube, KubeError, Unavailable

DEPLOYMENTS = Scope("apps/v1", "Deployment", None)


def obj(name: str, version: int, uid: str = "u1", **labelled: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "ai",
            "uid": uid,
            "resourceVersion": str(version),
            "labels": dict(labelled),
            "managedFields": [{"manager": "x"}],
        },
    }


def event(kind: str, o: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "object": o}


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str | None, str | None]] = []
        self.writers: list[Any] = []

    def __call__(self, _: Informer, old: Any, new: Any, writer: Any = None) -> None:
        version = lambda o: None if o is None else o["metadata"]["resourceVersion"]  # noqa: E731
        self.changes.append((version(old), version(new)))
        self.writers.append(writer)


def informer() -> tuple[Informer, Recorder]:
    recorder = Recorder()
    return Informer(Kube.__new__(Kube), DEPLOYMENTS, recorder), recorder


def test_events_fill_the_store_without_managed_fields() -> None:
    store, seen = informer()
    assert store._apply(event("ADDED", obj("a", 5))) == "5"
    assert store._apply(event("MODIFIED", obj("a", 7))) == "7"
    kept = store.get("ai", "a")
    assert kept is not None and kept["metadata"]["resourceVersion"] == "7"
    assert "managedFields" not in kept["metadata"]
    assert seen.changes == [(None, "5"), ("5", "7")]


def test_bookmarks_move_the_version_and_change_nothing() -> None:
    store, seen = informer()
    assert store._apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert seen.changes == [] and store.objects == {}


def test_our_own_write_is_kept_until_the_watch_catches_up() -> None:
    store, seen = informer()
    store._apply(event("ADDED", obj("a", 5)))
    token = WRITER.set(("ai", "pool"))
    try:
        store.remember(obj("a", 8))
    finally:
        WRITER.reset(token)
    store._apply(event("MODIFIED", obj("a", 8)))  # the same state, arriving late
    store.remember(obj("a", 6))  # an older answer cannot overwrite a newer state
    assert store.get("ai", "a")["metadata"]["resourceVersion"] == "8"  # type: ignore[index]
    # The write is reported once, when answered, with who made it; its event, nothing.
    assert seen.changes == [(None, "5"), ("5", "8")]
    assert seen.writers == [None, ("ai", "pool")]


def test_an_object_we_deleted_is_gone_at_once_and_its_late_events_ignored() -> None:
    store, _ = informer()
    store._apply(event("ADDED", obj("a", 5)))
    store.forget(obj("a", 5))
    assert store.get("ai", "a") is None
    store._apply(event("MODIFIED", obj("a", 6)))  # e.g. deletionTimestamp set
    assert store.get("ai", "a") is None
    store._apply(event("DELETED", obj("a", 7)))
    store._apply(event("ADDED", obj("a", 9, uid="u2")))  # recreated under the name
    assert store.get("ai", "a")["metadata"]["uid"] == "u2"  # type: ignore[index]


def test_a_late_answer_does_not_resurrect_a_deleted_object() -> None:
    store, _ = informer()
    store._apply(event("ADDED", obj("a", 5)))
    store._apply(event("DELETED", obj("a", 7)))
    store.remember(obj("a", 6))
    assert store.get("ai", "a") is None


def test_objects_are_found_by_their_rsg_label() -> None:
    store, _ = informer()
    store._apply(event("ADDED", obj("unit-02-a", 1, **{labels.NAME: "pool"})))
    store._apply(event("ADDED", obj("unit-03-a", 2, uid="u2", **{labels.NAME: "pool"})))
    store._apply(event("ADDED", obj("other", 3, uid="u3")))
    assert [o["metadata"]["name"] for o in store.labelled("ai", "pool")] == [
        "unit-02-a",
        "unit-03-a",
    ]
    store._apply(event("MODIFIED", obj("unit-02-a", 4)))  # label removed
    store._apply(event("DELETED", obj("unit-03-a", 5, uid="u2", **{labels.NAME: "pool"})))
    assert store.labelled("ai", "pool") == []


def test_newer_compares_versions_as_numbers_where_it_can() -> None:
    assert newer(obj("a", 10), obj("a", 9))
    assert not newer(obj("a", 9), obj("a", 10))
    opaque = obj("a", 1)
    opaque["metadata"]["resourceVersion"] = "abc"
    assert newer(opaque, obj("a", 10))


def test_backoff_is_capped_and_jittered() -> None:
    delays = [backoff(n) for n in range(1, 30)]
    assert all(0 < d <= 30 for d in delays)
    assert delays[0] <= 0.25
    assert max(delays) > 10


def test_an_event_wakes_only_the_rsgs_it_concerns() -> None:
    async def scenario() -> list[set[tuple[str, str]]]:
        woken: list[set[tuple[str, str]]] = []
        watches = Watches(Kube.__new__(Kube), lambda keys: woken.append(set(keys)), True)
        watches._informers[DEPLOYMENTS] = informer()[0]  # held, not started
        watches._holders[DEPLOYMENTS] = set()
        watches._interest.add(("ai", "pool"), Selection("apps/v1", "Deployment", "ai", "router"))
        watches._interest.add(("ai", "pool"), Selection("apps/v1", "Deployment", "ai", "decode"))
        watches._interest.add(
            ("ai", "units"), Selection("apps/v1", "Deployment", "ai", labelled="units")
        )
        watches._interest.add(("ai", "other"), Selection("apps/v1", "Deployment", "ai", "x"))
        change = watches._on_change
        store = watches._informers[DEPLOYMENTS]
        change(store, None, obj("router", 1))
        change(store, obj("unit-02-a", 1, **{labels.NAME: "units"}), None)
        change(store, None, obj("unrelated", 1))
        # The same object named through another version of its group is the same object.
        beta = Scope("apps/v1beta1", "Deployment", None)
        change(Informer(Kube.__new__(Kube), beta, lambda *_: None), None, obj("decode", 2))
        # Our own write wakes the others concerned, not the RSG that made it.
        change(store, obj("router", 1), obj("router", 2), ("ai", "pool"))
        change(store, obj("x", 1), obj("x", 2), ("ai", "pool"))
        return woken

    assert asyncio.run(scenario()) == [
        {("ai", "pool")},
        {("ai", "units")},
        {("ai", "pool")},
        {("ai", "other")},
    ]


def test_a_watch_starts_with_the_first_rsg_and_stops_with_the_last() -> None:
    class Stalled(Kube):
        def __init__(self) -> None:
            pass

        async def resource(self, api_version: str, kind: str) -> Any:
            await asyncio.Event().wait()

    async def scenario() -> None:
        watches = Watches(Stalled(), lambda _: None, cluster_wide=False)
        router = Selection("apps/v1", "Deployment", "ai", "router")
        decode = Selection("apps/v1", "Deployment", "ai", "decode")
        elsewhere = Selection("apps/v1", "Deployment", "ml", "router")
        watches.want(("ai", "a"), [router])
        watches.want(("ai", "b"), [decode, elsewhere])
        assert set(watches.informers) == {
            Scope("apps/v1", "Deployment", "ai"),
            Scope("apps/v1", "Deployment", "ml"),
        }
        watches.drop(("ai", "a"))
        assert len(watches.informers) == 2  # b still holds namespace ai
        watches.want(("ai", "b"), [decode])
        assert set(watches.informers) == {Scope("apps/v1", "Deployment", "ai")}
        watches.drop(("ai", "b"))
        assert watches.informers == {}
        await watches.stop()

    asyncio.run(scenario())


def test_a_forbidden_list_fails_readers_at_once_and_is_retried() -> None:
    class Forbidden(Kube):
        def __init__(self) -> None:
            self.lists = 0

        async def resource(self, api_version: str, kind: str) -> Any:
            return ApiResource(api_version, kind, "deployments", True, frozenset())

        async def list_page(self, *args: Any) -> Any:
            self.lists += 1
            raise KubeError("403 Forbidden: deployments is forbidden", 403, "Forbidden")

    async def scenario() -> int:
        kube = Forbidden()
        store = Informer(kube, DEPLOYMENTS, lambda *_: None)
        store.start()
        with pytest.raises(KubeError, match="Forbidden"):
            await store.wait(timeout=5)
        await asyncio.sleep(0.5)  # retried in the background with backoff
        await store.stop()
        return kube.lists

    assert asyncio.run(scenario()) >= 2


class Lister(Kube):
    """A server that answers lists with `items` at `version`, running `during` (e.g. one
    of our writes being answered) while the list is read."""

    def __init__(self, items: list[dict[str, Any]], version: int, during: Any = None) -> None:
        self.items, self.version, self.during = items, version, during

    async def list_page(self, *args: Any) -> Any:
        if self.during is not None:
            self.during()
        return {"items": self.items, "metadata": {"resourceVersion": str(self.version)}}


def relist(store: Informer, kube: Lister) -> None:
    store.kube = kube
    store.resource = ApiResource("apps/v1", "Deployment", "deployments", True, frozenset())
    asyncio.run(store._list())


def test_a_write_answered_during_a_relist_is_kept() -> None:
    store, seen = informer()
    relist(store, Lister([obj("a", 5)], 10))
    # The list is read at version 20; meanwhile our write of a (version 21) is answered.
    relist(store, Lister([obj("a", 12)], 20, during=lambda: store.remember(obj("a", 21))))
    assert store.get("ai", "a")["metadata"]["resourceVersion"] == "21"  # type: ignore[index]
    assert seen.changes == [("5", "21")]  # reported once, by the write; not undone


def test_a_relist_reports_what_went_and_keeps_what_we_made_after_it() -> None:
    store, seen = informer()
    relist(store, Lister([obj("gone", 5), obj("kept", 6, uid="u2")], 10))
    store.remember(obj("made", 31, uid="u3"))  # our create, answered after the snapshot
    seen.changes.clear()
    relist(store, Lister([obj("kept", 6, uid="u2")], 30))
    assert set(store.objects) == {("ai", "kept"), ("ai", "made")}
    assert seen.changes == [("5", None)]  # the deletion missed while away wakes its RSGs
    store.remember(obj("gone", 7))  # a late answer for it: dead, stays dead
    assert store.get("ai", "gone") is None


def test_the_dead_stay_dead_across_a_relist() -> None:
    store, seen = informer()
    relist(store, Lister([obj("a", 5)], 10))
    store.forget(obj("a", 5))  # our delete, answered: gone
    # A relist whose snapshot predates the delete still lists it; a late answer of an
    # earlier write comes after. Neither brings it back.
    relist(store, Lister([obj("a", 5)], 11))
    store.remember(obj("a", 12))
    assert store.get("ai", "a") is None
    store._apply(event("DELETED", obj("a", 13)))  # its own DELETED event: already told
    assert seen.changes == [("5", None)]
    store._apply(event("ADDED", obj("a", 20, uid="u2")))  # a new object under the name
    assert store.get("ai", "a")["metadata"]["uid"] == "u2"  # type: ignore[index]


def test_a_deleted_event_of_an_object_not_held_wakes_only_those_it_concerns() -> None:
    store, seen = informer()
    store._apply(event("DELETED", obj("stray", 9, uid="u9")))
    assert seen.changes == [("9", None)]  # reported as that object, not "everything"


def test_a_watch_outage_backs_off_and_is_logged_once() -> None:
    class Down(Kube):
        def __init__(self) -> None:
            self.watches = 0

        async def resource(self, api_version: str, kind: str) -> Any:
            return ApiResource(api_version, kind, "deployments", True, frozenset())

        async def list_page(self, *args: Any) -> Any:
            return {"items": [], "metadata": {"resourceVersion": "1"}}

        async def watch(self, *args: Any) -> Any:
            self.watches += 1
            raise Unavailable("connection refused")
            yield  # an async generator

    async def scenario() -> tuple[int, int, list[float]]:
        kube = Down()
        store = Informer(kube, DEPLOYMENTS, lambda *_: None)
        delays: list[float] = []
        real_sleep = asyncio.sleep

        async def sleep(delay: float) -> None:
            delays.append(delay)
            await real_sleep(0)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(asyncio, "sleep", sleep)
            store.start()
            while kube.watches < 8:
                await real_sleep(0)
            await store.stop()
        return kube.watches, store.reconnects, delays

    _, outages, delays = asyncio.run(scenario())
    assert outages == 1  # one outage: one warning, one count
    assert delays[:6] == sorted(delays[:6])  # growing, never reset by the good lists
    assert delays[5] > 2.0


def test_a_watch_answered_410_again_and_again_relists_with_backoff() -> None:
    """Found by review: each 410 listed the whole kind again at once (894 lists in a
    second against a server whose watch cache lags its lists)."""

    class AlwaysGone(Kube):
        def __init__(self) -> None:
            self.lists = 0

        async def resource(self, api_version: str, kind: str) -> Any:
            return ApiResource(api_version, kind, "deployments", True, frozenset())

        async def list_page(self, *args: Any) -> Any:
            self.lists += 1
            await asyncio.sleep(0.001)
            return {"items": [], "metadata": {"resourceVersion": str(self.lists)}}

        async def watch(self, *args: Any) -> Any:
            raise Gone("too old resource version", 410)
            yield  # an async generator

    async def scenario() -> int:
        kube = AlwaysGone()
        store = Informer(kube, DEPLOYMENTS, lambda *_: None)
        store.start()
        await asyncio.sleep(1.0)
        await store.stop()
        return kube.lists

    assert asyncio.run(scenario()) <= 5


def test_an_outage_that_begins_with_an_empty_watch_is_logged_and_counted_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by review: a watch that ended at once with nothing (an apiserver shutting
    down) moved the retry count silently, so the outage after it was never warned about
    nor counted."""

    class ClosesThenDown(Kube):
        def __init__(self) -> None:
            self.watches = 0

        async def resource(self, api_version: str, kind: str) -> Any:
            return ApiResource(api_version, kind, "deployments", True, frozenset())

        async def list_page(self, *args: Any) -> Any:
            return {"items": [], "metadata": {"resourceVersion": "1"}}

        async def watch(self, *args: Any) -> Any:
            self.watches += 1
            if self.watches == 1:
                return  # the stream ends at once, nothing delivered
            raise Unavailable("connection refused")
            yield  # an async generator

    async def scenario() -> int:
        kube = ClosesThenDown()
        store = Informer(kube, DEPLOYMENTS, lambda *_: None)
        real_sleep = asyncio.sleep

        async def sleep(delay: float) -> None:
            await real_sleep(0)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(asyncio, "sleep", sleep)
            store.start()
            while kube.watches < 8:
                await real_sleep(0)
            await store.stop()
        return store.reconnects

    with caplog.at_level(logging.DEBUG, logger="rsg_operator.informers"):
        outages = asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert outages == 1
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


# ---------------------------------------------------------------- rule 5: stubs

BIG = {"kubectl.kubernetes.io/last-applied-configuration": "x" * 20_000, "team": "a"}


def kept_if_named(*names: str) -> Any:
    return lambda _scope, o: (
        o["metadata"]["name"] in names or labels.NAME in (o["metadata"].get("labels") or {})
    )


class Getter(Lister):
    """A server that answers a GET with `found`, counting them."""

    def __init__(self, found: dict[str, Any] | None) -> None:
        super().__init__([], 0)
        self.found, self.gets = found, 0

    async def get(self, path: str) -> Any:
        self.gets += 1
        return self.found


def stubbing(*names: str) -> tuple[Informer, Recorder]:
    recorder = Recorder()
    store = Informer(Kube.__new__(Kube), DEPLOYMENTS, recorder, keep=kept_if_named(*names))
    store.resource = ApiResource("apps/v1", "Deployment", "deployments", True, frozenset())
    return store, recorder


def test_objects_no_rsg_reads_are_held_as_stubs_and_never_read() -> None:
    store, seen = stubbing("seed")
    foreign = obj("other", 5)
    foreign["metadata"]["annotations"] = dict(BIG)
    foreign["spec"] = {"template": {"spec": {"containers": [{"image": "x" * 5000}]}}}
    store._apply(event("ADDED", foreign))
    store._apply(event("ADDED", obj("clone", 6, uid="u2", **{labels.NAME: "pool"})))
    held = store.objects[("ai", "other")]
    assert len(repr(held)) < 200 and "annotations" not in held["metadata"]
    assert store.get("ai", "other") is None and store.stubbed("ai", "other")
    assert store.get("ai", "clone") is not None  # carries an RSG's label: whole
    # Rules 1-4 hold for stubs: an older state is ignored, a deletion is reported.
    store._apply(event("MODIFIED", obj("other", 4)))
    assert store.objects[("ai", "other")]["metadata"]["resourceVersion"] == "5"
    store._apply(event("DELETED", obj("other", 7)))
    assert ("ai", "other") not in store.objects
    assert seen.changes == [(None, "5"), (None, "6"), ("5", None)]


def test_a_stub_is_read_whole_once_an_rsg_needs_it() -> None:
    store, seen = stubbing()
    store._apply(event("ADDED", obj("seed", 5)))
    assert store.stubbed("ai", "seed")
    whole = obj("seed", 5)
    whole["metadata"]["annotations"] = dict(BIG)
    kube = Getter(whole)
    store.kube = kube
    store._keep = kept_if_named("seed")  # an RSG names it now

    async def read_twice() -> list[Any]:
        return list(await asyncio.gather(store.full("ai", "seed"), store.full("ai", "seed")))

    first, second = asyncio.run(read_twice())
    assert kube.gets == 1 and first is second is store.get("ai", "seed")
    assert first["metadata"]["annotations"] == BIG  # kept whole: RSG may patch them
    assert "managedFields" not in first["metadata"]
    assert seen.changes == [(None, "5")]  # the same state: no change to report
    store._apply(event("MODIFIED", obj("seed", 8)))  # from now on, kept whole
    assert store.get("ai", "seed")["metadata"]["resourceVersion"] == "8"  # type: ignore[index]


def test_a_stub_read_later_than_its_event_reports_the_change_once() -> None:
    store, seen = stubbing()
    store._apply(event("ADDED", obj("seed", 5)))
    store.kube = Getter(obj("seed", 9))
    store._keep = kept_if_named("seed")
    assert asyncio.run(store.full("ai", "seed"))["metadata"]["resourceVersion"] == "9"  # type: ignore[index]
    store._apply(event("MODIFIED", obj("seed", 9)))  # its event, late: already told
    assert seen.changes == [(None, "5"), ("5", "9")]


def test_a_stub_deleted_before_it_is_read_reads_as_absent() -> None:
    store, _ = stubbing()
    store._apply(event("ADDED", obj("seed", 5)))
    store.kube = Getter(None)
    assert asyncio.run(store.full("ai", "seed")) is None
    assert store.stubbed("ai", "seed")  # until its DELETED event says so
