"""tasks.ended: what the liveness probe says of a background task."""

from __future__ import annotations

import asyncio

from rsg_operator.tasks import ended


async def _states() -> list[str | None]:
    async def fail() -> None:
        raise RuntimeError("boom")

    async def finish() -> None:
        return None

    running = asyncio.create_task(asyncio.sleep(60))
    failed, returned = asyncio.create_task(fail()), asyncio.create_task(finish())
    cancelled = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(failed, returned, cancelled, return_exceptions=True)
    states = [ended(t, "the loop", "it returned") for t in (None, running, failed, returned)]
    states.append(ended(cancelled, "the loop", "it returned"))
    running.cancel()
    return states


def test_only_a_task_that_ended_on_its_own_is_reported() -> None:
    assert asyncio.run(_states()) == [
        None,  # never started
        None,  # runs
        "the loop ended: boom",
        "the loop ended: it returned",
        None,  # stopped on purpose
    ]
