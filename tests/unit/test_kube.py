"""The client's vocabulary: API answers become typed errors callers decide on."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from rsg_operator import kube


def answer(status: int, reason: str = "", headers: dict[str, str] | None = None) -> ApiException:
    error = ApiException(status=status, reason="Status")
    error.body = json.dumps({"kind": "Status", "reason": reason, "message": f"it was {reason}"})
    error.headers = headers or {}
    return error


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (404, "NotFound", kube.NotFound),
        (409, "AlreadyExists", kube.AlreadyExists),
        (409, "Conflict", kube.Conflict),
        (410, "Expired", kube.Gone),
        (422, "Invalid", kube.Invalid),
        (429, "TooManyRequests", kube.TooManyRequests),
        (500, "InternalError", kube.Unavailable),
        (503, "ServiceUnavailable", kube.Unavailable),
        (403, "Forbidden", kube.KubeError),
    ],
)
def test_api_answers_map_to_typed_errors(
    status: int, reason: str, expected: type[kube.KubeError]
) -> None:
    error = kube._from_api_exception(answer(status, reason))
    assert type(error) is expected
    assert error.status == status and error.reason == reason
    assert f"it was {reason}" in str(error)


def test_already_exists_is_a_conflict() -> None:
    assert isinstance(kube._from_api_exception(answer(409, "AlreadyExists")), kube.Conflict)


def test_retry_after_is_obeyed_within_a_cap() -> None:
    assert kube._retry_after(answer(429, headers={"Retry-After": "3"})) == 3.0
    assert kube._retry_after(answer(429, headers={"Retry-After": "3600"})) == 30.0
    assert kube._retry_after(answer(429)) == 1.0  # none given: a second


def test_a_discovered_resource_knows_its_paths() -> None:
    resources = kube._resources(
        "apps/v1",
        {
            "resources": [
                {"name": "deployments", "kind": "Deployment", "namespaced": True},
                {"name": "deployments/scale", "kind": "Scale", "namespaced": True},
                {"name": "deployments/status", "kind": "Deployment", "namespaced": True},
            ]
        },
    )
    deployment = resources["Deployment"]
    assert deployment.subresources == {"scale", "status"}
    assert deployment.path("x", "ai") == "/apis/apps/v1/namespaces/ai/deployments/x"
    assert deployment.path(namespace=None) == "/apis/apps/v1/deployments"


def test_concurrent_discovery_misses_share_one_read() -> None:
    class Counting(kube.Kube):
        def __init__(self) -> None:
            self._discovered = {}
            self._discovering = {}
            self.reads = 0

        async def request(self, method: str, path: str, *args: object, **kw: object) -> Any:
            self.reads += 1
            await asyncio.sleep(0.01)
            return {"resources": [{"name": "widgets", "kind": "Widget", "namespaced": True}]}

    async def scenario() -> tuple[int, int]:
        client = Counting()
        found = await asyncio.gather(*(client.resource("x.io/v1", "Widget") for _ in range(20)))
        assert {r.plural for r in found} == {"widgets"}
        with pytest.raises(kube.UnknownKind):
            await client.resource("x.io/v1", "Gadget")
        cached = client.cached_resource("x.io/v1", "Widget")
        assert cached is not None
        return client.reads, len(client._discovering)

    # One read for twenty concurrent misses, one more for the unknown kind.
    assert asyncio.run(scenario()) == (2, 0)


def test_a_write_queued_for_a_connection_is_not_sent_once_the_fence_closes() -> None:
    """With leadership lost while a write waits for a connection, the write is refused
    when it gets one: the server never sees it."""
    from aiohttp import web
    from kubernetes_asyncio import client

    async def scenario() -> tuple[list[str], type[BaseException] | None]:
        seen: list[str] = []
        release = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            seen.append(request.path)
            if request.path.endswith("/first"):
                await release.wait()  # holds the only connection
            return web.json_response({"kind": "Status"})

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        configuration = client.Configuration(host=f"http://127.0.0.1:{port}")
        lost = False
        plain = await kube.Kube.connect(configuration, connections=1)
        fenced = plain.fenced(lambda: "lost the Lease" if lost else None)
        first = asyncio.create_task(fenced.request("PATCH", "/first", {}))
        await asyncio.sleep(0.2)
        second = asyncio.create_task(fenced.request("PATCH", "/second", {}))
        await asyncio.sleep(0.2)  # queued behind the first, for the pool's one connection
        lost = True
        release.set()
        await first
        outcome = await asyncio.gather(second, return_exceptions=True)
        refused = type(outcome[0]) if isinstance(outcome[0], BaseException) else None
        with pytest.raises(kube.NotLeader):  # and any later write, at once
            await fenced.request("PATCH", "/third", {})
        await plain.close()
        await runner.cleanup()
        return seen, refused

    seen, refused = asyncio.run(scenario())
    assert refused is kube.NotLeader
    assert seen == ["/first"]
