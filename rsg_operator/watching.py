"""Wake an RSG's reconcile when one of its members changes.

Each member object gets its own watch, narrowed to that object by a field selector (and
a GroupReplication's clones one watch per kind, by the RSG's label), so RSG reacts to a
Source change (HPA, kubectl scale, anything) in milliseconds without a resync, and sees
drift of a Target or a deleted clone. Watching writes nothing onto the watched objects.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from kubernetes_asyncio.client.exceptions import ApiException

from rsg_operator.kube import Kube, Selection, UnknownKind

RETRY_SECONDS = 1.0


@dataclass
class Watches:
    kube: Kube
    wakeup: asyncio.Event
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]
    _tasks: dict[Selection, asyncio.Task[None]] = field(default_factory=dict)

    def watch(self, selections: list[Selection]) -> None:
        """Watch exactly these selections: start new watches, stop stale ones."""
        wanted = set(selections)
        for key in set(self._tasks) - wanted:
            self._tasks.pop(key).cancel()
        for key in wanted - set(self._tasks):
            self._tasks[key] = asyncio.create_task(
                self._follow(key), name=f"watch {key.describe()}"
            )

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _follow(self, selection: Selection) -> None:
        while True:
            try:
                async for _event in self.kube.watch(selection):
                    self.wakeup.set()
            except (TimeoutError, ApiException, UnknownKind, OSError) as error:
                self.logger.warning("watch of %s failed: %s", selection.describe(), error)
                await asyncio.sleep(RETRY_SECONDS)
