"""The ResourceScalingGroup API: wire models, validation, and the one internal form.

`parse_spec` accepts every form SPEC §2 allows (flat or `targetRef` targets,
`groupName` alias, ratios as numbers or decimal strings) and returns a `RSGSpec`
whose shape no longer depends on how the user wrote it. Every rule that needs only
this one object lives here, mirrored by the CRD's schema and CEL rules so that the
apiserver rejects the same specs at admission. Pure: no I/O, no Kubernetes client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from rsg_operator.kinds import api_group, match

GROUP = "resourcescalinggroup.com"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ResourceScalingGroup"
PLURAL = "resourcescalinggroups"

# Bounds shared with crds/resourcescalinggroups.yaml (tests/unit/test_crd.py keeps them equal).
MAX_TARGETS = 32
MAX_ROLES_PER_TARGET = 16
MAX_BINDINGS = 32
MAX_CANDIDATES = 100
MAX_GROUPS = 999
MAX_PREFIX_LENGTH = 40
# A clone is named "<prefix>-<index>-<target name>" with up to three index digits;
# kept within a DNS label (63) so that it is valid for every kind, Services included.
MAX_CLONE_NAME_LENGTH = 63
# An RSG's name is a label value on every object it manages (the CRD refuses longer).
MAX_NAME_LENGTH = 63
CLONE_NAME_OVERHEAD = len("-") + len(str(MAX_GROUPS)) + len("-")

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
API_VERSION_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?$"
KIND_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"


class StrategyType(StrEnum):
    GROUP_REPLICATION = "GroupReplication"
    INPLACE_SCALING = "InplaceScaling"


class ScaleDownPolicy(StrEnum):
    ORDERED = "Ordered"
    NEWEST = "Newest"
    OLDEST = "Oldest"


class BindingRole(StrEnum):
    SOURCE = "Source"
    TARGET = "Target"


class SpecError(ValueError):
    """A spec that breaks an API rule; each problem names the field it is about."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {message}" for path, message in problems))


# --------------------------------------------------------------------------- wire models


class _Wire(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=False
    )


DnsSubdomain = Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL)]
ApiVersionStr = Annotated[str, Field(min_length=1, max_length=253, pattern=API_VERSION_PATTERN)]
KindStr = Annotated[str, Field(min_length=1, max_length=63, pattern=KIND_PATTERN)]
StrictInt = Annotated[int, Field(strict=True)]


class WireTargetRef(_Wire):
    api_version: ApiVersionStr
    kind: KindStr
    name: DnsSubdomain


class WireSubResource(_Wire):
    role_name: Annotated[str, Field(min_length=1, max_length=63)]


class WireTargetResource(_Wire):
    name: DnsSubdomain | None = None
    namespace: DnsLabel | None = None
    api_version: ApiVersionStr | None = None
    kind: KindStr | None = None
    target_ref: WireTargetRef | None = None
    sub_resources: Annotated[list[WireSubResource], Field(max_length=MAX_ROLES_PER_TARGET)] = []

    @model_validator(mode="after")
    def _one_form(self) -> WireTargetResource:
        if self.target_ref is not None:
            if self.api_version is not None or self.kind is not None:
                raise ValueError("targetRef: give apiVersion/kind either flat or in targetRef")
        else:
            missing = [
                field
                for field, value in (
                    ("name", self.name),
                    ("apiVersion", self.api_version),
                    ("kind", self.kind),
                )
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"{', '.join(missing)}: required "
                    "(or give targetRef with apiVersion, kind, name)"
                )
        roles = [s.role_name for s in self.sub_resources]
        duplicates = sorted({r for r in roles if roles.count(r) > 1})
        if duplicates:
            raise ValueError(f"subResources: duplicate roleName {', '.join(duplicates)}")
        return self


class WireScaleDown(_Wire):
    policy: ScaleDownPolicy = ScaleDownPolicy.ORDERED
    candidates: Annotated[list[DnsLabel], Field(max_length=MAX_CANDIDATES)] = []
    drain_timeout_seconds: Annotated[StrictInt, Field(ge=0)] = 0

    @field_validator("candidates")
    @classmethod
    def _unique(cls, candidates: list[str]) -> list[str]:
        duplicates = sorted({c for c in candidates if candidates.count(c) > 1})
        if duplicates:
            raise ValueError(f"duplicate candidates {', '.join(duplicates)}")
        return candidates


Prefix = Annotated[str, Field(min_length=1, max_length=MAX_PREFIX_LENGTH, pattern=DNS_LABEL)]


class WireGroupConfig(_Wire):
    group_name_prefix: Prefix | None = None
    group_name: Prefix | None = None
    replicas: Annotated[StrictInt, Field(ge=0, le=MAX_GROUPS)] = 1
    scale_down: WireScaleDown = WireScaleDown()

    @model_validator(mode="after")
    def _prefix(self) -> WireGroupConfig:
        if self.group_name_prefix is None and self.group_name is None:
            raise ValueError("groupNamePrefix: required (groupName is accepted as an alias)")
        if (
            self.group_name_prefix is not None
            and self.group_name is not None
            and self.group_name_prefix != self.group_name
        ):
            raise ValueError("groupNamePrefix: differs from its alias groupName")
        return self

    @property
    def prefix(self) -> str:
        prefix = self.group_name_prefix or self.group_name
        assert prefix is not None  # guaranteed by _prefix
        return prefix


class WireBinding(_Wire):
    name: Annotated[str, Field(min_length=1, max_length=253)]
    role: BindingRole
    ratio: Any = None

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, value: Any) -> Any:
        if value is None:
            return None
        parse_ratio(value)
        return value


def parse_ratio(value: Any) -> Decimal:
    """A ratio as written (number or decimal string) -> exact Decimal, >= 0."""
    if isinstance(value, bool):
        raise ValueError(f"ratio must be a number or a decimal string, not {value!r}")
    if isinstance(value, str):
        if not re.fullmatch(DECIMAL_PATTERN, value.strip()):
            raise ValueError(f'ratio {value!r} is not a non-negative decimal such as "2.5"')
        return Decimal(value.strip())
    if isinstance(value, int | float):
        try:
            ratio = Decimal(str(value))
        except InvalidOperation as error:  # nan, inf
            raise ValueError(f"ratio {value!r} is not a finite number") from error
        if not ratio.is_finite():
            raise ValueError(f"ratio {value!r} is not a finite number")
        if ratio < 0:
            raise ValueError(f"ratio {value!r} is negative; it must be >= 0")
        return ratio
    raise ValueError(f"ratio must be a number or a decimal string, not {type(value).__name__}")


class WireInplaceConfig(_Wire):
    bindings: Annotated[list[WireBinding], Field(min_length=1, max_length=MAX_BINDINGS)]

    @model_validator(mode="after")
    def _bindings(self) -> WireInplaceConfig:
        sources = [b.name for b in self.bindings if b.role is BindingRole.SOURCE]
        if len(sources) != 1:
            raise ValueError(
                f"bindings: exactly one binding must have role Source, found {len(sources)}"
            )
        names = [b.name for b in self.bindings]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"bindings: duplicate name {', '.join(duplicates)}")
        for binding in self.bindings:
            if binding.role is BindingRole.SOURCE and binding.ratio is not None:
                raise ValueError(f"bindings: ratio is not allowed on the Source {binding.name!r}")
        return self


class WireScalingStrategy(_Wire):
    type: StrategyType
    group_config: WireGroupConfig | None = None
    inplace_config: WireInplaceConfig | None = None

    @model_validator(mode="after")
    def _config_matches_type(self) -> WireScalingStrategy:
        grouped = self.type is StrategyType.GROUP_REPLICATION
        if grouped and self.group_config is None:
            raise ValueError("groupConfig: required when type is GroupReplication")
        if not grouped and self.group_config is not None:
            raise ValueError(
                "groupConfig: not allowed when type is InplaceScaling "
                "(an InplaceScaling RSG has no group count to scale; scale its Source instead)"
            )
        if not grouped and self.inplace_config is None:
            raise ValueError("inplaceConfig: required when type is InplaceScaling")
        if grouped and self.inplace_config is not None:
            raise ValueError("inplaceConfig: not allowed when type is GroupReplication")
        return self


class WireSpec(_Wire):
    target_resources: Annotated[
        list[WireTargetResource], Field(min_length=1, max_length=MAX_TARGETS)
    ]
    scaling_strategy: WireScalingStrategy


# --------------------------------------------------------------------------- internal form


@dataclass(frozen=True)
class Target:
    """One entry of spec.targetResources, in one form whichever way it was written."""

    id: str  # local id, referenced by bindings
    name: str  # the object's name
    namespace: str | None  # None: the RSG's namespace
    api_version: str
    kind: str
    roles: tuple[str, ...] = ()

    def namespace_or(self, default: str) -> str:
        return self.namespace or default

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass(frozen=True)
class Member:
    """One scalable thing: a whole object, or one role inside a multi-role object."""

    api_version: str
    kind: str
    namespace: str
    name: str
    role: str | None = None

    @property
    def identity(self) -> tuple[str, str, str, str, str | None]:
        """Who this is whatever API version names it and however the role's case is
        written: (group, kind, namespace, name, role)."""
        return (
            api_group(self.api_version),
            self.kind,
            self.namespace,
            self.name,
            None if self.role is None else self.role.casefold(),
        )

    def describe(self) -> str:
        where = f"{self.kind} {self.namespace}/{self.name}"
        return f"{where} role {self.role}" if self.role else where


@dataclass(frozen=True)
class ScaleDown:
    policy: ScaleDownPolicy = ScaleDownPolicy.ORDERED
    candidates: tuple[str, ...] = ()
    drain_timeout_seconds: int = 0


@dataclass(frozen=True)
class GroupReplication:
    prefix: str
    replicas: int = 1
    scale_down: ScaleDown = ScaleDown()
    type: Literal[StrategyType.GROUP_REPLICATION] = StrategyType.GROUP_REPLICATION


@dataclass(frozen=True)
class Binding:
    """A Source or Target binding, resolved to the target (and role) it names."""

    name: str
    role: BindingRole
    ratio: Decimal | None  # None on the Source
    target_id: str
    role_name: str | None = None  # set when the binding names a subResources role


@dataclass(frozen=True)
class InplaceScaling:
    bindings: tuple[Binding, ...]
    type: Literal[StrategyType.INPLACE_SCALING] = StrategyType.INPLACE_SCALING

    @property
    def source(self) -> Binding:
        return next(b for b in self.bindings if b.role is BindingRole.SOURCE)

    @property
    def targets(self) -> tuple[Binding, ...]:
        return tuple(b for b in self.bindings if b.role is BindingRole.TARGET)


@dataclass(frozen=True)
class RSGSpec:
    targets: tuple[Target, ...]
    strategy: GroupReplication | InplaceScaling

    def target(self, target_id: str) -> Target:
        return next(t for t in self.targets if t.id == target_id)

    def member(self, binding: Binding, rsg_namespace: str) -> Member:
        """The object (and role) a binding names, with the namespace defaulted."""
        target = self.target(binding.target_id)
        return Member(
            api_version=target.api_version,
            kind=target.kind,
            namespace=target.namespace_or(rsg_namespace),
            name=target.name,
            role=binding.role_name,
        )


DEFAULT_TARGET_RATIO = Decimal(1)


def check_name(name: str) -> None:
    """Raise SpecError if `name` cannot be an RSG's name (SPEC: a label value)."""
    if len(name) > MAX_NAME_LENGTH:
        raise SpecError(
            [
                (
                    "metadata.name",
                    f"must be at most {MAX_NAME_LENGTH} characters (it is {len(name)}): RSG "
                    "puts it in a label on every object it manages",
                )
            ]
        )


def parse_spec(raw: Any) -> RSGSpec:
    """Validate a raw `spec` mapping and return its internal form, or raise SpecError."""
    try:
        wire = WireSpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError([_problem(e) for e in error.errors()]) from None
    targets = tuple(_target(t) for t in wire.target_resources)
    problems = _target_problems(targets)
    strategy: GroupReplication | InplaceScaling
    if wire.scaling_strategy.group_config is not None:
        strategy = _group_replication(wire.scaling_strategy.group_config)
        problems += _clone_name_problems(strategy.prefix, targets)
    else:
        assert wire.scaling_strategy.inplace_config is not None
        strategy, binding_problems = _inplace(wire.scaling_strategy.inplace_config, targets)
        problems += binding_problems
    if problems:
        raise SpecError(problems)
    return RSGSpec(targets=targets, strategy=strategy)


def _target(wire: WireTargetResource) -> Target:
    roles = tuple(s.role_name for s in wire.sub_resources)
    if wire.target_ref is not None:
        ref = wire.target_ref
        return Target(
            id=wire.name or ref.name,
            name=ref.name,
            namespace=wire.namespace,
            api_version=ref.api_version,
            kind=ref.kind,
            roles=roles,
        )
    assert wire.name and wire.api_version and wire.kind  # guaranteed by _one_form
    return Target(
        id=wire.name,
        name=wire.name,
        namespace=wire.namespace,
        api_version=wire.api_version,
        kind=wire.kind,
        roles=roles,
    )


def _target_problems(targets: tuple[Target, ...]) -> list[tuple[str, str]]:
    problems = []
    seen: dict[tuple[str, str, str | None], int] = {}
    for index, target in enumerate(targets):
        key = (target.kind, target.name, target.namespace)
        if key in seen:
            problems.append(
                (
                    f"spec.targetResources[{index}]",
                    f"duplicate target {target.kind} {target.name} (also at index {seen[key]})",
                )
            )
        seen.setdefault(key, index)
    return problems


def _group_replication(wire: WireGroupConfig) -> GroupReplication:
    return GroupReplication(
        prefix=wire.prefix,
        replicas=wire.replicas,
        scale_down=ScaleDown(
            policy=wire.scale_down.policy,
            candidates=tuple(wire.scale_down.candidates),
            drain_timeout_seconds=wire.scale_down.drain_timeout_seconds,
        ),
    )


def _clone_name_problems(prefix: str, targets: tuple[Target, ...]) -> list[tuple[str, str]]:
    budget = MAX_CLONE_NAME_LENGTH - CLONE_NAME_OVERHEAD
    return [
        (
            "spec.scalingStrategy.groupConfig.groupNamePrefix",
            f"prefix {prefix!r} with target name {t.name!r} makes clone names longer than "
            f"{MAX_CLONE_NAME_LENGTH} characters; keep len(prefix) + len(name) <= {budget}",
        )
        for t in targets
        if len(prefix) + len(t.name) > budget
    ]


def _inplace(
    wire: WireInplaceConfig, targets: tuple[Target, ...]
) -> tuple[InplaceScaling, list[tuple[str, str]]]:
    bindings = []
    problems = []
    for index, binding in enumerate(wire.bindings):
        path = f"spec.scalingStrategy.inplaceConfig.bindings[{index}].name"
        try:
            target_id, role_name = resolve_binding(binding.name, targets)
        except LookupError as error:
            problems.append((path, str(error)))
            continue
        ratio = None
        if binding.role is BindingRole.TARGET:
            ratio = DEFAULT_TARGET_RATIO if binding.ratio is None else parse_ratio(binding.ratio)
        bindings.append(
            Binding(
                name=binding.name,
                role=binding.role,
                ratio=ratio,
                target_id=target_id,
                role_name=role_name,
            )
        )
    seen: dict[tuple[str, str | None], str] = {}
    for resolved in bindings:
        key = (resolved.target_id, resolved.role_name)
        if key in seen:
            problems.append(
                (
                    "spec.scalingStrategy.inplaceConfig.bindings",
                    f"bindings {seen[key]!r} and {resolved.name!r} name the same "
                    f"{'role' if resolved.role_name else 'target'}",
                )
            )
        seen.setdefault(key, resolved.name)
    return InplaceScaling(bindings=tuple(bindings)), problems


def resolve_binding(name: str, targets: tuple[Target, ...]) -> tuple[str, str | None]:
    """A binding name -> (target id, role name or None), as SPEC §4 resolves it.

    Exact match on a target id or a subResources roleName first; then a unique
    case-insensitive match (so a binding `decode` finds the role `Decode`).
    """
    candidates: list[tuple[str, str | None, str]] = [(t.id, None, t.id) for t in targets]
    candidates += [(t.id, role, role) for t in targets for role in t.roles]
    found = match(name, candidates, lambda c: c[2])
    if len(found) == 1:
        return found[0][0], found[0][1]
    if len(found) > 1 and found[0][2] == name:
        raise LookupError(f"binding {name!r} matches {len(found)} targets/roles; rename one")
    if len(found) > 1:
        raise LookupError(
            f"binding {name!r} matches {len(found)} targets/roles case-insensitively; "
            "use the exact name"
        )
    known = ", ".join(sorted({label for _, _, label in candidates}))
    raise LookupError(
        f"binding {name!r} names no targetResource or subResources roleName (known: {known})"
    )


def _problem(error: Any) -> tuple[str, str]:
    location = "spec"
    for part in error["loc"]:
        location += f"[{part}]" if isinstance(part, int) else f".{part}"
    message = str(error["msg"]).removeprefix("Value error, ")
    # Model-level validators name their field at the start of the message.
    field, sep, rest = message.partition(": ")
    if sep and re.fullmatch(r"[A-Za-z.]+", field):
        return f"{location}.{field}", rest
    return location, message
