"""How a member's replicas are read and written, per kind, in one place.

- A role of a multi-role object (RoleBasedGroup `spec.roles[i].replicas`): `RoleScaler`.
- Anything with a `/scale` subresource (Deployment, StatefulSet, any scalable CRD such
  as LeaderWorkerSet, found through discovery): `ScaleSubresource`.
"""

from __future__ import annotations

from typing import Any, Protocol

from rsg_operator.adapters.roles import RoleScaler
from rsg_operator.adapters.scale import ScaleSubresource
from rsg_operator.api import Member
from rsg_operator.cluster import Cluster


class NotScalable(LookupError):
    """The member has neither a /scale subresource nor the named role."""


class Scaler(Protocol):
    member: Member

    async def read(self) -> int:
        """Desired replicas now (as last seen)."""
        ...

    async def write(self, replicas: int) -> int:
        """Set desired replicas, touching nothing else of the object; returns the
        replicas the server answered with."""
        ...


async def scaler_for(cluster: Cluster, member: Member, obj: dict[str, Any]) -> Scaler:
    """The scaler of a member whose object, as last seen, is `obj`."""
    if member.role is not None:
        return RoleScaler.of(cluster, member, obj)
    resource = await cluster.resource(member.api_version, member.kind)
    if "scale" not in resource.subresources:
        raise NotScalable(
            f"{member.describe()}: kind {member.kind} ({member.api_version}) has no scale "
            "subresource; name one of its roles, or use a scalable kind"
        )
    return ScaleSubresource(cluster, member, obj)


__all__ = ["NotScalable", "RoleScaler", "ScaleSubresource", "Scaler", "scaler_for"]
