"""What a strategy's reconcile returns to the driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rsg_operator.informers import Selection
from rsg_operator.status import Healthy, Problem


@dataclass
class Report:
    fields: dict[str, Any] = field(default_factory=dict)  # status fields observed
    # What keeps the RSG from being whole. Found before any write, a problem stops the
    # reconcile (nothing is written); a NameConflict holds back one group only.
    problems: list[Problem] = field(default_factory=list)
    healthy: Healthy = field(default_factory=Healthy)  # Ready's reason when no problem
    events: list[tuple[str, str]] = field(default_factory=list)  # Normal (reason, message)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # Warning (reason, message)
    watch: list[Selection] = field(default_factory=list)  # more objects whose change matters
    requeue_after: float | None = None  # reconcile again then at the latest (a drain's deadline)
    drains: list[str] = field(default_factory=list)  # drains ended: acknowledged, deadline, revived
