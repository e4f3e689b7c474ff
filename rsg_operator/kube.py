"""The operator's one Kubernetes client wrapper (kubernetes_asyncio).

Everything that talks to the API server goes through `Kube`, so that credentials,
discovery (kind -> resource) and the mapping of API errors live in one place.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

WATCH_TIMEOUT_SECONDS = 300
# Every write is recorded under this name in the objects' managedFields.
FIELD_MANAGER = [("fieldManager", "rsg-operator")]


_writes = 0


def _count_write() -> None:
    """Fault injection for crash tests: RSG_CRASH_AFTER_WRITES=N kills the process (as
    SIGKILL would) right before its N+1th write. Unset, it costs one comparison."""
    global _writes
    limit = os.environ.get("RSG_CRASH_AFTER_WRITES")
    if limit is None:
        return
    if _writes >= int(limit):
        os._exit(137)
    _writes += 1


class UnknownKind(LookupError):
    """The API server serves no such apiVersion/kind."""


async def load_configuration(kubeconfig: Path | None) -> client.Configuration:
    """Credentials: an explicit kubeconfig, else in-cluster, else $KUBECONFIG/~/.kube/config."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        await config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration
        )
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config(client_configuration=configuration)
    return configuration


@dataclass(frozen=True)
class ApiResource:
    """A discovered resource: where a kind lives and which subresources it has."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: frozenset[str]

    def path(self, name: str | None = None, namespace: str | None = None) -> str:
        path = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        return f"{path}/{name}" if name else path


@dataclass(frozen=True)
class Selection:
    """Objects of a kind in a namespace, narrowed by name or by labels."""

    api_version: str
    kind: str
    namespace: str
    name: str | None = None
    label_selector: str | None = None

    @property
    def query(self) -> tuple[str, str]:
        if self.name is not None:
            return ("fieldSelector", f"metadata.name={self.name}")
        assert self.label_selector is not None
        return ("labelSelector", self.label_selector)

    def describe(self) -> str:
        what = self.name if self.name is not None else f"-l {self.label_selector}"
        return f"{self.kind} {self.namespace}/{what}"


class Kube:
    """Async access to any kind through discovery; a missing object reads as None."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api_client = api_client
        self._discovered: dict[str, dict[str, ApiResource]] = {}
        self._discovery_lock = asyncio.Lock()

    @classmethod
    async def connect(cls, configuration: client.Configuration) -> Kube:
        return cls(client.ApiClient(configuration))

    async def close(self) -> None:
        await self._api_client.close()

    async def resource(self, api_version: str, kind: str) -> ApiResource:
        """Discover where a kind lives. Raises UnknownKind.

        One discovery document per group/version, cached; a kind missing from the cache
        re-reads it once (a CRD may have been installed since)."""
        async with self._discovery_lock:
            found = self._discovered.get(api_version, {}).get(kind)
            if found is None:
                self._discovered[api_version] = await self._discover(api_version)
                found = self._discovered[api_version].get(kind)
        if found is None:
            raise UnknownKind(f"the API server serves no kind {kind} in {api_version}")
        return found

    async def _discover(self, api_version: str) -> dict[str, ApiResource]:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            listing = await self.request("GET", path)
        except ApiException as error:
            if error.status == 404:
                return {}
            raise
        entries = listing.get("resources") or []
        subresources: dict[str, set[str]] = {}
        for entry in entries:
            plural, _, sub = str(entry["name"]).partition("/")
            if sub:
                subresources.setdefault(plural, set()).add(sub)
        return {
            entry["kind"]: ApiResource(
                api_version=api_version,
                kind=entry["kind"],
                plural=entry["name"],
                namespaced=bool(entry.get("namespaced")),
                subresources=frozenset(subresources.get(entry["name"], ())),
            )
            for entry in entries
            if "/" not in entry["name"]
        }

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
    ) -> dict[str, Any]:
        """One API call; a non-2xx answer raises ApiException. (kubernetes_asyncio's
        dynamic client is not used: its request() returns error Status objects instead of
        raising, and its lazy discovery breaks under concurrent use.)"""
        if method != "GET":
            _count_write()
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        result: dict[str, Any] = await self._api_client.call_api(
            path,
            method,
            query_params=query or [],
            header_params=headers,
            body=body,
            response_types_map={200: "object", 201: "object"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
        )
        return result

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None if it does not exist. Raises UnknownKind."""
        resource = await self.resource(api_version, kind)
        try:
            return await self.request("GET", resource.path(name=name, namespace=namespace))
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace matching a label selector (apiVersion/kind set)."""
        resource = await self.resource(api_version, kind)
        listing = await self.request(
            "GET", resource.path(namespace=namespace), query=[("labelSelector", label_selector)]
        )
        return [
            {"apiVersion": api_version, "kind": kind, **item} for item in listing.get("items") or []
        ]

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Create an object; None if one of that name exists already (idempotent retries)."""
        resource = await self.resource(obj["apiVersion"], obj["kind"])
        path = resource.path(namespace=obj["metadata"].get("namespace"))
        try:
            return await self.request("POST", path, obj, query=FIELD_MANAGER)
        except ApiException as error:
            if error.status == 409:
                return None
            raise

    async def path_of(self, obj: dict[str, Any]) -> str:
        """The API path of an object (with apiVersion, kind and metadata as read)."""
        resource = await self.resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        return resource.path(name=meta["name"], namespace=meta.get("namespace"))

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace (PUT) an object; its metadata.resourceVersion guards the update."""
        replaced = await self.request("PUT", await self.path_of(obj), obj, query=FIELD_MANAGER)
        return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], **replaced}

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete an object (dependents collected in the background); gone already is fine."""
        resource = await self.resource(api_version, kind)
        try:
            await self.request(
                "DELETE",
                resource.path(name=name, namespace=namespace),
                {"propagationPolicy": "Background"},
            )
        except ApiException as error:
            if error.status != 404:
                raise

    async def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, body, "application/merge-patch+json", query=FIELD_MANAGER
        )

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, operations, "application/json-patch+json", query=FIELD_MANAGER
        )

    async def watch(self, selection: Selection) -> AsyncIterator[str]:
        """Yield a word each time a selected object may have changed: "LISTED" on every
        (re)connect, then watch event types.

        Ends when the server closes the stream; the caller loops. Raises ApiException.
        """
        resource = await self.resource(selection.api_version, selection.kind)
        path = resource.path(namespace=selection.namespace)
        selector = selection.query
        listing = await self.request("GET", path, query=[selector])
        yield "LISTED"
        query = [
            selector,
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", listing["metadata"]["resourceVersion"]),
            ("timeoutSeconds", str(WATCH_TIMEOUT_SECONDS)),
        ]
        response = await self._api_client.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=WATCH_TIMEOUT_SECONDS + 30,
        )
        async with response:
            if response.status != 200:
                raise ApiException(status=response.status, reason=await response.text())
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    return  # e.g. 410 Gone: the caller lists and watches again
                if event.get("type") != "BOOKMARK":
                    yield str(event.get("type"))
