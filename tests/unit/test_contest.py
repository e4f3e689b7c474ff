"""Writes rationed when another writer keeps setting a member back; a count not taken
up reported only once it lasts (contest.py, pure)."""

from __future__ import annotations

from rsg_operator.contest import MIN_INTERVAL, NOT_TAKEN_UP_AFTER, WINDOW, Members


def test_a_first_write_and_a_drift_corrected_once_are_no_contest() -> None:
    writes = Members()
    assert writes.before_write("decode", 2, 6, "10", now=0).write
    writes.wrote("decode", 6, now=0)
    # Someone set it back once (a user's kubectl scale): corrected, no rationing.
    verdict = writes.before_write("decode", 2, 6, "12", now=5)
    assert verdict.write and not verdict.contested and verdict.setbacks == 1


def test_set_back_again_and_again_rations_the_writes() -> None:
    writes = Members()
    now = 0.0
    writes.wrote("decode", 6, now)
    for version in ("11", "12"):  # set back twice
        now += 5
        verdict = writes.before_write("decode", 2, 6, version, now)
        if verdict.write:
            writes.wrote("decode", 6, now)
    assert verdict.contested
    held = writes.before_write("decode", 2, 6, "13", now + 1)
    assert not held.write and held.retry_in is not None and held.retry_in <= MIN_INTERVAL
    assert writes.before_write("decode", 2, 6, "13", now + MIN_INTERVAL).write
    assert writes.contested("decode", now + 1) == ""  # nobody named: unknown


def test_the_same_state_seen_twice_is_one_setback() -> None:
    writes = Members()
    writes.wrote("decode", 6, now=0)
    writes.before_write("decode", 2, 6, "11", now=1)
    writes.before_write("decode", 2, 6, "11", now=2)  # a resync of the same state
    assert writes.contested("decode", now=2) is None


def test_a_contest_ends_a_window_after_the_last_setback() -> None:
    writes = Members()
    writes.wrote("decode", 6, now=0)
    writes.before_write("decode", 2, 6, "11", now=1)
    writes.wrote("decode", 6, now=1)
    writes.before_write("decode", 2, 6, "12", now=2, setter="gitops-sync (Update, scale)")
    assert writes.contested("decode", now=3) == "gitops-sync (Update, scale)"
    assert writes.contested("decode", now=2 + WINDOW) is None
    assert writes.before_write("decode", 6, 6, "13", now=2 + WINDOW).write


def test_a_count_not_taken_up_is_reported_once_it_lasts() -> None:
    writes = Members()
    assert writes.not_taken_up("decode", True, now=100) == 0
    assert writes.not_taken_up("decode", True, now=100 + NOT_TAKEN_UP_AFTER) == NOT_TAKEN_UP_AFTER
    assert writes.not_taken_up("decode", False, now=120) is None
    assert writes.not_taken_up("decode", True, now=121) == 0  # a new mismatch starts over
