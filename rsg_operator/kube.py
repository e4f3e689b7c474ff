"""The operator's one Kubernetes client wrapper (kubernetes_asyncio's transport).

Everything that talks to the API server goes through `Kube`, so that credentials,
discovery (kind -> resource), timeouts, retries and the meaning of API errors live in
one place. Two connection pools: one for requests (bounded, every request has a
timeout) and one for watches, so that long-lived watches can never take the
connections that reads and writes need.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import random
import socket
import ssl
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from rsg_operator import metrics

log = logging.getLogger(__name__)

# Every write is recorded under this name in the objects' managedFields.
FIELD_MANAGER = ("fieldManager", "rsg-operator")
# This process, among the operator's replicas: its Lease identity, and in its user agent,
# so that the API server's audit log tells which replica made each request.
PROCESS = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
# How the API server's audit log and metrics name us.
USER_AGENT = f"rsg-operator/{_version('rsg-operator')} ({PROCESS})"
# Connections for requests (reads, writes, events). Reconciles beyond this many
# in-flight requests wait for a connection; they never open more.
REQUEST_CONNECTIONS = 6
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=10)
# A watch is ended by the server after timeoutSeconds (randomised, as client-go does, so
# that watches do not all reconnect at once). The server sends a bookmark about every
# minute, so a stream silent for WATCH_IDLE_SECONDS is dead (a half-open connection).
WATCH_SECONDS = (240, 300)
WATCH_IDLE_SECONDS = 90
# 429 Too Many Requests: wait what Retry-After says (capped), at most this many times.
THROTTLE_RETRIES = 5
MAX_RETRY_AFTER_SECONDS = 30.0
# A read that failed in transport or with a 5xx is retried this many times.
READ_RETRIES = 2


# ---------------------------------------------------------------------------- errors


class KubeError(Exception):
    """An API call failed. Subclasses say why; callers decide by meaning, not by code."""

    status: int = 0

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status or self.status
        self.reason = reason


class NotFound(KubeError):
    status = 404


class Conflict(KubeError):
    """409: the object changed since it was read (resourceVersion), or already exists."""

    status = 409


class AlreadyExists(Conflict):
    pass


class Gone(KubeError):
    """410: a resourceVersion too old to resume from; list again."""

    status = 410


class Invalid(KubeError):
    """422: the server refused the request's content (a failed JSON-patch `test` too)."""

    status = 422


class TooManyRequests(KubeError):
    status = 429


class Unavailable(KubeError):
    """The server could not be reached or failed (transport error, timeout, 5xx)."""


class UnknownKind(LookupError):
    """The API server serves no such apiVersion/kind."""


class NotLeader(KubeError):
    """A write refused before it was sent: this process may no longer act as leader."""


# Whether writes may be sent: None if so, else why not (leader.Election.fence).
Fence = Callable[[], str | None]
# The fence of the write being sent, for the check made once its connection is taken.
_SENDING: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("fence", default=None)


async def _check_fence(*_: Any) -> None:
    """aiohttp trace hook, run when a request has its connection (new or reused), right
    before the request goes out: a write that waited for a connection while leadership
    was lost is not sent."""
    fence = _SENDING.get()
    if fence is not None and (why := fence()) is not None:
        raise NotLeader(f"write not sent: {why}")


def _fence_trace() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_check_fence)
    trace.on_connection_reuseconn.append(_check_fence)
    return trace


def _from_api_exception(error: ApiException) -> KubeError:
    status = int(error.status or 0)
    reason, message = str(error.reason or ""), str(error.reason or "")
    try:
        body = json.loads(error.body) if error.body else {}
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or message)
    except (TypeError, ValueError):
        pass
    text = f"{status} {reason}: {message}" if message != reason else f"{status} {reason}"
    if status == 409 and reason == "AlreadyExists":
        return AlreadyExists(text, status, reason)
    kind: type[KubeError] = {
        404: NotFound,
        409: Conflict,
        410: Gone,
        422: Invalid,
        429: TooManyRequests,
    }.get(status, Unavailable if status >= 500 else KubeError)
    return kind(text, status, reason)


def _retry_after(error: ApiException) -> float:
    headers: Any = error.headers or {}
    try:
        return min(max(float(headers.get("Retry-After")), 0.0), MAX_RETRY_AFTER_SECONDS)
    except (TypeError, ValueError):
        return 1.0


# ---------------------------------------------------------------------------- faults

_writes = 0


def _count_write(path: str) -> None:
    """Fault injection for crash tests: RSG_CRASH_AFTER_WRITES=N kills the process (as
    SIGKILL would) right before its N+1th write; with RSG_CRASH_WRITES_TO=<plural>, only
    writes to that resource count (a test about members then does not depend on whether
    an RSG status write comes first). Unset, it costs one comparison."""
    global _writes
    limit = os.environ.get("RSG_CRASH_AFTER_WRITES")
    if limit is None:
        return
    only = os.environ.get("RSG_CRASH_WRITES_TO")
    if only and f"/{only}/" not in f"{path.split('?', 1)[0]}/":
        return
    if _writes >= int(limit):
        os._exit(137)
    _writes += 1


# ---------------------------------------------------------------------------- discovery


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


def api_root(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


@dataclass(frozen=True)
class ApiResource:
    """A discovered resource: where a kind lives and which subresources it has."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: frozenset[str]

    def path(self, name: str | None = None, namespace: str | None = None) -> str:
        path = api_root(self.api_version)
        if self.namespaced and namespace:
            path += f"/namespaces/{namespace}"
        path += f"/{self.plural}"
        return f"{path}/{name}" if name else path


def _resources(api_version: str, listing: dict[str, Any]) -> dict[str, ApiResource]:
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


# ---------------------------------------------------------------------------- client


class Kube:
    """Async access to any kind through discovery. Make one with `Kube.connect`."""

    def __init__(
        self,
        requests: client.ApiClient,
        watches: client.ApiClient | None = None,
        fence: Fence | None = None,
    ) -> None:
        self._requests = requests
        self._watches = watches
        self._fence = fence
        self._discovered: dict[str, dict[str, ApiResource]] = {}
        self._discovering: dict[str, asyncio.Future[dict[str, ApiResource]]] = {}
        self._versions: dict[str, tuple[str, ...]] = {}

    @classmethod
    async def connect(cls, configuration: client.Configuration, connections: int = 0) -> Kube:
        """A client for requests (at most `connections`, default REQUEST_CONNECTIONS)
        and one for watches (as many as there are watches). With `connections` given,
        a client of requests only, on a pool of its own (the Lease's)."""
        if connections:
            return cls(await _api_client(configuration, connections))
        return cls(
            await _api_client(configuration, REQUEST_CONNECTIONS),
            await _api_client(configuration, 0),  # 0: no limit
        )

    def fenced(self, fence: Fence) -> Kube:
        """This client (its pools and discovery), with every write checked against
        `fence` right before it is sent: refused with NotLeader once `fence` says so."""
        view = Kube(self._requests, self._watches, fence)
        view._discovered, view._discovering = self._discovered, self._discovering
        view._versions = self._versions
        return view

    async def close(self) -> None:
        await self._requests.close()
        if self._watches is not None:
            await self._watches.close()

    # ------------------------------------------------------------------ discovery

    def cached_resource(self, api_version: str, kind: str) -> ApiResource | None:
        """A kind already discovered, without any I/O or lock."""
        return self._discovered.get(api_version, {}).get(kind)

    async def resource(self, api_version: str, kind: str) -> ApiResource:
        """Discover where a kind lives. Raises UnknownKind.

        One discovery document per group/version, cached and read without a lock; a kind
        missing from the cache re-reads its group/version once (a CRD may have been
        installed since), and concurrent misses share that one read."""
        found = self.cached_resource(api_version, kind)
        if found is not None:
            return found
        pending = self._discovering.get(api_version)
        if pending is None:
            pending = asyncio.ensure_future(self._discover(api_version))
            self._discovering[api_version] = pending
            pending.add_done_callback(lambda _: self._discovering.pop(api_version, None))
        self._discovered[api_version] = await asyncio.shield(pending)
        found = self.cached_resource(api_version, kind)
        if found is None:
            raise UnknownKind(f"the API server serves no kind {kind} in {api_version}")
        return found

    async def versions(self, group: str) -> tuple[str, ...]:
        """The apiVersions an API group is served as (discovery, cached once read)."""
        if not group:
            return ("v1",)
        found = self._versions.get(group)
        if found is None:
            try:
                listing = await self.request("GET", f"/apis/{group}")
            except NotFound:
                return ()
            found = tuple(str(v["groupVersion"]) for v in listing.get("versions") or [])
            self._versions[group] = found
        return found

    async def _discover(self, api_version: str) -> dict[str, ApiResource]:
        try:
            listing = await self.request("GET", api_root(api_version))
        except NotFound:
            return {}
        return _resources(api_version, listing)

    # ------------------------------------------------------------------ requests

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
        counted: bool = True,
    ) -> dict[str, Any]:
        """One API call with a timeout; raises a KubeError.

        429 is retried after its Retry-After; a read that failed in transport or with a
        5xx is retried at once a few times (writes are not: the caller re-reads first).
        `counted=False` keeps a write out of the crash-test write count (events)."""
        fence = self._fence if method != "GET" else None
        if fence is not None and (why := fence()) is not None:
            raise NotLeader(f"{method} {path} not sent: {why}")
        if method != "GET" and counted:
            _count_write(path)
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        throttled = failed = 0
        while True:
            sending = _SENDING.set(fence)
            try:
                result: dict[str, Any] = await self._requests.call_api(
                    path,
                    method,
                    query_params=query or [],
                    header_params=headers,
                    body=body,
                    response_types_map={200: "object", 201: "object", 202: "object"},
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=REQUEST_TIMEOUT,
                )
                if method != "GET":
                    metrics.WRITES.labels(metrics.resource_of(path), metrics.VERBS[method]).inc()
                return result
            except ApiException as error:
                mapped = _from_api_exception(error)
                if isinstance(mapped, TooManyRequests) and throttled < THROTTLE_RETRIES:
                    throttled += 1
                    delay = _retry_after(error)
                    log.info("%s %s throttled (429); retrying in %.1fs", method, path, delay)
                    await asyncio.sleep(delay)
                    continue
                if isinstance(mapped, Unavailable) and method == "GET" and failed < READ_RETRIES:
                    failed += 1
                    await asyncio.sleep(0.2 * failed)
                    continue
                raise mapped from None
            except (aiohttp.ClientError, TimeoutError) as error:
                if method == "GET" and failed < READ_RETRIES:
                    failed += 1
                    await asyncio.sleep(0.2 * failed)
                    continue
                raise Unavailable(f"{method} {path}: {type(error).__name__}: {error}") from None
            finally:
                _SENDING.reset(sending)

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None if it does not exist."""
        try:
            return await self.request("GET", path)
        except NotFound:
            return None

    async def list_page(
        self, resource: ApiResource, namespace: str | None, limit: int, token: str | None
    ) -> dict[str, Any]:
        """One page of a list (items, metadata.continue, metadata.resourceVersion)."""
        query = [("limit", str(limit))]
        if token:
            query.append(("continue", token))
        return await self.request("GET", resource.path(namespace=namespace), query=query)

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """POST an object to its collection. Raises AlreadyExists."""
        return await self.request("POST", path, obj, query=[FIELD_MANAGER])

    async def replace(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT an object; its metadata.resourceVersion guards the update (Conflict)."""
        return await self.request("PUT", path, obj, query=[FIELD_MANAGER])

    async def delete(
        self, path: str, uid: str | None = None, foreground: bool = False
    ) -> dict[str, Any] | None:
        """Delete an object; gone already is fine (None). Returns what the server answered:
        the object itself while its deletion is under way, else a Status.

        Dependents are collected in the background, or with `foreground` first: the object
        then stays (with a deletionTimestamp) until they are gone. With `uid`, only that
        incarnation is deleted: an object recreated under the same name since it was read
        is a Conflict, not a victim."""
        options: dict[str, Any] = {
            "propagationPolicy": "Foreground" if foreground else "Background"
        }
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        try:
            return await self.request("DELETE", path, options)
        except NotFound:
            return None

    async def merge_patch(
        self, path: str, body: dict[str, Any], counted: bool = True
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            path,
            body,
            "application/merge-patch+json",
            query=[FIELD_MANAGER],
            counted=counted,
        )

    async def json_patch(self, path: str, operations: list[dict[str, Any]]) -> dict[str, Any]:
        return await self.request(
            "PATCH", path, operations, "application/json-patch+json", query=[FIELD_MANAGER]
        )

    # ------------------------------------------------------------------ watches

    async def watch(
        self, resource: ApiResource, namespace: str | None, resource_version: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events after `resource_version` (ADDED, MODIFIED, DELETED, BOOKMARK).

        Ends when the server ends the stream (its timeout); raises Gone when the version
        is too old, Unavailable when the connection fails or goes silent."""
        assert self._watches is not None, "a requests-only client does not watch"
        path = resource.path(namespace=namespace)
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(random.randint(*WATCH_SECONDS))),
        ]
        try:
            response = await self._watches.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=10, sock_read=WATCH_IDLE_SECONDS
                ),
            )
        except ApiException as error:
            raise _from_api_exception(error) from None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise Unavailable(f"watch {path}: {type(error).__name__}: {error}") from None
        try:
            async with response:
                if response.status != 200:
                    failure = ApiException(status=response.status, reason=response.reason)
                    failure.body = await response.text()
                    raise _from_api_exception(failure)
                async for line in response.content:
                    if not line.strip():
                        continue
                    event: dict[str, Any] = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        code = int(status.get("code") or 0)
                        message = str(status.get("message") or status)
                        if code == 410:
                            raise Gone(message, 410, str(status.get("reason") or "Expired"))
                        raise Unavailable(f"watch {path}: {message}", code)
                    yield event
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise Unavailable(f"watch {path}: {type(error).__name__}: {error}") from None


async def _api_client(configuration: client.Configuration, connections: int) -> client.ApiClient:
    """An ApiClient on a connection pool of its own, without aiohttp's `trust_env`.

    kubernetes_asyncio's session trusts the environment, and aiohttp then looks for a
    netrc file in a worker thread before every request: a thread hop that cost 4-8 ms
    per request, most after the loop had been idle for a second (measured: a Target
    write took 16 ms when Source changes came 1 s apart, 9 ms when 0.2 s apart). So the
    environment's proxy is read once, here, as kubectl does (a kubeconfig's proxy-url
    wins), and the session does not look again."""
    copied = client.Configuration()
    copied.__dict__.update(configuration.__dict__)  # credentials and their refresh shared
    copied.connection_pool_maxsize = connections
    if not copied.proxy and copied.host:
        copied.proxy = _proxy_from_environment(copied.host)
    api_client = client.ApiClient(copied)
    api_client.user_agent = USER_AGENT
    rest = api_client.rest_client
    trusting = rest.pool_manager
    rest.pool_manager = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, ssl=_ssl_context(copied)),
        trust_env=False,
        trace_configs=[_fence_trace()],
        read_bufsize=2**21,  # as kubernetes_asyncio: a watch event can be large
    )
    await trusting.close()
    return api_client


def _ssl_context(configuration: client.Configuration) -> ssl.SSLContext:
    """The TLS settings of a configuration, as kubernetes_asyncio applies them."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, keyfile=configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.disable_strict_ssl_verification:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def _proxy_from_environment(host: str) -> str | None:
    """HTTPS_PROXY (or HTTP_PROXY for http://) unless NO_PROXY names the host."""
    url = urllib.parse.urlsplit(host)
    if not url.hostname or urllib.request.proxy_bypass(url.hostname):
        return None
    proxy: str | None = urllib.request.getproxies().get(url.scheme)
    return proxy
