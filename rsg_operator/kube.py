"""The operator's one Kubernetes client wrapper (kubernetes_asyncio, dynamic client).

Everything that talks to the API server goes through `Kube`, so that credentials,
discovery (kind -> resource) and the mapping of API errors live in one place.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.dynamic import DynamicClient
from kubernetes_asyncio.dynamic.exceptions import ResourceNotFoundError


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


class Kube:
    """Async access to any kind through discovery; a missing object reads as None."""

    def __init__(
        self,
        api_client: client.ApiClient,
        dynamic: DynamicClient,
        cache_dir: tempfile.TemporaryDirectory[str],
    ) -> None:
        self._api_client = api_client
        self._dynamic = dynamic
        self._cache_dir = cache_dir

    @classmethod
    async def connect(cls, configuration: client.Configuration) -> Kube:
        api_client = client.ApiClient(configuration)
        # The discovery cache is private to this process: the library's default file
        # is shared by every client of the same server URL.
        cache_dir = tempfile.TemporaryDirectory(prefix="rsg-operator-discovery-")
        dynamic = await DynamicClient(
            api_client, cache_file=str(Path(cache_dir.name) / "discovery.json")
        )
        return cls(api_client, dynamic, cache_dir)

    async def close(self) -> None:
        await self._api_client.close()
        self._cache_dir.cleanup()

    async def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return await self._dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            raise UnknownKind(f"the API server serves no kind {kind} in {api_version}") from None

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """One API call; a non-2xx answer raises ApiException (the dynamic client's own
        request() returns error Status objects instead, so it is used for discovery only)."""
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        result: dict[str, Any] = await self._api_client.call_api(
            path,
            method,
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
        resource = await self._resource(api_version, kind)
        try:
            return await self.request("GET", resource.path(name=name, namespace=namespace))
        except ApiException as error:
            if error.status == 404:
                return None
            raise
