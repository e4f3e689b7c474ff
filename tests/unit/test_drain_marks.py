"""How a group's drain is read from its members' marks (the record a restart relies on)."""

from __future__ import annotations

from typing import Any

from rsg_operator.planner import Drain
from rsg_operator.reconcilers.group_replication import _drain_of, _parse_time, _rfc3339

NOW = 1_800_000_000.0


def member(labels: dict[str, str] | None = None, **annotations: str) -> dict[str, Any]:
    notes = {f"resourcescalinggroup.com/{k.replace('_', '-')}": v for k, v in annotations.items()}
    return {"metadata": {"name": "m", "labels": labels or {}, "annotations": notes}}


DRAINING = {"resourcescalinggroup.com/draining": "true"}


def test_a_group_without_the_label_is_not_draining() -> None:
    assert _drain_of({"a": member(), "b": member(drained="true")}, NOW) is None


def test_the_drain_began_at_the_earliest_start_its_members_record() -> None:
    members = {
        "a": member(DRAINING, drain_started="2027-01-15T08:00:10.000Z"),
        "b": member(DRAINING, drain_started="2027-01-15T08:00:00.250Z"),
        "c": member(),  # a crash before its patch
    }
    drain = _drain_of(members, NOW)
    assert drain == Drain(_parse_time("2027-01-15T08:00:00.250Z") or 0, acknowledged=False)


def test_an_unreadable_start_counts_from_now() -> None:
    assert _drain_of({"a": member(DRAINING, drain_started="yesterday")}, NOW) == Drain(NOW)


def test_any_member_acknowledges_and_only_with_true() -> None:
    started = {"drain_started": _rfc3339(NOW)}
    assert _drain_of(
        {"a": member(DRAINING, **started), "b": member(DRAINING, drained="true")}, NOW
    ) == Drain(NOW, acknowledged=True)
    assert _drain_of({"a": member(DRAINING, drained="yes", **started)}, NOW) == Drain(NOW)


def test_times_round_trip_to_the_millisecond() -> None:
    assert _rfc3339(NOW + 0.25) == "2027-01-15T08:00:00.250Z"
    assert _parse_time(_rfc3339(NOW + 0.25)) == NOW + 0.25
