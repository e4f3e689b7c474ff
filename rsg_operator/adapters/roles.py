"""Roles of a multi-role object (RoleBasedGroup: `spec.roles[i].{name,replicas}`), and a
role whose replicas RBG's scaling adapter holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsg_operator import members
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

    @property
    def written(self) -> dict[str, Any]:
        """The object whose replica field RSG writes."""
        return self.obj

    @property
    def field(self) -> str:
        return f"spec.roles[{self.name}].replicas"

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

    def running(self) -> members.Running | None:
        return members.running(self.obj, self.name)


@dataclass
class AdapterScaler:
    """A role with RBG's scaling adapter enabled, whose adapter exists: RBG runs the role
    at the adapter's `spec.replicas`, so that is what RSG reads and writes (through the
    adapter's /scale), as the HPA or KEDA would; what runs is still the role's status."""

    cluster: Cluster
    member: Member
    role: RoleScaler
    adapter: dict[str, Any]  # as last seen

    @property
    def written(self) -> dict[str, Any]:
        return self.adapter

    @property
    def field(self) -> str:
        return "spec.replicas"

    async def read(self) -> int:
        replicas = (self.adapter.get("spec") or {}).get("replicas")
        # Not set yet: RBG runs the role at its own count until it is.
        return await self.role.read() if replicas is None else int(replicas)

    async def write(self, replicas: int) -> int:
        return await self.cluster.scale(self.adapter, replicas, "/spec/replicas")

    def running(self) -> members.Running | None:
        return self.role.running()

    def describe(self) -> str:
        meta = self.adapter["metadata"]
        return f"{self.adapter['kind']} {meta.get('namespace')}/{meta['name']}"
