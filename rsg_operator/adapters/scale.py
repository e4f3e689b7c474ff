"""Members scaled through their /scale subresource (Deployment, StatefulSet, scalable CRDs)."""

from __future__ import annotations

from dataclasses import dataclass

from rsg_operator.api import Member
from rsg_operator.kube import Kube


@dataclass
class ScaleSubresource:
    kube: Kube
    member: Member
    path: str  # the object's path; /scale is appended

    async def read(self) -> int:
        scale = await self.kube.request("GET", f"{self.path}/scale")
        return int((scale.get("spec") or {}).get("replicas") or 0)

    async def write(self, replicas: int) -> None:
        await self.kube.merge_patch(f"{self.path}/scale", {"spec": {"replicas": replicas}})
