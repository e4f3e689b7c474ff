"""Roles of a multi-role object (RoleBasedGroup: `spec.roles[i].{name,replicas}`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsg_operator.api import Member
from rsg_operator.kube import Kube


@dataclass
class RoleScaler:
    kube: Kube
    member: Member
    path: str
    index: int
    replicas: int  # as read with the object

    @classmethod
    def of(cls, kube: Kube, member: Member, path: str, obj: dict[str, Any]) -> RoleScaler:
        """The scaler of `member.role` in `obj` (the object as just read from `path`)."""
        roles = (obj.get("spec") or {}).get("roles") or []
        index = next(i for i, r in enumerate(roles) if r.get("name") == member.role)
        return cls(kube, member, path, index, int(roles[index].get("replicas") or 0))

    async def read(self) -> int:
        return self.replicas

    async def write(self, replicas: int) -> None:
        # A JSON patch of this one role's replicas, guarded by a test of its name: a
        # concurrent change of another role is not overwritten, and a reordering of
        # roles makes the patch fail (422) instead of scaling the wrong role.
        await self.kube.json_patch(
            self.path,
            [
                {"op": "test", "path": f"/spec/roles/{self.index}/name", "value": self.member.role},
                {"op": "add", "path": f"/spec/roles/{self.index}/replicas", "value": replicas},
            ],
        )
        self.replicas = replicas
