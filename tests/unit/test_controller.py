"""The controller's view of the RSGs: what wakes a reconcile (no server: the informer is
fed by hand)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from rsg_operator import api
from rsg_operator.informers import WRITER, Informer, Scope
from rsg_operator.kube import Kube
from rsg_operator.reconcilers.controller import Controller
from rsg_operator.settings import Settings
from tests.specs import group_spec, rsg


def body(version: int, generation: int, replicas: int, deleting: bool = False) -> dict[str, Any]:
    obj = rsg("pool", group_spec(replicas=replicas))
    obj["metadata"] |= {
        "namespace": "ai",
        "uid": "rsg-uid",
        "resourceVersion": str(version),
        "generation": generation,
        "creationTimestamp": "2026-01-01T00:00:00Z",
        "finalizers": ["resourcescalinggroup.com/release"],
    }
    if deleting:
        obj["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return obj


def queued_after_our_status_write_carries(change: dict[str, Any]) -> bool:
    """Someone else's change (resourceVersion 11) is committed while a reconcile runs;
    the answer to that reconcile's status patch (12) carries it before its own watch
    event does. Is the RSG queued again?"""

    async def scenario() -> bool:
        controller = Controller(Kube.__new__(Kube), Settings())
        scope = Scope(api.API_VERSION, api.KIND, None)
        informer = Informer(controller.kube, scope, controller._seen, report_first_list=True)
        controller._rsg_informers[None] = informer
        informer._apply({"type": "ADDED", "object": body(10, 1, 2)})
        key = await controller.queue.get()  # the reconcile of generation 1 begins
        answer = copy.deepcopy(change)
        answer["metadata"]["resourceVersion"] = "12"
        answer["status"] = {"currentReplicas": 2}
        token = WRITER.set(key)
        try:
            controller._remember(answer)  # as _write_status does
        finally:
            WRITER.reset(token)
        controller.queue.done(key)
        informer._apply({"type": "MODIFIED", "object": change})  # late, and older
        informer._apply({"type": "MODIFIED", "object": answer})
        return key in controller.queue._queued

    return asyncio.run(scenario())


def test_a_scale_carried_by_our_own_status_write_answer_is_reconciled() -> None:
    """Found by review: the change was taken for our own write's, and never reconciled
    until the resync (an HPA's scale-up waiting 5 minutes)."""
    assert queued_after_our_status_write_carries(body(11, 2, 5))


def test_a_deletion_carried_by_our_own_status_write_answer_is_finalized() -> None:
    assert queued_after_our_status_write_carries(body(11, 1, 2, deleting=True))


def test_our_own_status_write_alone_wakes_nothing() -> None:
    assert not queued_after_our_status_write_carries(body(11, 1, 2))
