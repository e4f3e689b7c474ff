"""Replicas another writer keeps setting back, and counts a workload does not take up.
Pure: the caller passes the clock.

InplaceScaling sets each Target to ceil(Source x ratio). If something else writes the
same replicas (an HPA aimed at the Target, a GitOps sync, RBG's scaling adapter), the two
would write the field back and forth forever, each write a rollout decision for GPU pods.
`Members` remembers, per member, what RSG last wrote and each time the value was found
set back to something else since; once that happened `CONTESTED_AFTER` times within
`WINDOW` seconds, RSG writes the member at most once per `MIN_INTERVAL` until a whole
`WINDOW` passes without a set-back. It also dates, per member, a count the workload runs
that differs from the one written, so that a mismatch is reported only once it has lasted
`NOT_TAKEN_UP_AFTER` seconds (a workload's status lags its spec by a moment).
"""

from __future__ import annotations

from dataclasses import dataclass, field

WINDOW = 300.0  # seconds in which set-backs are counted
CONTESTED_AFTER = 2  # set-backs within WINDOW that make a member contested
MIN_INTERVAL = 30.0  # a contested member is written at most this often (2 a minute)
NOT_TAKEN_UP_AFTER = 10.0  # a count not run for this long is reported


@dataclass
class _Member:
    written: int | None = None  # the replicas RSG last wrote
    written_at: float = 0.0
    seen: str | None = None  # resourceVersion of the state a set-back was counted on
    setbacks: list[float] = field(default_factory=list)
    # Who set it back, as the object said when it was found set back (its managedFields
    # name the last writer of the field only, which after RSG's next write is RSG).
    setter: str = ""
    mismatch_since: float | None = None  # when what runs was first seen to differ


@dataclass(frozen=True)
class Verdict:
    """Whether to write a member now, and what to say about it."""

    write: bool  # send the write now
    contested: bool  # set back again and again: writes are rationed
    setbacks: int  # within the window
    retry_in: float | None = None  # when a withheld write may go


@dataclass
class Members:
    """What RSG knows of its writes to each member of one RSG (keyed by member id)."""

    members: dict[str, _Member] = field(default_factory=dict)

    def before_write(
        self,
        member: str,
        current: int,
        desired: int,
        version: str,
        now: float,
        setter: str = "",
    ) -> Verdict:
        """`member`'s replicas are `current` (object at `version`, whose replica field
        `setter` wrote last) and should be `desired`: count a set-back if RSG had written
        `desired` and it is `current` now, and say whether the write may go."""
        state = self.members.setdefault(member, _Member())
        state.setbacks = [t for t in state.setbacks if now - t < WINDOW]
        if state.written == desired and current != desired and state.seen != version:
            state.setbacks.append(now)  # someone wrote it back since our write
            state.seen = version
            state.setter = setter or state.setter
        contested = len(state.setbacks) >= CONTESTED_AFTER
        if not contested:
            return Verdict(True, False, len(state.setbacks))
        wait = state.written_at + MIN_INTERVAL - now
        if wait <= 0:
            return Verdict(True, True, len(state.setbacks))
        return Verdict(False, True, len(state.setbacks), wait)

    def wrote(self, member: str, replicas: int, now: float) -> None:
        state = self.members.setdefault(member, _Member())
        state.written, state.written_at = replicas, now

    def contested(self, member: str, now: float) -> str | None:
        """Who keeps setting `member` back ("" if unknown), if it is contested, else None."""
        state = self.members.get(member)
        if state is None:
            return None
        recent = [t for t in state.setbacks if now - t < WINDOW]
        return state.setter if len(recent) >= CONTESTED_AFTER else None

    def not_taken_up(self, member: str, differs: bool, now: float) -> float | None:
        """Track whether what `member` runs differs from what it should run; returns for
        how long it has (None: it does not), so that a lag of a moment is not reported."""
        state = self.members.setdefault(member, _Member())
        if not differs:
            state.mismatch_since = None
            return None
        if state.mismatch_since is None:
            state.mismatch_since = now
        return now - state.mismatch_since
