"""Roles of a multi-role object (RoleBasedGroup: `spec.roles[i].{name,replicas}`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsg_operator.api import Member
from rsg_operator.cluster import Cluster
from rsg_operator.kinds import role_named


@dataclass
class RoleScaler:
    cluster: Cluster
    member: Member
    obj: dict[str, Any]  # as last seen
    name: str  # the role's name in the object
    index: int
    replicas: int  # as read with the object

    @classmethod
    def of(cls, cluster: Cluster, member: Member, obj: dict[str, Any]) -> RoleScaler:
        """The scaler of `member.role` in `obj` (the object as last seen)."""
        assert member.role is not None
        name = role_named(obj, member.role)  # the object's own spelling of the role
        roles = (obj.get("spec") or {}).get("roles") or []
        index = next(i for i, r in enumerate(roles) if r.get("name") == name)
        return cls(cluster, member, obj, name, index, int(roles[index].get("replicas") or 0))

    async def read(self) -> int:
        return self.replicas

    async def write(self, replicas: int) -> int:
        # A JSON patch of this one role's replicas, guarded by a test of its name: a
        # concurrent change of another role is not overwritten, and a reordering of
        # roles makes the patch fail (422) instead of scaling the wrong role.
        patched = await self.cluster.json_patch(
            self.obj,
            [
                {"op": "test", "path": f"/spec/roles/{self.index}/name", "value": self.name},
                {"op": "add", "path": f"/spec/roles/{self.index}/replicas", "value": replicas},
            ],
        )
        self.obj = patched
        self.replicas = int(patched["spec"]["roles"][self.index].get("replicas") or 0)
        return self.replicas
