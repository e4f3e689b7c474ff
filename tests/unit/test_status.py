"""status: conditions keep their transition time; an unchanged world patches nothing."""

from __future__ import annotations

from rsg_operator.status import Healthy, Outcome, Problem, Reason, outcome

NOW, LATER = "2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z"
MISSING = Problem(Reason.TARGET_NOT_FOUND, "Deployment ai/decode (apps/v1) does not exist")


def conditions_of(result: Outcome) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in result.patch["conditions"]}


def test_first_reconcile_writes_generation_and_conditions() -> None:
    result = outcome({}, 3, [], NOW)
    assert result.patch["observedGeneration"] == 3
    assert conditions_of(result)["Ready"]["status"] == "True"
    assert conditions_of(result)["Degraded"]["status"] == "False"
    assert result.warning is None


def test_unchanged_reconcile_patches_nothing() -> None:
    stored = outcome({}, 3, [MISSING], NOW).patch
    assert outcome(stored, 3, [MISSING], LATER) == Outcome({}, None)


def test_degraded_names_the_problem_and_warns_once() -> None:
    first = outcome({}, 1, [MISSING], NOW)
    degraded = conditions_of(first)["Degraded"]
    assert (degraded["status"], degraded["reason"]) == ("True", "TargetNotFound")
    assert "ai/decode" in str(degraded["message"])
    assert first.warning == MISSING
    assert outcome(first.patch, 1, [MISSING], LATER).warning is None


def test_transition_time_moves_only_when_status_changes() -> None:
    stored = outcome({}, 1, [MISSING], NOW).patch
    healed = outcome(stored, 1, [], LATER)
    assert conditions_of(healed)["Degraded"]["lastTransitionTime"] == LATER
    new_generation = outcome(stored, 2, [MISSING], LATER)
    assert conditions_of(new_generation)["Degraded"]["lastTransitionTime"] == NOW


def test_progressing_says_what_is_under_way() -> None:
    moving = outcome({}, 1, [], NOW, healthy=Healthy("GroupsReconciled", "3/3", "waiting for u-03"))
    progressing = conditions_of(moving)["Progressing"]
    assert (progressing["status"], progressing["message"]) == ("True", "waiting for u-03")
    settled = conditions_of(outcome({}, 1, [], NOW))["Progressing"]
    assert (settled["status"], settled["reason"]) == ("False", "Stable")
    stopped = conditions_of(outcome({}, 1, [MISSING], NOW))["Progressing"]
    assert (stopped["status"], stopped["reason"]) == ("False", "TargetNotFound")


def test_degraded_clears_what_it_could_not_observe_but_keeps_removals() -> None:
    stored = {
        "bindings": [{"name": "decode", "desired": 4, "current": 4}],
        "groups": [
            {"name": "u-01", "phase": "Ready"},
            {"name": "u-02", "phase": "Deleting"},
        ],
    }
    patch = outcome(stored, 2, [MISSING], NOW).patch
    assert patch["bindings"] is None  # removed by the merge patch, not left as current
    assert patch["groups"] == [{"name": "u-02", "phase": "Deleting"}]
    nothing_removed = outcome({"groups": [{"name": "u-01", "phase": "Ready"}]}, 2, [MISSING], NOW)
    assert nothing_removed.patch["groups"] is None
    healthy = outcome(stored, 2, [], NOW).patch
    assert "bindings" not in healthy and "groups" not in healthy
