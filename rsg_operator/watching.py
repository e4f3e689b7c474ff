"""Wake an RSG's reconcile when one of its members changes.

Each member object gets its own watch, narrowed to that object by a field selector, so
RSG reacts to a Source change (HPA, kubectl scale, anything) in milliseconds without a
resync, and sees drift of a Target. Watching writes nothing onto the watched objects.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from kubernetes_asyncio.client.exceptions import ApiException

from rsg_operator.api import Member
from rsg_operator.kube import Kube, UnknownKind

ObjectKey = tuple[str, str, str, str]  # api_version, kind, namespace, name
RETRY_SECONDS = 1.0


@dataclass
class Watches:
    kube: Kube
    wakeup: asyncio.Event
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    _tasks: dict[ObjectKey, asyncio.Task[None]] = field(default_factory=dict)

    def watch(self, members: list[Member]) -> None:
        """Watch exactly the objects of `members`: start new watches, stop stale ones."""
        wanted = {(m.api_version, m.kind, m.namespace, m.name) for m in members}
        for key in set(self._tasks) - wanted:
            self._tasks.pop(key).cancel()
        for key in wanted - set(self._tasks):
            self._tasks[key] = asyncio.create_task(self._follow(key), name=f"watch {key}")

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, key: ObjectKey) -> None:
        while True:
            try:
                async for _event in self.kube.watch_object(*key):
                    self.wakeup.set()
            except (TimeoutError, ApiException, UnknownKind, OSError) as error:
                self.logger.warning("watch of %s %s/%s failed: %s", key[1], key[2], key[3], error)
                await asyncio.sleep(RETRY_SECONDS)
