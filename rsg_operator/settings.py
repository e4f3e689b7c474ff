"""Operator-wide settings, set once from the command line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    # SPEC §5: targets outside the RSG's namespace only with an explicit opt-in.
    allow_cross_namespace: bool = False
    # Periodic re-check of every RSG, so that a target created later is noticed.
    resync_seconds: float = 30.0
