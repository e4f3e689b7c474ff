"""The work queue: coalesced, one worker per key, first come first served, schedules."""

from __future__ import annotations

import asyncio

from rsg_operator.workqueue import WorkQueue


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_wake_ups_of_a_waiting_key_are_one_reconcile() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        for key in ("a", "b", "a", "a", "c", "b"):
            queue.add(key)
        assert len(queue) == 3
        assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]

    run(scenario())


def test_a_key_woken_while_it_is_worked_on_comes_back_after() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")  # an event during the reconcile
        queue.add("b")
        assert await queue.get() == "b"  # never two workers on "a"
        assert len(queue) == 0
        queue.done(key)
        assert await queue.get() == "a"

    run(scenario())


def test_a_key_not_woken_while_active_is_not_requeued() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.done(await queue.get())
        assert len(queue) == 0

    run(scenario())


def test_the_earliest_schedule_wins_and_an_add_makes_it_due_now() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add_after("a", 60)
        queue.add_after("a", 0.01)
        queue.add_after("a", 30)  # later than what is scheduled: ignored
        assert await asyncio.wait_for(queue.get(), 5) == "a"
        queue.done("a")
        queue.add_after("b", 60)
        queue.add("b")
        assert await asyncio.wait_for(queue.get(), 1) == "b"
        assert queue.scheduled == 0

    run(scenario())


def test_forgotten_keys_are_not_served() -> None:
    async def scenario() -> None:
        queue: WorkQueue[str] = WorkQueue()
        queue.add("a")
        queue.add_after("b", 0.01)
        queue.forget("a")
        queue.forget("b")
        queue.add("c")
        assert await asyncio.wait_for(queue.get(), 1) == "c"
        await asyncio.sleep(0.05)
        assert len(queue) == 0

    run(scenario())


def test_waiting_workers_each_get_a_key() -> None:
    async def scenario() -> None:
        queue: WorkQueue[int] = WorkQueue()
        workers = [asyncio.create_task(queue.get()) for _ in range(3)]
        await asyncio.sleep(0)
        for key in range(3):
            queue.add(key)
        assert sorted(await asyncio.wait_for(asyncio.gather(*workers), 1)) == [0, 1, 2]

    run(scenario())
