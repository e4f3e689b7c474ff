"""planner: scale-out fills the lowest free indices; scale-in removes exactly the right groups."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rsg_operator.api import ScaleDownPolicy
from rsg_operator.planner import (
    Drain,
    Group,
    Observed,
    Plan,
    SeedAction,
    decide,
    plan,
    victims,
)

P = "unit"


def groups(*pairs: tuple[int, str]) -> dict[int, Group]:
    return {i: Group(i, created) for i, created in pairs}


THREE = groups(
    (1, "2026-01-01T00:00:00Z"), (2, "2026-01-03T00:00:00Z"), (3, "2026-01-02T00:00:00Z")
)


def test_scale_out_fills_the_lowest_free_indices() -> None:
    existing = groups((1, "a"), (3, "b"))
    assert plan(existing, 5, P) == Plan(add=(2, 4, 5))


def test_scale_out_brings_the_seed_group_back_first() -> None:
    assert plan(groups((2, "a")), 2, P) == Plan(add=(1,))


def test_scale_in_removes_candidates_first_in_list_order() -> None:
    assert victims(THREE, 2, P, ScaleDownPolicy.ORDERED, ["unit-01", "unit-02"]) == (1, 2)
    assert victims(THREE, 1, P, ScaleDownPolicy.ORDERED, ["unit-02"]) == (2,)


def test_ordered_removes_the_highest_index_first() -> None:
    assert victims(THREE, 2, P, ScaleDownPolicy.ORDERED, []) == (3, 2)


def test_newest_removes_the_latest_created_first() -> None:
    assert victims(THREE, 2, P, ScaleDownPolicy.NEWEST, []) == (2, 3)


def test_oldest_removes_the_earliest_created_first() -> None:
    assert victims(THREE, 2, P, ScaleDownPolicy.OLDEST, []) == (1, 3)


def test_ties_go_by_index() -> None:
    same = groups((1, "t"), (2, "t"), (3, "t"))
    assert victims(same, 1, P, ScaleDownPolicy.NEWEST, []) == (3,)
    assert victims(same, 1, P, ScaleDownPolicy.OLDEST, []) == (1,)


def test_missing_candidates_are_ignored_and_reported() -> None:
    result = plan(THREE, 2, P, ScaleDownPolicy.ORDERED, ["unit-09", "other-02", "unit-01"])
    assert result.remove == (1,)
    assert result.ignored_candidates == ("unit-09", "other-02")


def test_candidate_ids_match_the_zero_padded_form_only() -> None:
    assert victims(THREE, 1, P, ScaleDownPolicy.ORDERED, ["unit-2"]) == (3,)


def test_big_indices() -> None:
    existing = groups(*((i, "t") for i in range(1, 101)))
    assert victims(existing, 1, P, ScaleDownPolicy.ORDERED, ["unit-100"]) == (100,)
    assert victims(existing, 1, P, ScaleDownPolicy.ORDERED, ["unit-010"]) == (100,)


created = st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"])
existing_groups = st.dictionaries(st.integers(1, 30), created, max_size=15).map(
    lambda d: {i: Group(i, c) for i, c in d.items()}
)
candidate_ids = st.lists(st.integers(1, 40).map(lambda i: f"{P}-{i:02d}"), unique=True, max_size=6)


@given(existing_groups, st.integers(0, 40), st.sampled_from(list(ScaleDownPolicy)), candidate_ids)
def test_plan_properties(
    existing: dict[int, Group], desired: int, policy: ScaleDownPolicy, candidates: list[str]
) -> None:
    result = plan(existing, desired, P, policy, candidates)
    again = plan(existing, desired, P, policy, candidates)
    assert result == again  # deterministic
    assert not (result.add and result.remove)
    assert len(existing) + len(result.add) - len(result.remove) == desired  # never more, never less
    assert set(result.remove) <= set(existing)  # never a non-existing group
    assert len(set(result.remove)) == len(result.remove)
    assert not set(result.add) & set(existing)
    named = [int(c.rsplit("-", 1)[1]) for c in candidates]
    assert not set(result.add) & set(named)  # a listed id is never made again
    named_existing = [i for i in named if i in existing]
    # Candidates always first, in their order.
    assert list(result.remove[: len(named_existing)]) == named_existing[: len(result.remove)]
    assert set(result.ignored_candidates) == {
        c for c, i in zip(candidates, named, strict=True) if i not in existing
    }


# ---------------------------------------------------------------------------- decide

TARGETS = ("prefill", "decode")
WHOLE = frozenset(TARGETS)


def observed(
    clones: dict[int, frozenset[str]] | None = None,
    at_zero: frozenset[str] = frozenset(),
    deleting: frozenset[int] = frozenset(),
    taken: frozenset[tuple[int, str]] = frozenset(),
    draining: dict[int, Drain] | None = None,
    going: dict[int, frozenset[str]] | None = None,
) -> Observed:
    clones = clones or {}
    return Observed(
        targets=TARGETS,
        seed_created="2026-01-01T00:00:00Z",
        seed_at_zero=at_zero,
        clones=clones,
        created={i: f"2026-01-0{i}T00:00:00Z" for i in clones},
        deleting=deleting,
        taken=lambda index, tid: (index, tid) in taken,
        draining=draining or {},
        going=going or {},
    )


def test_a_recorded_removal_is_finished_never_completed() -> None:
    half = observed({2: WHOLE, 3: frozenset({"prefill"})}, deleting=frozenset({3}))
    decision = decide(half, 2, P)
    assert decision.finish_deleting == (3,)
    assert decision.complete == {}
    assert decision.existing == (1, 2)


def test_a_recorded_removal_that_has_not_begun_is_judged_afresh() -> None:
    # The operator died right after recording unit-03's removal: nothing was deleted.
    recorded = observed({2: WHOLE, 3: WHOLE}, deleting=frozenset({3}))
    assert decide(recorded, 2, P).remove == (3,)  # still a victim: removed
    kept = decide(recorded, 3, P)  # wanted back meanwhile: kept, whole, nothing made
    assert (kept.remove, kept.add, kept.finish_deleting, kept.existing) == ((), (), (), (1, 2, 3))
    # A drained group whose removal was recorded is revived the same way.
    drained = observed(
        {2: WHOLE}, deleting=frozenset({2}), draining={2: Drain(T0 - 60, acknowledged=True)}
    )
    back = decide(drained, 2, P, drain_timeout=60, now=T0)
    assert (back.revive, back.remove) == ((2,), ())
    # Once one member is being deleted, it has begun: finished.
    begun = observed(
        {2: frozenset({"prefill"})}, deleting=frozenset({2}), going={2: frozenset({"decode"})}
    )
    assert decide(begun, 2, P).finish_deleting == (2,)


def test_an_index_being_removed_is_not_reused_until_it_is_gone() -> None:
    decision = decide(observed({3: frozenset({"decode"})}, deleting=frozenset({3})), 3, P)
    assert decision.add == (2, 4)


def test_a_half_created_group_is_completed() -> None:
    decision = decide(observed({2: frozenset({"prefill"})}), 2, P)
    assert decision.complete == {2: ("decode",)}
    assert decision.add == ()


def test_a_half_removed_seed_finishes_its_removal_when_it_was_recorded() -> None:
    half = observed(at_zero=frozenset({"prefill"}), deleting=frozenset({1}))
    decision = decide(half, 0, P)
    assert decision.seed is SeedAction.FINISH_REMOVAL
    assert decision.existing == ()


def test_a_half_restored_seed_finishes_its_restore() -> None:
    decision = decide(observed(at_zero=frozenset({"prefill"})), 1, P)
    assert decision.seed is SeedAction.FINISH_RESTORE
    assert decision.existing == (1,)
    assert decision.add == ()


def test_a_name_held_by_another_app_blocks_its_group_only() -> None:
    decision = decide(observed(taken=frozenset({(2, "decode")})), 3, P)
    assert decision.blocked == {2: ("decode",)}
    assert decision.add == (3,)  # the other new group is made; 02 waits for its name
    assert decision.existing == (1, 3)


def test_a_partial_group_whose_missing_name_is_taken_stands_blocked() -> None:
    half = observed({2: frozenset({"prefill"})}, taken=frozenset({(2, "decode")}))
    decision = decide(half, 2, P)
    assert decision.blocked == {2: ("decode",)}
    assert decision.stuck == (2,)  # listed as Blocked
    assert decision.complete == {} and decision.remove == () and decision.finish_deleting == ()
    assert decision.existing == (1,)  # serving: the seed only
    assert decide(half, 3, P).add == (3,)  # counted: its index is not reused


def test_a_blocked_group_is_the_first_victim_and_is_not_drained() -> None:
    half = observed({2: frozenset({"prefill"}), 3: WHOLE}, taken=frozenset({(2, "decode")}))
    decision = decide(half, 2, P, candidates=["unit-03"], drain_timeout=60, now=T0)
    assert decision.remove == (2,) and decision.drain == ()  # before the candidate
    assert decision.stuck == () and decision.blocked == {}
    assert decision.existing == (1, 3)
    gone = decide(half, 0, P)  # scaled to 0: nothing is left behind
    assert set(gone.remove) == {1, 2, 3} and gone.stuck == ()


def test_victims_with_missing_members_are_removed_not_completed() -> None:
    decision = decide(observed({2: WHOLE, 3: frozenset({"prefill"})}), 2, P)
    assert decision.remove == (3,)
    assert decision.complete == {}


def test_a_half_restored_seed_chosen_as_victim_is_removed_not_restored_first() -> None:
    # A restore stopped half-way (prefill back, decode still at 0); meanwhile the gateway
    # named unit-01 for removal. Restoring decode only to take it down again would start
    # and kill its pods for nothing.
    half = observed({2: WHOLE}, at_zero=frozenset({"decode"}))
    decision = decide(half, 1, P, candidates=["unit-01"])
    assert decision.remove == (1,)
    assert decision.seed is None
    assert decision.existing == (2,)


def test_a_half_removed_seed_wanted_again_has_its_removal_rolled_back() -> None:
    # The removal was recorded and stopped after prefill; the user scaled back up. Taking
    # decode down to bring both up again would restart its pods for nothing.
    half = observed({2: WHOLE}, at_zero=frozenset({"prefill"}), deleting=frozenset({1}))
    decision = decide(half, 2, P)
    assert decision.seed is SeedAction.ROLL_BACK_REMOVAL
    assert decision.add == () and decision.remove == ()
    assert decision.existing == (1, 2)
    more = decide(half, 3, P)
    assert (more.seed, more.add, more.existing) == (SeedAction.ROLL_BACK_REMOVAL, (3,), (1, 2, 3))


# ---------------------------------------------------------------------------- candidates


def test_scale_out_skips_ids_still_listed_as_candidates() -> None:
    # unit-02 was named and removed; the list was never cleared. A new group under that
    # id would be the next victim of the stale entry.
    assert plan(groups((1, "a")), 3, P, candidates=["unit-02"]) == Plan(
        add=(3, 4), ignored_candidates=("unit-02",)
    )
    decision = decide(observed({3: WHOLE}), 3, P, candidates=["unit-02"])
    assert decision.add == (4,)


def test_candidates_are_reported_missing_only_when_used_and_truly_missing() -> None:
    # unit-02 drains (named earlier); unit-09 names nothing.
    state = observed({2: WHOLE, 3: WHOLE}, draining={2: Drain(T0)})
    listed = ["unit-02", "unit-09"]
    steady = decide(state, 2, P, candidates=listed, drain_timeout=60, now=T0)
    assert steady.ignored_candidates == ()  # no victim picked: the list was not used
    down = decide(state, 1, P, candidates=listed, drain_timeout=60, now=T0)
    assert down.drain == (3,)
    assert down.ignored_candidates == ("unit-09",)  # unit-02 is a group: it drains


def test_a_seed_still_listed_is_not_brought_back() -> None:
    assert decide(observed(at_zero=WHOLE), 1, P, candidates=["unit-01"]).add == (2,)
    # ...nor is its unfinished removal rolled back: it finishes.
    half = observed(at_zero=frozenset({"prefill"}), deleting=frozenset({1}))
    decision = decide(half, 1, P, candidates=["unit-01"])
    assert decision.seed is SeedAction.FINISH_REMOVAL
    assert decision.add == (2,)


# ---------------------------------------------------------------------------- drains

T0 = 1_000_000.0


def test_with_a_drain_timeout_victims_drain_instead_of_going() -> None:
    decision = decide(observed({2: WHOLE, 3: WHOLE}), 2, P, drain_timeout=60, now=T0)
    assert decision.drain == (3,)
    assert decision.remove == ()
    assert decision.draining == {3: T0 + 60}
    assert decision.existing == (1, 2)  # a draining group does not count


def test_without_a_drain_timeout_victims_go_at_once() -> None:
    decision = decide(observed({2: WHOLE, 3: WHOLE}), 2, P, now=T0)
    assert (decision.drain, decision.remove, decision.draining) == ((), (3,), {})


def test_a_drain_ends_at_its_acknowledgement_or_its_deadline() -> None:
    draining = {2: Drain(T0 - 10), 3: Drain(T0 - 1, acknowledged=True), 4: Drain(T0 - 60)}
    clones = {i: WHOLE for i in (2, 3, 4)}
    decision = decide(observed(clones, draining=draining), 1, P, drain_timeout=60, now=T0)
    assert decision.remove == (3, 4)  # acknowledged; past its deadline (started + 60 s)
    assert decision.draining == {2: T0 + 50}  # the deadline kept from when it began
    assert decision.drain == () and decision.existing == (1,)


def test_a_shorter_timeout_applies_to_drains_under_way() -> None:
    decision = decide(observed({2: WHOLE}, draining={2: Drain(T0 - 10)}), 1, P, now=T0)
    assert decision.remove == (2,)


def test_more_groups_wanted_revive_draining_ones_before_making_new_ones() -> None:
    draining = {2: Drain(T0 - 5), 3: Drain(T0 - 5)}
    clones = {2: WHOLE, 3: WHOLE}
    one = decide(observed(clones, draining=draining), 2, P, drain_timeout=60, now=T0)
    # Ordered removes the highest first, so the lowest comes back first.
    assert (one.revive, one.add, one.draining) == ((2,), (), {3: T0 + 55})
    assert one.existing == (1, 2)
    all_and_more = decide(observed(clones, draining=draining), 4, P, drain_timeout=60, now=T0)
    assert (all_and_more.revive, all_and_more.add) == ((2, 3), (4,))
    assert all_and_more.draining == {}


def test_a_listed_candidate_is_revived_last() -> None:
    draining = {2: Drain(T0), 3: Drain(T0)}
    decision = decide(
        observed({2: WHOLE, 3: WHOLE}, draining=draining),
        2,
        P,
        candidates=["unit-02"],
        drain_timeout=60,
        now=T0,
    )
    assert decision.revive == (3,)


def test_an_acknowledged_group_wanted_again_is_revived_not_removed() -> None:
    draining = {2: Drain(T0 - 5, acknowledged=True)}
    decision = decide(observed({2: WHOLE}, draining=draining), 2, P, drain_timeout=60, now=T0)
    assert (decision.revive, decision.remove) == ((2,), ())


def test_the_seed_drains_and_comes_back() -> None:
    drain = decide(observed({2: WHOLE}), 1, P, candidates=["unit-01"], drain_timeout=30, now=T0)
    assert drain.drain == (1,) and drain.existing == (2,)
    back = decide(observed({2: WHOLE}, draining={1: Drain(T0)}), 2, P, drain_timeout=30, now=T0)
    assert back.revive == (1,) and back.add == ()
    over = decide(
        observed({2: WHOLE}, draining={1: Drain(T0 - 30)}), 1, P, drain_timeout=30, now=T0
    )
    assert over.remove == (1,) and over.existing == (2,)


def test_a_draining_group_missing_a_member_is_not_completed() -> None:
    decision = decide(
        observed({2: frozenset({"prefill"})}, draining={2: Drain(T0)}),
        1,
        P,
        drain_timeout=9,
        now=T0,
    )
    assert decision.complete == {} and decision.draining == {2: T0 + 9}


def test_an_index_whose_objects_are_going_away_is_not_reused() -> None:
    decision = decide(observed(going={2: WHOLE}), 3, P)
    assert decision.add == (3, 4)


def test_a_member_still_going_away_is_not_created_again_yet() -> None:
    half = observed({2: frozenset({"prefill"})}, going={2: frozenset({"decode"})})
    decision = decide(half, 2, P)
    assert decision.complete == {} and decision.existing == (1, 2)


drains = st.dictionaries(
    st.integers(1, 12),
    st.builds(Drain, st.floats(T0 - 100, T0), st.booleans()),
    max_size=6,
)


@given(
    st.dictionaries(st.integers(2, 12), st.just(WHOLE), max_size=8),
    drains,
    st.integers(0, 16),
    st.sampled_from([0, 30]),
    candidate_ids,
    st.frozensets(st.tuples(st.integers(2, 8), st.sampled_from(TARGETS)), max_size=3),
)
def test_decide_properties(
    clones: dict[int, frozenset[str]],
    draining: dict[int, Drain],
    desired: int,
    timeout: int,
    candidates: list[str],
    taken: frozenset[tuple[int, str]],
) -> None:
    draining = {i: d for i, d in draining.items() if i in clones or i == 1}
    taken = frozenset((i, t) for i, t in taken if i in clones and t not in clones[i])
    decision = decide(
        observed(clones, draining=draining, taken=taken),
        desired,
        P,
        candidates=candidates,
        drain_timeout=timeout,
        now=T0,
    )
    serving = set(decision.existing)
    stuck = set(decision.stuck)
    assert len(serving | stuck) == desired  # exactly the wanted number (blocked or serving)
    assert not stuck & (serving | set(decision.remove) | set(decision.drain))
    if stuck:  # a blocked group stands only while no scale-in could take it
        assert not set(decision.remove) - {i for i, _ in taken} - set(draining)
    assert not serving & set(decision.draining)
    assert not serving & set(decision.remove)
    assert set(decision.revive) <= set(draining)
    assert not set(decision.add) & ({1, *clones} | set(draining))  # never a second copy
    if decision.add:  # new groups only once every draining group is back
        assert set(decision.revive) == set(draining)
    for index in decision.draining:
        assert decision.draining[index] > T0  # nothing past its deadline stays
    if timeout == 0:
        assert decision.draining == {} and decision.drain == ()


# Whole and partial groups, so that names of missing clones can be taken (Blocked).
members = st.sampled_from([frozenset(TARGETS), frozenset({"prefill"}), frozenset({"decode"})])


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(st.integers(2, 8), members, max_size=6),
    drains,
    st.integers(0, 10),
    st.sampled_from([0, 30]),
    candidate_ids,
    st.frozensets(st.tuples(st.integers(2, 8), st.sampled_from(TARGETS)), max_size=4),
    st.sampled_from([frozenset(), frozenset({"prefill"}), frozenset(TARGETS)]),
    st.frozensets(st.integers(1, 8), max_size=3),
)
def test_decide_properties_with_blocked_groups(
    clones: dict[int, frozenset[str]],
    draining: dict[int, Drain],
    desired: int,
    timeout: int,
    candidates: list[str],
    taken: frozenset[tuple[int, str]],
    at_zero: frozenset[str],
    deleting: frozenset[int],
) -> None:
    """A Blocked group is never completed, drained, reused or kept while a serving group
    is removed (from the review's property test, with the seed at 0 and recorded
    removals mixed in)."""
    draining = {i: d for i, d in draining.items() if i in clones or (i == 1 and not at_zero)}
    taken = frozenset((i, t) for i, t in taken if i in clones and t not in clones[i])
    decision = decide(
        observed(clones, at_zero=at_zero, deleting=deleting, draining=draining, taken=taken),
        desired,
        P,
        candidates=candidates,
        drain_timeout=timeout,
        now=T0,
    )
    serving, stuck = set(decision.existing), set(decision.stuck)
    removed = set(decision.remove) | set(decision.finish_deleting)
    assert stuck <= {i for i, _ in taken}
    assert not stuck & (serving | removed | set(decision.drain) | set(decision.add))
    assert not stuck & set(decision.complete)
    assert not serving & removed
    assert not set(decision.add) & ({*clones} | set(draining) | set(decision.finish_deleting))
    if not at_zero and not deleting:
        assert len(serving | stuck) == desired
    if stuck:  # a serving group goes only once every blocked one has
        assert not set(decision.remove) - set(draining) - {i for i, _ in taken} - {1}
