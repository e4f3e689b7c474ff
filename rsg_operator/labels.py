"""The labels and annotations RSG puts on objects, and group ids. One place builds them."""

from __future__ import annotations

import re

PREFIX = "resourcescalinggroup.com"
NAME = f"{PREFIX}/name"
GROUP_ID = f"{PREFIX}/group-id"
GROUP_INDEX = f"{PREFIX}/group-index"
# On a seed member taken to 0 with its group: the replica counts to restore (JSON).
SEED_REPLICAS = f"{PREFIX}/seed-replicas"
# On a clone: a hash of what it was made from, so a changed seed is seen as one.
TEMPLATE_HASH = f"{PREFIX}/template-hash"

# Two-phase removal (SPEC §3): on every member object of a draining group, the label a
# gateway selects on, and when the drain began (RFC 3339); the gateway's acknowledgement
# ("drained", value "true") on any member ends the drain early.
DRAINING = f"{PREFIX}/draining"
DRAIN_STARTED = f"{PREFIX}/drain-started"
DRAINED = f"{PREFIX}/drained"
TRUE = "true"

SEED_INDEX = 1


def group_id(prefix: str, index: int) -> str:
    """Group ids are zero-padded to two digits: -01, -02, -10, -100."""
    return f"{prefix}-{index:02d}"


def group_index(prefix: str, group: str) -> int | None:
    """The index of a group id of this prefix, or None if it is not one."""
    match = re.fullmatch(re.escape(prefix) + r"-(\d{2,})", group)
    if match is None or (len(match[1]) > 2 and match[1].startswith("0")):
        return None
    return int(match[1])


def clone_name(prefix: str, index: int, name: str) -> str:
    return f"{group_id(prefix, index)}-{name}"


def group_labels(rsg: str, prefix: str, index: int) -> dict[str, str]:
    return {NAME: rsg, GROUP_ID: group_id(prefix, index), GROUP_INDEX: str(index)}


def clones_selector(rsg: str) -> str:
    """Label selector of an RSG's clones (every group but the seed)."""
    return f"{NAME}={rsg},{GROUP_INDEX}!={SEED_INDEX}"
