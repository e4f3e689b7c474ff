"""Shared watches: one list+watch per (apiVersion, kind, namespace scope), however many
RSGs need it, and the objects each has seen.

An `Informer` lists a kind once, then watches it from the list's resourceVersion:
it resumes from the last version it saw (bookmarks keep that fresh), lists again when
the server says the version is gone (410), and reconnects after any failure with
capped, jittered backoff. `Watches` starts an informer when the first RSG needs a
kind and stops it when the last lets go, and keeps the index that maps an object to the
RSGs it concerns (by name for Sources, Targets and seed members; by the RSG's name
label for clones): an event wakes only those RSGs. Watching writes nothing onto the
watched objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ctypes
import json
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rsg_operator import labels, metrics, tasks
from rsg_operator.kinds import api_group
from rsg_operator.kube import ApiResource, Gone, Kube, KubeError, Unavailable, UnknownKind

log = logging.getLogger(__name__)

RsgKey = tuple[str, str]  # (namespace, name)
ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
Object = dict[str, Any]

# Objects per list page. Each page is held three times while it is parsed (the answer's
# bytes, its text, the objects), and other apps' objects are often large (a 20 KB
# last-applied-configuration): 100 of them is ~2 MB a copy where 500 were ~11 MB, and
# the heap stays at its high-water mark (bench/foreign.py, docs/benchmarks.md).
LIST_PAGE = 100
# Reconnect backoff: the first retry within a quarter second, doubling to half a minute,
# each delay drawn from its upper half (jitter), so that many watches do not retry at once.
BACKOFF_FIRST = 0.25
BACKOFF_CAP = 30.0
# Watches retry more often than that: at most a few informers per kind, and every second
# a recovered apiserver waits for the next try is a second of changes not seen
# (measured: with a 30 s cap, watches came back up to 16 s after a 12 s apiserver
# restart).
RECONNECT_CAP = 10.0
# How long a reconcile waits for a kind's first list before it fails (and is retried).
SYNC_TIMEOUT = 60.0
# A watch that ends sooner than this without a single event (not even a bookmark, which
# the server sends about every minute) counts as a failed attempt.
EMPTY_WATCH_SECONDS = 30.0
# uids known deleted, remembered per informer, so that nothing brings them back.
DEAD_MEMORY = 10_000
FETCH_TRIES = 3  # GETs of a stubbed object overtaken by later stubs meanwhile

# The RSG whose reconcile is making the current write (set by the controller around each
# reconcile): the change its write causes wakes the others concerned, not itself.
WRITER: contextvars.ContextVar[RsgKey | None] = contextvars.ContextVar("writer", default=None)


def backoff(attempt: int, cap: float = BACKOFF_CAP) -> float:
    """Delay before retry number `attempt` (1, 2, ...): capped, exponential, jittered."""
    ceiling = min(cap, BACKOFF_FIRST * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def newer(candidate: Object, current: Object | None) -> bool:
    """Whether `candidate` is a later state than `current` of the same object.

    resourceVersions are opaque to clients, but etcd's are increasing integers; where
    both are, they decide, else the candidate (the later arrival) wins."""
    if current is None:
        return True
    try:
        return _version(candidate) > _version(current)
    except ValueError:
        return True


def _version(obj: Object) -> int:
    return int(obj["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class Scope:
    """What one informer watches: a kind in one namespace, or in all (namespace None)."""

    api_version: str
    kind: str
    namespace: str | None

    def describe(self) -> str:
        where = f"namespace {self.namespace}" if self.namespace else "all namespaces"
        return f"{self.kind} ({self.api_version}) in {where}"


@dataclass(frozen=True)
class Selection:
    """Objects an RSG needs: one by name, or the clones labelled with the RSG's name."""

    api_version: str
    kind: str
    namespace: str
    name: str | None = None
    labelled: str | None = None  # value of the resourcescalinggroup.com/name label

    def describe(self) -> str:
        what = self.name if self.name is not None else f"-l {labels.NAME}={self.labelled}"
        return f"{self.kind} {self.namespace}/{what}"


# A change of the store: (informer, old state, new state, the RSG whose write made it).
Changed = Callable[["Informer", Object | None, Object | None, RsgKey | None], None]


class Informer:
    """One list+watch of a kind in a scope, and the objects it has seen.

    The store is written from three sources: the list, the watch, and the answers to our
    own writes (`remember`, `forget`), which arrive before their watch events. The rules
    that keep it right, whatever order those arrive in (tested in test_informers.py):

    1. Newest wins. `objects` holds, per name, the state with the highest
       resourceVersion seen from any source; an older state never replaces a newer one.
    2. The dead stay dead. A uid known deleted (a DELETED event, our delete answered as
       done, or missing from a list newer than the state held) never enters `objects`
       again, whatever a late write answer, event or list page says.
    3. A relist keeps what is newer than its snapshot. The listed objects replace the
       store except where the store holds a later state (a write answered while the list
       was read): absence from the list counts as the list's own version.
    4. Every change is reported once. Each change of `objects` calls `changed` with the
       old and new state and the RSG whose write caused it (`WRITER`), if any: its
       watch event, arriving later and no newer, reports nothing. A relist reports what
       it found changed, deletions included.
    5. Only what RSG reads is kept whole. With a `keep` predicate, an object it refuses
       (no RSG names it or labels it: the cluster's other objects) is held as a stub:
       name, namespace, uid and resourceVersion, which is all rules 1-4 compare. A stub
       is never returned by a read; `full()` fetches the object when an RSG starts to
       need one, and from then on its states are kept whole.
    """

    def __init__(
        self,
        kube: Kube,
        scope: Scope,
        changed: Changed,
        served: Callable[[Informer], None] | None = None,
        report_first_list: bool = False,
        keep: Callable[[Scope, Object], bool] | None = None,
    ) -> None:
        """`report_first_list`: report every object of the first list as a change (the
        RSGs' informer); else the first list reports nothing (those who wait for it read
        it when it is in). `keep`: which objects are held whole (rule 5); None: all."""
        self.kube = kube
        self._keep = keep
        self._fetching: dict[ObjectKey, asyncio.Task[Object | None]] = {}
        self._stopped = False
        self._report_first_list = report_first_list
        self.scope = scope
        self._changed = changed
        self._served = served
        self.objects: dict[ObjectKey, Object] = {}
        # (namespace, value of the RSG name label) -> keys of the objects carrying it
        self._labelled: dict[tuple[str, str], set[ObjectKey]] = {}
        self._dead: OrderedDict[str, None] = OrderedDict()  # uids known deleted
        self._writers: dict[ObjectKey, Writers] = {}  # replica fields -> their writers
        self.resource: ApiResource | None = None
        self.unknown: UnknownKind | None = None  # the kind is not served (yet)
        # Why the first list failed, when retrying will not help soon (e.g. forbidden).
        self.failure: KubeError | None = None
        self.synced = False
        self.reconnects = 0  # outages (each counted once, however many retries)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer {self.scope.describe()}")

    def died(self) -> str | None:
        """Why the informer's task ended although nobody stopped it (None: it runs)."""
        return tasks.ended(self._task, f"the watch of {self.scope.describe()}", "returned")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._stopped = True  # a read still under way keeps nothing (and counts nothing)
        for key in list(self.objects):
            self._drop(key)  # (its count leaves the metric with it)

    async def wait(self, timeout: float = SYNC_TIMEOUT) -> None:
        """Until the first list is in. Raises UnknownKind, the error that keeps the first
        list from succeeding (e.g. forbidden), or Unavailable on timeout."""
        if not self._ready.is_set():
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                raise Unavailable(
                    f"no list of {self.scope.describe()} within {timeout:.0f}s"
                ) from None
        if not self.synced and self.unknown is not None:
            raise self.unknown
        if not self.synced and self.failure is not None:
            raise self.failure

    # ------------------------------------------------------------------ reading

    def get(self, namespace: str, name: str) -> Object | None:
        """The object as held, or None: absent, or held as a stub (see `full`)."""
        held = self.objects.get((namespace, name))
        return None if held is None or _is_stub(held) else held

    def stubbed(self, namespace: str, name: str) -> bool:
        """The object exists, but only its stub is held (rule 5)."""
        held = self.objects.get((namespace, name))
        return held is not None and _is_stub(held)

    async def full(self, namespace: str, name: str) -> Object | None:
        """The object whole: as held, or, if only its stub is, read from the API server
        (one GET, shared by concurrent readers) and held whole from then on."""
        if not self.stubbed(namespace, name):
            return self.get(namespace, name)
        key = (namespace, name)
        fetching = self._fetching.get(key)
        if fetching is None:
            fetching = asyncio.create_task(self._fetch(key), name=f"read {namespace}/{name}")
            self._fetching[key] = fetching
            fetching.add_done_callback(lambda _: self._fetching.pop(key, None))
        read = await asyncio.shield(fetching)
        return self.get(namespace, name) or read

    async def _fetch(self, key: ObjectKey) -> Object | None:
        """Read a stubbed object whole. A later stub may arrive while the GET is answered
        (an event, a relist): then the GET is repeated, since the object exists and is
        newer than what was read (found by review: it read as absent, and a clone name
        another app held was taken for free)."""
        assert self.resource is not None
        found: Object | None = None
        for _ in range(FETCH_TRIES):
            answer = await self.kube.get(self.resource.path(name=key[1], namespace=key[0] or None))
            if answer is None:
                return None  # deleted since: its DELETED event is on its way
            answer = {"apiVersion": self.scope.api_version, "kind": self.scope.kind, **answer}
            writers, found = _writers(answer), _slim(answer)
            if self._stopped:
                return found
            held = self.objects.get(key)
            if _uid(found) in self._dead or held is None or not _is_stub(held):
                return self.get(*key)  # deleted, or held whole meanwhile (an event, a write)
            if _same(found, held):
                self._put(key, found, writers)  # the state the stub stands for, now whole
                return found
            if newer(found, held):
                # A later state (a GET reads the latest): a change nobody has been told
                # of, since its event, when it comes, will be no newer (rule 4).
                self._put(key, found, writers)
                self._changed(self, held, found, None)
                return found
        return found  # still overtaken: the latest read, for this reader only

    def labelled(self, namespace: str, value: str) -> list[Object]:
        """Objects in `namespace` whose RSG name label is `value`."""
        keys = self._labelled.get((namespace, value), ())
        return [self.objects[key] for key in sorted(keys)]

    def writers(self, namespace: str, name: str) -> Writers:
        """Who wrote each replica count of the object, as its managedFields last said
        (kept apart from the object, which the cache keeps without managedFields)."""
        return self._writers.get((namespace, name), {})

    # ------------------------------------------------------------------ our own writes

    def remember(self, obj: Object) -> None:
        """A state of an object returned by our own write: kept if it is newer than what
        the store holds (rule 1) and not of a dead uid (rule 2), and reported at once to
        the other RSGs concerned (rule 4)."""
        writers, obj = self._held(obj)
        key = _key(obj)
        if _uid(obj) in self._dead:
            return
        old = self.objects.get(key)
        if newer(obj, old):
            self._put(key, obj, writers)
            self._changed(self, old, obj, WRITER.get())

    def forget(self, obj: Object) -> None:
        """An object we deleted (the server answered: gone): dropped now, and its uid
        dead from here on, so that its late events and write answers are ignored."""
        self._bury(_uid(obj))
        key = _key(obj)
        held = self.objects.get(key)
        if held is not None and _uid(held) == _uid(obj):
            self._drop(key)
            self._changed(self, held, None, WRITER.get())

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        version: str | None = None
        attempt = 0  # failures since the watch last delivered something
        relists = 0  # 410s since then: the first lists again at once, the others back off
        while True:
            try:
                if self.resource is None:
                    self.resource = await self.kube.resource(
                        self.scope.api_version, self.scope.kind
                    )
                if version is None:
                    version = await self._list()
                    _give_back_free_memory()
                delivered = False
                began = time.monotonic()
                async for event in self.kube.watch(self.resource, self.scope.namespace, version):
                    version = self._apply(event) or version
                    if not delivered:
                        delivered = True
                        relists = 0
                        if attempt:
                            log.info("watch of %s is back", self.scope.describe())
                            attempt = 0
                lasted = time.monotonic() - began
                if not delivered and lasted < EMPTY_WATCH_SECONDS:
                    # Ended early with nothing (an apiserver shutting down, a proxy
                    # closing it): a failure like any other, not a reason to reconnect
                    # in a tight loop.
                    raise Unavailable(f"the watch ended after {lasted:.1f}s without an event")
            except Gone:
                log.info(
                    "watch of %s: version %s is gone (410); listing again",
                    self.scope.describe(),
                    version,
                )
                version = None
                relists += 1
                if relists > 1:  # again, before any event (a lagging watch cache, say):
                    # backing off on its own count, not the outage's (a list served by an
                    # apiserver going down is followed by one 410 from its successor).
                    await asyncio.sleep(backoff(relists - 1, RECONNECT_CAP))
            except UnknownKind as error:
                self.unknown = error
                self._ready.set()
                attempt += 1
                await asyncio.sleep(max(backoff(attempt, RECONNECT_CAP), 1.0))
            except KubeError as error:
                if not self.synced and not isinstance(error, Unavailable):
                    self.failure = error  # readers fail now; the list is retried
                    self._ready.set()
                attempt += 1
                self._failed(error, attempt)
                await asyncio.sleep(backoff(attempt, RECONNECT_CAP))

    def _failed(self, error: KubeError, attempt: int) -> None:
        """An outage is logged and counted once, at its first failure."""
        if attempt > 1:
            log.debug("watch of %s still failing (try %d): %s", self.scope, attempt, error)
            return
        self.reconnects += 1
        plural = self.resource.plural if self.resource else self.scope.describe()
        metrics.WATCH_RECONNECTS.labels(plural).inc()
        log.warning(
            "watch of %s lost (%s); reconnecting with backoff (outage #%d)",
            self.scope.describe(),
            error,
            self.reconnects,
        )

    async def _list(self) -> str:
        """List every object (in pages), merge it into the store (rule 3); return the
        version to watch from."""
        assert self.resource is not None
        listed: dict[ObjectKey, Object] = {}
        writers: dict[ObjectKey, Writers | None] = {}
        token: str | None = None
        while True:
            page = await self.kube.list_page(self.resource, self.scope.namespace, LIST_PAGE, token)
            for item in page.get("items") or []:
                item = {"apiVersion": self.scope.api_version, "kind": self.scope.kind, **item}
                key = _key(item)
                writers[key], listed[key] = self._held(item)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                version = str(page["metadata"]["resourceVersion"])
                break
        first = not self.synced
        for key in self.objects.keys() | listed.keys():
            held, found = self.objects.get(key), listed.get(key)
            if found is not None and _uid(found) in self._dead:
                found = None  # listed before our delete went through: gone all the same
            kept = _newest(held, found, version)
            if held is not None and (kept is None or _uid(kept) != _uid(held)):
                self._bury(_uid(held))
            if kept is held or _same(kept, held):
                continue
            if kept is None:
                self._drop(key)
            else:
                self._put(key, kept, writers.get(key) if kept is found else None)
            if not first or held is not None or self._report_first_list:
                self._changed(self, held, kept, None)
        self.synced = True
        if self.unknown is not None or self.failure is not None:
            self.unknown = self.failure = None
            if self._served is not None:
                self._served(self)  # readable now: wake everyone who holds it
        self._ready.set()
        return version

    def _apply(self, event: dict[str, Any]) -> str | None:
        """One watch event into the store; returns the version it brings."""
        kind, obj = event.get("type"), event.get("object") or {}
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            return str(version) if version else None
        obj = {"apiVersion": self.scope.api_version, "kind": self.scope.kind, **obj}
        writers, obj = self._held(obj)
        key = _key(obj)
        uid = _uid(obj)
        if kind == "DELETED":
            if uid in self._dead:
                return str(version) if version else None  # ours: reported when deleted
            self._bury(uid)
            old = self.objects.get(key)
            if old is not None and _uid(old) == uid:
                self._drop(key)
            elif old is not None:
                old = None  # another incarnation holds the name: it stays
            self._changed(self, old if old is not None else obj, None, None)
        elif kind in ("ADDED", "MODIFIED"):
            if uid in self._dead:
                return str(version) if version else None  # deleted; its events are late
            old = self.objects.get(key)
            if old is not None and not newer(obj, old):
                return str(version) if version else None  # our own write got here first
            self._put(key, obj, writers)
            self._changed(self, old, obj, None)
        return str(version) if version else None

    def _held(self, obj: Object) -> tuple[Writers | None, Object]:
        """What is held of a state, and who writes its replicas (rule 5)."""
        if self._keep is None or self._keep(self.scope, obj):
            return _writers(obj), _slim(obj)
        return {}, _stub(obj)

    def _bury(self, uid: str) -> None:
        if not uid:
            return
        self._dead[uid] = None
        self._dead.move_to_end(uid)
        if len(self._dead) > DEAD_MEMORY:
            self._dead.popitem(last=False)

    def _put(self, key: ObjectKey, obj: Object, writers: Writers | None = None) -> None:
        self._unindex(key)
        self._count(self.objects.get(key), -1)
        self._count(obj, 1)
        self.objects[key] = obj
        if writers:
            self._writers[key] = writers
        elif writers is not None:
            self._writers.pop(key, None)
        # None: the state came without managedFields (built from a /scale answer, say):
        # who writes its replicas is still what the last full state said.
        value = (obj["metadata"].get("labels") or {}).get(labels.NAME)
        if value is not None:
            self._labelled.setdefault((key[0], value), set()).add(key)

    def _drop(self, key: ObjectKey) -> None:
        self._unindex(key)
        self._count(self.objects.pop(key, None), -1)
        self._writers.pop(key, None)

    def _count(self, obj: Object | None, delta: int) -> None:
        if obj is not None:
            resource = self.resource.plural if self.resource else self.scope.kind.lower()
            form = "stub" if _is_stub(obj) else "whole"
            metrics.CACHED.labels(resource, form).inc(delta)

    def _unindex(self, key: ObjectKey) -> None:
        old = self.objects.get(key)
        value = (old["metadata"].get("labels") or {}).get(labels.NAME) if old else None
        if value is not None:
            holders = self._labelled.get((key[0], value))
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._labelled[(key[0], value)]


def _newest(held: Object | None, listed: Object | None, version: str) -> Object | None:
    """Rule 3: of the state held and the state listed at `version` (None: absent from the
    list), the later one. The list wins where versions cannot be compared."""
    if held is None:
        return listed
    try:
        held_version = _version(held)
        listed_version = _version(listed) if listed is not None else int(version)
    except ValueError:
        return listed
    return held if held_version > listed_version else listed


def _same(a: Object | None, b: Object | None) -> bool:
    """The same state of the same object (uid and resourceVersion)."""
    if a is None or b is None:
        return a is b
    return _uid(a) == _uid(b) and a["metadata"].get("resourceVersion") == b["metadata"].get(
        "resourceVersion"
    )


def _give_back_free_memory() -> None:
    """Return the heap's free pages to the system after a list: its pages were parsed
    and dropped, and glibc keeps what they took (measured at 10 RSGs beside 20,000
    Deployments of 20 KB: +86 MB without this and 500-object pages, +24 MB with this
    alone). A no-op where the C library has no malloc_trim."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # the process's own libc
    except OSError:
        return None


_MALLOC_TRIM = _malloc_trim()


def _key(obj: Object) -> ObjectKey:
    meta = obj["metadata"]
    return (str(meta.get("namespace") or ""), str(meta["name"]))


def _uid(obj: Object) -> str:
    return str(obj["metadata"].get("uid") or "")


# A replica field ("spec.replicas", "spec.roles[decode].replicas") -> who manages it, as
# "manager (operation[, subresource])".
Writers = dict[str, tuple[str, ...]]


def _writers(obj: Object) -> Writers | None:
    """Who manages each replica field of an object, from its managedFields (RSG reads
    nothing else of them: what it tells a user who else holds a count); None for a state
    that carries no managedFields."""
    managed = (obj.get("metadata") or {}).get("managedFields")
    if managed is None:
        return None
    found: dict[str, list[str]] = {}
    for entry in managed:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        paths = ["spec.replicas"] if "f:replicas" in spec else []
        for item, owned in (spec.get("f:roles") or {}).items():
            if item.startswith("k:") and "f:replicas" in (owned or {}):
                with contextlib.suppress(ValueError, AttributeError):
                    paths.append(f"spec.roles[{json.loads(item[2:]).get('name')}].replicas")
        if paths:
            how = ", ".join(x for x in (entry.get("operation"), entry.get("subresource")) if x)
            for path in paths:
                found.setdefault(path, []).append(f"{entry.get('manager')} ({how})")
    return {path: tuple(who) for path, who in found.items()}


def _slim(obj: Object) -> Object:
    """What is kept of an object: everything but managedFields (often half its size,
    and never read by RSG; a PUT without it keeps the stored one). Annotations are kept
    whole, last-applied-configuration included: a JSON patch built from a cached object
    that seemed to have no annotations would replace them all (found by the admission
    policy's test, when this cache dropped it)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    return obj


def _stub(obj: Object) -> Object:
    """What is held of an object no RSG reads (rule 5): what rules 1-4 compare."""
    meta = obj.get("metadata") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace") or "",
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        STUB: True,
    }


STUB = "rsg-stub"  # a key no API object has (kinds and fields are camelCase)


def _is_stub(obj: Object) -> bool:
    return STUB in obj


# ---------------------------------------------------------------------------- sharing


@dataclass
class _Interest:
    """Which RSGs each object concerns."""

    by_name: dict[tuple[str, str, str, str], set[RsgKey]] = field(default_factory=dict)
    by_label: dict[tuple[str, str, str, str], set[RsgKey]] = field(default_factory=dict)

    def entries(self, selection: Selection) -> dict[tuple[str, str, str, str], set[RsgKey]]:
        return self.by_name if selection.name is not None else self.by_label

    @staticmethod
    def key(selection: Selection) -> tuple[str, str, str, str]:
        value = selection.name if selection.name is not None else selection.labelled
        assert value is not None
        return (api_group(selection.api_version), selection.kind, selection.namespace, value)

    def add(self, rsg: RsgKey, selection: Selection) -> None:
        self.entries(selection).setdefault(self.key(selection), set()).add(rsg)

    def remove(self, rsg: RsgKey, selection: Selection) -> None:
        entries, key = self.entries(selection), self.key(selection)
        holders = entries.get(key)
        if holders is not None:
            holders.discard(rsg)
            if not holders:
                del entries[key]

    def read(self, scope: Scope, obj: Object) -> bool:
        """Whether an RSG may read the object: one names it, or it carries an RSG's
        label (clones, and the seeds and members RSG labelled)."""
        meta = obj.get("metadata") or {}
        if labels.NAME in (meta.get("labels") or {}):
            return True
        where = (api_group(scope.api_version), scope.kind, str(meta.get("namespace") or ""))
        return (*where, str(meta.get("name"))) in self.by_name

    def concerned(self, scope: Scope, obj: Object) -> set[RsgKey]:
        meta = obj["metadata"]
        where = (api_group(scope.api_version), scope.kind, str(meta.get("namespace") or ""))
        found = set(self.by_name.get((*where, str(meta["name"])), ()))
        value = (meta.get("labels") or {}).get(labels.NAME)
        if value is not None:
            found |= self.by_label.get((*where, value), set())
        return found


class Watches:
    """The informers every RSG shares, started and stopped as RSGs need them."""

    def __init__(
        self, kube: Kube, wake: Callable[[Iterable[RsgKey]], None], cluster_wide: bool
    ) -> None:
        self.kube = kube
        self._wake = wake
        self._cluster_wide = cluster_wide
        self._informers: dict[Scope, Informer] = {}
        self._holders: dict[Scope, set[RsgKey]] = {}
        self._wanted: dict[RsgKey, frozenset[Selection]] = {}
        self._interest = _Interest()
        self._stopping: set[asyncio.Task[None]] = set()

    def scope(self, api_version: str, kind: str, namespace: str) -> Scope:
        """The scope that holds objects of this kind in `namespace`: all namespaces when
        the operator watches the whole cluster (one watch per kind), else that namespace."""
        return Scope(api_version, kind, None if self._cluster_wide else namespace)

    def want(self, rsg: RsgKey, selections: Iterable[Selection]) -> None:
        """What `rsg` needs from now on: start informers it is the first to need, stop
        those it was the last to hold, and route object events to it."""
        wanted = frozenset(selections)
        before = self._wanted.get(rsg, frozenset())
        if wanted == before:
            return
        for selection in before - wanted:
            self._interest.remove(rsg, selection)
        for selection in wanted - before:
            self._interest.add(rsg, selection)
        if wanted:
            self._wanted[rsg] = wanted
        else:
            self._wanted.pop(rsg, None)
        old = {self.scope(s.api_version, s.kind, s.namespace) for s in before}
        new = {self.scope(s.api_version, s.kind, s.namespace) for s in wanted}
        for scope in new - old:
            self._holders.setdefault(scope, set()).add(rsg)
            if scope not in self._informers:
                informer = Informer(
                    self.kube, scope, self._on_change, self._on_served, keep=self._interest.read
                )
                self._informers[scope] = informer
                informer.start()
        for scope in old - new:
            holders = self._holders.get(scope, set())
            holders.discard(rsg)
            if not holders:
                self._holders.pop(scope, None)
                informer = self._informers.pop(scope)
                stopping = asyncio.create_task(informer.stop(), name=f"stop {scope.describe()}")
                self._stopping.add(stopping)
                stopping.add_done_callback(self._stopping.discard)

    def drop(self, rsg: RsgKey) -> None:
        self.want(rsg, ())

    def informer(self, api_version: str, kind: str, namespace: str) -> Informer | None:
        """The running informer that holds objects of this kind in `namespace`, if any."""
        return self._informers.get(self.scope(api_version, kind, namespace))

    @property
    def informers(self) -> dict[Scope, Informer]:
        return dict(self._informers)

    def reconnects(self) -> int:
        return sum(i.reconnects for i in self._informers.values())

    def dead(self) -> str | None:
        """For the liveness probe: a watch task that ended on its own (a bug: informers
        reconnect after every error), else None."""
        deaths = [d for i in self._informers.values() if (d := i.died()) is not None]
        return "; ".join(deaths) or None

    async def stop(self) -> None:
        informers = list(self._informers.values())
        self._informers.clear()
        self._holders.clear()
        await asyncio.gather(*(i.stop() for i in informers), return_exceptions=True)

    def _on_served(self, informer: Informer) -> None:
        """The kind is served now: every RSG that holds it can read it."""
        self._wake(self._holders.get(informer.scope, set()))

    def _on_change(
        self,
        informer: Informer,
        old: Object | None,
        new: Object | None,
        writer: RsgKey | None = None,
    ) -> None:
        concerned: set[RsgKey] = set()
        for obj in (old, new):
            if obj is not None:
                concerned |= self._interest.concerned(informer.scope, obj)
        if writer is not None:
            concerned.discard(writer)
        if concerned:
            obj = new if new is not None else old
            assert obj is not None
            log.debug(
                "%s %s/%s changed: waking %s",
                informer.scope.kind,
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
                ", ".join(f"{ns}/{name}" for ns, name in sorted(concerned)),
            )
            self._wake(concerned)
