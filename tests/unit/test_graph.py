"""graph: one Source per Target across RSGs, and no Source->Target cycles."""

from __future__ import annotations

from rsg_operator.api import Member
from rsg_operator.graph import Claim, ClaimIndex, problems
from rsg_operator.status import Reason


def deploy(name: str) -> Member:
    return Member("apps/v1", "Deployment", "ai", name)


def claim(rsg: str, created: str, source: str, *targets: str) -> Claim:
    return Claim(("ai", rsg), created, deploy(source), tuple(deploy(t) for t in targets))


def reasons(mine: Claim, *others: Claim) -> list[Reason]:
    return [p.reason for p in problems(mine, [mine, *others])]


def test_independent_rsgs_have_no_problem() -> None:
    assert reasons(claim("a", "1", "router", "prefill"), claim("b", "2", "x", "y")) == []


def test_chained_rsgs_are_a_dag() -> None:
    assert reasons(claim("a", "1", "router", "prefill"), claim("b", "2", "prefill", "decode")) == []


def test_the_younger_rsg_loses_a_contested_target() -> None:
    older, younger = claim("a", "1", "router", "prefill"), claim("b", "2", "gateway", "prefill")
    assert reasons(older, younger) == []
    found = problems(younger, [older, younger])
    assert [p.reason for p in found] == [Reason.TARGET_CONFLICT]
    assert "Deployment ai/prefill" in found[0].message and "ai/a" in found[0].message


def test_same_object_in_another_api_version_is_the_same_target() -> None:
    older = Claim(("ai", "a"), "1", deploy("r"), (Member("apps/v1beta1", "Deployment", "ai", "p"),))
    assert reasons(claim("b", "2", "x", "p"), older) == [Reason.TARGET_CONFLICT]


def test_roles_of_one_object_are_distinct_members() -> None:
    rbg = [Member("workloads.x-k8s.io/v1alpha1", "RoleBasedGroup", "ai", "g", r) for r in "ab"]
    a = Claim(("ai", "a"), "1", deploy("r"), (rbg[0],))
    b = Claim(("ai", "b"), "2", deploy("s"), (rbg[1],))
    assert reasons(b, a) == []


def test_a_cycle_across_rsgs_stops_every_rsg_on_it() -> None:
    a = claim("a", "1", "router", "prefill")
    b = claim("b", "2", "prefill", "decode")
    c = claim("c", "3", "decode", "router")
    for mine in (a, b, c):
        found = problems(mine, [a, b, c])
        assert [p.reason for p in found] == [Reason.SOURCE_TARGET_CYCLE]
    assert "router -> Deployment ai/prefill -> Deployment ai/decode -> Deployment ai/router" in (
        problems(a, [a, b, c])[0].message
    )


def test_index_checks_only_the_claims_connected_to_mine() -> None:
    index = ClaimIndex()
    a = claim("a", "1", "router", "prefill")
    b = claim("b", "2", "prefill", "decode")
    far = claim("far", "3", "x", "y")
    for c in (a, b, far):
        index.put(c.rsg, c)
    assert [c.rsg for c in index.related(a)] == [("ai", "a"), ("ai", "b")]
    assert [c.rsg for c in index.related(far)] == [("ai", "far")]


def test_a_new_claim_wakes_its_whole_component_and_nothing_else() -> None:
    index = ClaimIndex()
    # A chain w -> x -> y -> z held by three RSGs; closing it into a cycle with a fourth
    # changes the verdict of all four, though "two" shares no member with "four".
    for c in (
        claim("one", "1", "w", "x"),
        claim("two", "2", "x", "y"),
        claim("three", "3", "y", "z"),
        claim("apart", "4", "p", "q"),
    ):
        index.put(c.rsg, c)
    closing = claim("four", "5", "z", "w")
    affected = index.put(closing.rsg, closing)
    assert affected == {("ai", n) for n in ("one", "two", "three", "four")}
    assert [p.reason for p in problems(closing, index.related(closing))] == [
        Reason.SOURCE_TARGET_CYCLE
    ]
    # Removing it wakes the same RSGs (their cycle is gone), and an unchanged claim none.
    assert index.put(closing.rsg, None) == affected
    assert index.put(("ai", "one"), claim("one", "1", "w", "x")) == set()
    assert len(index) == 4


def test_a_changed_claim_wakes_its_old_and_new_neighbours() -> None:
    index = ClaimIndex()
    index.put(("ai", "a"), claim("a", "1", "router", "prefill"))
    index.put(("ai", "b"), claim("b", "2", "prefill", "decode"))
    index.put(("ai", "c"), claim("c", "3", "other", "more"))
    moved = claim("a", "1", "router", "other")
    assert index.put(moved.rsg, moved) == {("ai", "a"), ("ai", "b"), ("ai", "c")}
    assert index.get(("ai", "a")) == moved


def grouped(rsg: str, created: str, *seeds: str) -> Claim:
    return Claim(("ai", rsg), created, seeds=tuple(deploy(s) for s in seeds))


def test_a_seed_member_belongs_to_its_group_replication_rsg_alone() -> None:
    older = grouped("a", "1", "prefill", "decode")
    for younger in (
        grouped("b", "2", "decode"),  # a seed member of another GroupReplication RSG
        claim("b", "2", "router", "decode"),  # a Target of an InplaceScaling RSG
        claim("b", "2", "decode", "router"),  # even only read, as a Source
    ):
        assert reasons(younger, older) == [Reason.MEMBER_CONFLICT]
        assert reasons(older, younger) == []  # the older one keeps it
    message = problems(grouped("b", "2", "decode"), [older])[0].message
    assert "Deployment ai/decode is already the seed member of RSG ai/a" in message


def test_a_role_and_its_whole_object_are_one_member() -> None:
    rbg = Member("workloads.x-k8s.io/v1alpha1", "RoleBasedGroup", "ai", "pool")
    older = Claim(("ai", "a"), "1", seeds=(rbg,))
    role = Member("workloads.x-k8s.io/v1alpha2", "RoleBasedGroup", "ai", "pool", "Decode")
    younger = Claim(("ai", "b"), "2", deploy("router"), (role,))
    assert reasons(younger, older) == [Reason.MEMBER_CONFLICT]
    prefill = Member("workloads.x-k8s.io/v1alpha2", "RoleBasedGroup", "ai", "pool", "prefill")
    other_role = Claim(("ai", "c"), "3", deploy("x"), (prefill,))
    assert reasons(other_role, younger) == []  # two roles of one RBG, two InplaceScaling RSGs


def test_sources_may_be_shared_and_chained() -> None:
    assert reasons(claim("b", "2", "router", "decode"), claim("a", "1", "router", "prefill")) == []
