"""What reconcilers see of the cluster: objects read from the shared watches' caches,
writes sent to the API server and their results kept in those caches at once.

Reads cost no request: every member of every RSG is held by an informer (watches.py),
and every change of one wakes the RSGs it concerns, so a reconcile that acted on a
state just overtaken is followed by one that sees the new state. Writes are either
idempotent (set replicas to N, create a deterministic name) or guarded (resourceVersion,
a JSON-patch `test`, a delete precondition on the uid), so acting on a stale read can
fail, but never does harm.
"""

from __future__ import annotations

from typing import Any

from rsg_operator.informers import Informer, Object, Watches
from rsg_operator.kinds import api_group
from rsg_operator.kube import ApiResource, Conflict, Invalid, Kube, UnknownKind

# What the API server answers (422, no causes) when a JSON patch's `test` fails, as
# opposed to a patch whose result the object's schema refuses (422, naming the fields).
TEST_FAILED = "the server rejected our request due to an error in our request"


class Cluster:
    def __init__(self, kube: Kube, watches: Watches) -> None:
        self.kube = kube
        self.watches = watches

    # ------------------------------------------------------------------ reads

    async def resource(self, api_version: str, kind: str) -> ApiResource:
        """Where a kind lives (discovery, cached). Raises UnknownKind."""
        return await self.kube.resource(api_version, kind)

    async def versions(self, api_version: str) -> tuple[str, ...]:
        """Every apiVersion the group of `api_version` is served as."""
        return await self.kube.versions(api_group(api_version))

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Object | None:
        """The object as last seen, or None. Raises UnknownKind, Unavailable."""
        informer = await self._synced(api_version, kind, namespace)
        return await informer.full(namespace, name)

    async def labelled(self, api_version: str, kind: str, namespace: str, rsg: str) -> list[Object]:
        """Objects of a kind in `namespace` carrying RSG `rsg`'s name label."""
        informer = await self._synced(api_version, kind, namespace)
        return informer.labelled(namespace, rsg)

    def latest(self, obj: Object) -> Object:
        """The object as the cache holds it now (after our own writes), else `obj`."""
        informer = self._informer_of(obj)
        meta = obj["metadata"]
        held = (
            None
            if informer is None
            else informer.get(str(meta.get("namespace") or ""), meta["name"])
        )
        return held or obj

    def writers(self, obj: Object) -> dict[str, tuple[str, ...]]:
        """Who manages each replica field of a cached object (from its managedFields):
        "spec.replicas" or "spec.roles[<role>].replicas" -> "manager (operation, ...)"."""
        informer = self._informer_of(obj)
        if informer is None:
            return {}
        meta = obj["metadata"]
        return informer.writers(str(meta.get("namespace") or ""), str(meta["name"]))

    async def _synced(self, api_version: str, kind: str, namespace: str) -> Informer:
        informer = self.watches.informer(api_version, kind, namespace)
        if informer is None:
            raise LookupError(
                f"no watch holds {kind} ({api_version}) in {namespace}: want() it first"
            )
        await informer.wait()
        return informer

    async def fetch(self, obj: Object) -> Object | None:
        """The object read from the API server now (for the rare case the cache cannot
        have it yet: a name taken by a create that raced ours)."""
        found = await self.kube.get(await self.path_of(obj))
        return None if found is None else self._seen(obj, found)

    async def path_of(self, obj: Object) -> str:
        """The API path of an object (with apiVersion, kind and metadata)."""
        resource = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        return resource.path(name=meta["name"], namespace=meta.get("namespace"))

    # ------------------------------------------------------------------ writes

    async def create(self, obj: Object) -> Object:
        """Create an object. Raises AlreadyExists."""
        resource = await self.resource(obj["apiVersion"], obj["kind"])
        path = resource.path(namespace=obj["metadata"].get("namespace"))
        return self._seen(obj, await self.kube.create(path, obj))

    async def replace(self, obj: Object) -> Object:
        """PUT an object; its resourceVersion guards it (Conflict)."""
        return self._seen(obj, await self.kube.replace(await self.path_of(obj), obj))

    async def delete(self, obj: Object, foreground: bool = False) -> None:
        """Delete this incarnation of an object (its uid); gone already is fine.

        With `foreground`, its dependents (a Deployment's ReplicaSets and Pods) go first
        and the object stays until they are gone, seen here with its deletionTimestamp."""
        meta = obj["metadata"]
        answer = await self.kube.delete(await self.path_of(obj), meta.get("uid"), foreground)
        if (answer or {}).get("metadata", {}).get("deletionTimestamp"):
            self._seen(obj, answer or {})  # still there, going away
            return
        informer = self._informer_of(obj)
        if informer is not None:
            informer.forget(obj)

    async def merge_patch(self, obj: Object, body: dict[str, Any]) -> Object:
        return self._seen(obj, await self.kube.merge_patch(await self.path_of(obj), body))

    async def json_patch(self, obj: Object, operations: list[dict[str, Any]]) -> Object:
        """A JSON patch guarded by `test` operations: the API server answers a failed
        test with a bare 422, which here means the object changed since it was read, so
        it is raised as a Conflict (read again, then retry)."""
        try:
            patched = await self.kube.json_patch(await self.path_of(obj), operations)
        except Invalid as error:
            if TEST_FAILED not in str(error):
                raise  # refused for what it would write (the object's schema): no conflict
            raise Conflict(
                f"{obj['kind']} {obj['metadata'].get('namespace')}/{obj['metadata']['name']} "
                f"changed since it was read (a JSON-patch test failed: {error})",
                409,
                "Conflict",
            ) from None
        return self._seen(obj, patched)

    async def scale(self, obj: Object, replicas: int, pointer: str | None) -> int:
        """Set replicas through the object's /scale subresource; returns the replicas the
        server answered with. `pointer` (JSON pointer of the replicas in the object, if
        known) keeps the cache in step before the watch event arrives."""
        path = await self.path_of(obj)
        scale = await self.kube.merge_patch(f"{path}/scale", {"spec": {"replicas": replicas}})
        written = int((scale.get("spec") or {}).get("replicas") or 0)
        version = (scale.get("metadata") or {}).get("resourceVersion")
        if pointer is not None and version:
            updated = _with(obj, pointer, written)
            updated["metadata"] = {**obj["metadata"], "resourceVersion": version}
            self._seen(obj, updated)
        return written

    async def read_scale(self, obj: Object) -> int:
        """Replicas from the /scale subresource (for kinds whose replicas path we do not
        know): a request, unlike every other read."""
        scale = await self.kube.request("GET", f"{await self.path_of(obj)}/scale")
        return int((scale.get("spec") or {}).get("replicas") or 0)

    def _informer_of(self, obj: Object) -> Informer | None:
        namespace = str(obj["metadata"].get("namespace") or "")
        return self.watches.informer(obj["apiVersion"], obj["kind"], namespace)

    def _seen(self, sent: Object, answer: Object) -> Object:
        obj = {**answer, "apiVersion": sent["apiVersion"], "kind": sent["kind"]}
        informer = self._informer_of(obj)
        if informer is not None:
            informer.remember(obj)
        return obj


def _with(obj: Object, pointer: str, value: int) -> Object:
    """A copy of `obj` with the integer at a simple JSON pointer (/spec/replicas) set."""
    parts = pointer.strip("/").split("/")
    copied: Object = dict(obj)
    node = copied
    for part in parts[:-1]:
        node[part] = dict(node.get(part) or {})
        node = node[part]
    node[parts[-1]] = value
    return copied


__all__ = ["Cluster", "UnknownKind"]
