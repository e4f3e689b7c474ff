"""Members scaled through their /scale subresource (Deployment, StatefulSet, scalable CRDs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rsg_operator import kinds, members
from rsg_operator.api import Member
from rsg_operator.cluster import Cluster


@dataclass
class ScaleSubresource:
    cluster: Cluster
    member: Member
    obj: dict[str, Any]  # as last seen

    @property
    def written(self) -> dict[str, Any]:
        return self.obj

    @property
    def field(self) -> str:
        return "spec.replicas"

    async def read(self) -> int:
        pointer = kinds.scale_replicas(self.member.api_version, self.member.kind)
        if pointer is None:
            return await self.cluster.read_scale(self.obj)
        node: Any = self.obj
        for part in pointer.strip("/").split("/"):
            node = (node or {}).get(part)
        # Omitted replicas mean the kind's default, 1, as /scale reports it.
        return 1 if node is None else int(node)

    async def write(self, replicas: int) -> int:
        pointer = kinds.scale_replicas(self.member.api_version, self.member.kind)
        written = await self.cluster.scale(self.obj, replicas, pointer)
        self.obj = self.cluster.latest(self.obj)
        return written

    def running(self) -> members.Running | None:
        return members.running(self.obj)
