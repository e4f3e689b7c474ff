"""Background tasks that must run as long as the operator: how the liveness probe learns
that one ended on its own."""

from __future__ import annotations

import asyncio
from typing import Any


def ended(task: asyncio.Task[Any] | None, what: str, quietly: str) -> str | None:
    """Why `task` ended although nobody cancelled it — "<what> ended: <its exception, or
    `quietly` if it returned>" — or None while it runs (or was never started)."""
    if task is None or not task.done() or task.cancelled():
        return None
    return f"{what} ended: {task.exception() or quietly}"
