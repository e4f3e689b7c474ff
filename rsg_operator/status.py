"""Status of a ResourceScalingGroup: conditions and the minimal patch to reach it.

Pure. A reconcile computes the status it wants; `status_patch` returns only the
fields that differ from what is stored, so an unchanged world costs zero writes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"


class Reason(StrEnum):
    """Reasons of the Degraded condition (and of the Warning events that go with it), and
    of a Ready=False that is no spec problem (RSG goes on acting)."""

    INVALID_SPEC = "InvalidSpec"
    TARGET_NOT_FOUND = "TargetNotFound"
    UNKNOWN_KIND = "UnknownKind"
    ROLE_NOT_FOUND = "RoleNotFound"
    CROSS_NAMESPACE_TARGET = "CrossNamespaceTarget"
    KIND_NOT_CLONEABLE = "KindNotCloneable"
    NOT_SCALABLE = "NotScalable"
    TARGET_CONFLICT = "TargetConflict"
    MEMBER_CONFLICT = "MemberConflict"
    NAME_CONFLICT = "NameConflict"
    SPEC_CHANGE_REFUSED = "SpecChangeRefused"
    RECONCILE_FAILING = "ReconcileFailing"
    SOURCE_TARGET_CYCLE = "SourceTargetCycle"
    # Ready=False, Degraded=False: what runs is not what RSG set.
    REPLICAS_NOT_TAKEN_UP = "ReplicasNotTakenUp"
    REPLICAS_CONTESTED = "ReplicasContested"


@dataclass(frozen=True)
class Problem:
    """Something that keeps the group from being reconciled; nothing is written while one exists."""

    reason: Reason
    message: str


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(
    type_: str, status: bool, reason: str, message: str, generation: int
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def merge_conditions(
    stored: list[dict[str, Any]], wanted: list[dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Wanted conditions with lastTransitionTime kept from `stored` where status is unchanged."""
    previous = {c.get("type"): c for c in stored}
    merged = []
    for item in wanted:
        old = previous.get(item["type"])
        if old is not None and old.get("status") == item["status"]:
            since = old.get("lastTransitionTime", now)
        else:
            since = now
        merged.append({**item, "lastTransitionTime": since})
    return merged


@dataclass(frozen=True)
class Healthy:
    """Why the group is Ready when nothing is wrong, and whether it is still moving. With
    `ready` False, Ready is False for `reason` although the spec has no problem: RSG acts,
    but what runs is not what it set (the Warning event says so once)."""

    reason: str = "TargetsResolved"
    message: str = "every target exists"
    progressing: str | None = None  # what is still under way, if anything
    ready: bool = True


DEFAULT_HEALTHY = Healthy()


def problems_conditions(
    problems: list[Problem], generation: int, healthy: Healthy = DEFAULT_HEALTHY
) -> list[dict[str, Any]]:
    """Ready and Degraded for a reconcile: the first problem, if any, is the reason."""
    if not problems:
        moving = healthy.progressing
        return [
            condition(READY, healthy.ready, healthy.reason, healthy.message, generation),
            condition(
                PROGRESSING,
                moving is not None,
                "Progressing" if moving else "Stable",
                moving or "nothing is under way",
                generation,
            ),
            condition(DEGRADED, False, "AsExpected", "spec is valid", generation),
        ]
    reason = problems[0].reason
    message = "; ".join(p.message for p in problems)
    return [
        condition(READY, False, reason, message, generation),
        condition(PROGRESSING, False, reason, "stopped until the problem is fixed", generation),
        condition(DEGRADED, True, reason, message, generation),
    ]


def status_patch(stored: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """The fields of `wanted` that differ from `stored` (top level; lists are replaced whole)."""
    return {key: value for key, value in wanted.items() if stored.get(key) != value}


@dataclass(frozen=True)
class Outcome:
    """What a reconcile writes: a status patch (maybe empty) and maybe a Warning event."""

    patch: dict[str, Any]
    warning: Problem | None = None


def outcome(
    stored: dict[str, Any],
    generation: int,
    problems: list[Problem],
    now: str,
    fields: dict[str, Any] | None = None,
    healthy: Healthy = DEFAULT_HEALTHY,
) -> Outcome:
    """The status patch for a reconcile that found `problems` and observed `fields`
    (e.g. currentReplicas, bindings), and a Warning when Degraded newly has this reason.

    A Degraded reconcile that could not observe groups[] or bindings[] does not leave the
    old ones standing as if current: bindings[] is removed, and groups[] keeps only the
    groups being removed (their phase Deleting is the record that lets a restarted
    operator finish the removal)."""
    if problems:
        fields = {**_unobserved(stored), **(fields or {})}
    conditions = merge_conditions(
        list(stored.get("conditions") or []),
        problems_conditions(problems, generation, healthy),
        now,
    )
    wanted = {**(fields or {}), "observedGeneration": generation, "conditions": conditions}
    patch = status_patch(stored, wanted)
    if not problems:
        if healthy.ready:
            return Outcome(patch)
        before = _find(stored.get("conditions") or [], READY)
        said = before is not None and (before.get("reason"), before.get("message")) == (
            healthy.reason,
            healthy.message,
        )
        return Outcome(patch, None if said else Problem(Reason(healthy.reason), healthy.message))
    before = _find(stored.get("conditions") or [], DEGRADED)
    after = _find(conditions, DEGRADED)
    assert after is not None
    repeated = before is not None and (before.get("reason"), before.get("message")) == (
        after["reason"],
        after["message"],
    )
    return Outcome(patch, None if repeated else Problem(problems[0].reason, after["message"]))


def _unobserved(stored: dict[str, Any]) -> dict[str, Any]:
    removing = [g for g in stored.get("groups") or [] if g.get("phase") == "Deleting"]
    return {"bindings": None, "groups": removing or None}


def _find(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)
