"""How a member's replicas are read and written, per kind, in one place.

- A role of a multi-role object (RoleBasedGroup `spec.roles[i].replicas`): `RoleScaler`;
  a role whose RBG scaling adapter is enabled and exists: `AdapterScaler` (its /scale).
- Anything with a `/scale` subresource (Deployment, StatefulSet, any scalable CRD such
  as LeaderWorkerSet, found through discovery): `ScaleSubresource`.

Each also says what its workload runs (`running`, from its status), which is what RSG
reports, and which object and field it writes (`written`, `field`), whose other writers
RSG names when they hold the count.
"""

from __future__ import annotations

from typing import Any, Protocol

from rsg_operator import api, kinds, members
from rsg_operator.adapters.roles import AdapterScaler, RoleScaler
from rsg_operator.adapters.scale import ScaleSubresource
from rsg_operator.api import Member
from rsg_operator.cluster import Cluster
from rsg_operator.informers import Selection
from rsg_operator.kube import UnknownKind


class NotScalable(LookupError):
    """The member has neither a /scale subresource nor the named role."""


class Scaler(Protocol):
    member: Member

    @property
    def written(self) -> dict[str, Any]:
        """The object RSG writes the replicas of."""
        ...

    @property
    def field(self) -> str:
        """The replica field written, as `Cluster.writers` names it."""
        ...

    async def read(self) -> int:
        """Desired replicas now (as last seen)."""
        ...

    async def write(self, replicas: int) -> int:
        """Set desired replicas, touching nothing else of the object; returns the
        replicas the server answered with."""
        ...

    def running(self) -> members.Running | None:
        """What the workload reports it runs, if its status says."""
        ...


async def scaler_for(cluster: Cluster, member: Member, obj: dict[str, Any]) -> Scaler:
    """The scaler of a member whose object, as last seen, is `obj`. For a role, the
    adapters `adapter_selections` named must be watched already."""
    if member.role is not None:
        role = RoleScaler.of(cluster, member, obj)
        adapter = await _adapter(cluster, obj, role.name)
        return role if adapter is None else AdapterScaler(cluster, member, role, adapter)
    resource = await cluster.resource(member.api_version, member.kind)
    if "scale" not in resource.subresources:
        raise NotScalable(
            f"{member.describe()}: kind {member.kind} ({member.api_version}) has no scale "
            "subresource; name one of its roles, or use a scalable kind"
        )
    return ScaleSubresource(cluster, member, obj)


def adapter_selections(
    spec: api.RSGSpec, objects: dict[str, dict[str, Any]], namespace: str
) -> list[Selection]:
    """The scaling adapters of the roles the spec names that enable one: watched, so
    that an adapter appearing or going away wakes the RSG."""
    found = []
    for target in spec.targets:
        obj = objects.get(target.id)
        for role in target.roles if obj is not None else ():
            try:
                adapter = kinds.scaling_adapter(obj or {}, kinds.role_named(obj or {}, role))
            except LookupError:
                continue
            if adapter is not None:
                api_version, kind, name = adapter
                found.append(Selection(api_version, kind, target.namespace_or(namespace), name))
    return found


async def _adapter(cluster: Cluster, obj: dict[str, Any], role: str) -> dict[str, Any] | None:
    """The role's scaling adapter, if the role enables one and it exists (a kind RBG
    has not installed counts as none)."""
    adapter = kinds.scaling_adapter(obj, role)
    if adapter is None:
        return None
    api_version, kind, name = adapter
    try:
        return await cluster.get(api_version, kind, obj["metadata"]["namespace"], name)
    except UnknownKind:
        return None


__all__ = [
    "AdapterScaler",
    "NotScalable",
    "RoleScaler",
    "ScaleSubresource",
    "Scaler",
    "adapter_selections",
    "scaler_for",
]
