"""The data model the Interaction Model server serves: endpoints, clusters, attributes, commands.

A cluster is a :class:`Cluster` subclass: class constants ``ID`` and ``REVISION``, its
attributes from :meth:`Cluster.attributes`, its commands as methods decorated with
:func:`command`. :class:`DataModel` holds the endpoints and the one command dispatch table
``{(cluster id, command id): CommandSpec(handler, privilege, timed, ...)}``. Handlers report
failures by raising :class:`IMStatusError`; the server turns it into the path's status.

Global attributes (7.13): ClusterRevision, FeatureMap, AttributeList, AcceptedCommandList and
GeneratedCommandList are derived here for every cluster. EventList (0xFFFA) was removed in
Matter 1.3 and is not served.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from matter_ota import tlv
from matter_ota.im.acl import Privilege, Subject
from matter_ota.im.messages import Status
from matter_ota.messaging.session import SecureSession

# 7.13 global attribute ids
CLUSTER_REVISION = 0xFFFD
FEATURE_MAP = 0xFFFC
ATTRIBUTE_LIST = 0xFFFB
ACCEPTED_COMMAND_LIST = 0xFFF9
GENERATED_COMMAND_LIST = 0xFFF8
GLOBAL_ATTRIBUTES = (GENERATED_COMMAND_LIST, ACCEPTED_COMMAND_LIST, ATTRIBUTE_LIST, FEATURE_MAP,
                     CLUSTER_REVISION)


class IMStatusError(Exception):
    """A failure on one path, reported to the client as that path's IM status."""

    def __init__(self, status: Status, cluster_status: int | None = None,
                 reason: str = "") -> None:
        self.status = status
        self.cluster_status = cluster_status
        self.reason = reason
        super().__init__(reason or status.name)


class Nullable(tlv.FieldType):
    """A nullable attribute or struct member: None <-> TLV null."""

    def __init__(self, inner: tlv.FieldType) -> None:
        self.inner = inner
        self.name = f"nullable {inner.name}"

    def to_value(self, v: Any, where: str) -> Any:
        return None if v is None else self.inner.to_value(v, where)

    def from_value(self, v: Any, where: str) -> Any:
        return None if v is None else self.inner.from_value(v, where)


@dataclass(frozen=True, slots=True)
class Context:
    """Who is reading, writing or invoking, and when."""

    subject: Subject
    session: SecureSession | None
    endpoint: int
    now: float
    fabric_filtered: bool = True

    @property
    def fabric_index(self) -> int:
        return self.subject.fabric_index


ReadFn = Callable[[Context], Any]
WriteFn = Callable[[Context, Any], None]


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute: its TLV type, how to read it, and (if writable) how to write it."""

    id: int
    type: tlv.FieldType
    read: ReadFn
    write: WriteFn | None = None
    read_privilege: Privilege = Privilege.VIEW
    write_privilege: Privilege = Privilege.OPERATE
    timed_write: bool = False
    fabric_scoped: bool = False


def constant(attr_id: int, type_: tlv.FieldType | type[tlv.Struct], value: Any) -> Attribute:
    """A read-only attribute with a fixed value."""
    return Attribute(attr_id, _field_type(type_), lambda _ctx: value)


def _field_type(t: tlv.FieldType | type[tlv.Struct]) -> tlv.FieldType:
    return tlv.ArrayOf(t).inner


Handler = Callable[[Any, Context, Any], "tlv.Struct | None"]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A command's dispatch entry: the handler (an unbound method of the cluster class), the
    privilege and whether it needs a timed interaction, its request schema and response id."""

    cluster_id: int
    command_id: int
    handler: Handler
    request: type[tlv.Struct]
    privilege: Privilege = Privilege.OPERATE
    timed: bool = False
    response_id: int | None = None


F = TypeVar("F", bound=Callable[..., Any])


def command(command_id: int, request: type[tlv.Struct], *,
            privilege: Privilege = Privilege.OPERATE, timed: bool = False,
            response_id: int | None = None) -> Callable[[F], F]:
    """Declare a cluster method as the handler of ``command_id``.

    The method is called as ``handler(cluster, context, request)`` and returns the response
    struct (sent as command ``response_id``) or None for a plain SUCCESS status.
    """
    def mark(fn: F) -> F:
        fn.__im_command__ = (command_id, request, privilege, timed, response_id)  # type: ignore[attr-defined]
        return fn
    return mark


class Cluster:
    """Base of server clusters. Subclasses set ``ID``, ``REVISION`` and maybe ``FEATURE_MAP``."""

    ID: ClassVar[int]
    REVISION: ClassVar[int]
    FEATURE_MAP: ClassVar[int] = 0
    COMMANDS: ClassVar[dict[int, CommandSpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        commands: dict[int, CommandSpec] = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                meta = getattr(value, "__im_command__", None)
                if meta is not None:
                    cid, request, privilege, timed, response_id = meta
                    commands[cid] = CommandSpec(cls.ID if hasattr(cls, "ID") else -1, cid,
                                                value, request, privilege, timed, response_id)
        cls.COMMANDS = commands

    def __init__(self) -> None:
        # 7.10.3: a data version starts at a random value.
        self.data_version = secrets.randbits(32)
        self.endpoint: Endpoint | None = None
        self._attributes: dict[int, Attribute] | None = None

    def attributes(self) -> Sequence[Attribute]:
        """The cluster-specific attributes (not the global ones)."""
        return ()

    def attribute(self, attr_id: int) -> Attribute | None:
        """The attribute with this id, global ones included."""
        if self._attributes is None:
            table = {a.id: a for a in self.attributes()}
            table.update({a.id: a for a in self._globals()})
            self._attributes = table
        return self._attributes.get(attr_id)

    def attribute_ids(self) -> list[int]:
        """AttributeList: every attribute id, global ones included, ascending."""
        self.attribute(CLUSTER_REVISION)
        assert self._attributes is not None
        return sorted(self._attributes)

    def accepted_commands(self) -> list[int]:
        return sorted(self.COMMANDS)

    def generated_commands(self) -> list[int]:
        return sorted({c.response_id for c in self.COMMANDS.values()
                       if c.response_id is not None})

    def changed(self, attr_id: int | None = None) -> None:
        """Record a change: bump the data version (7.10.3) and tell subscribers."""
        self.data_version = (self.data_version + 1) & 0xFFFF_FFFF
        if self.endpoint is not None and self.endpoint.model is not None:
            self.endpoint.model.notify(self.endpoint.id, self.ID, attr_id)

    def _globals(self) -> list[Attribute]:
        u32_list = tlv.ArrayOf(tlv.U32)
        return [
            constant(CLUSTER_REVISION, tlv.U16, self.REVISION),
            constant(FEATURE_MAP, tlv.U32, self.FEATURE_MAP),
            Attribute(ATTRIBUTE_LIST, u32_list, lambda _c: self.attribute_ids()),
            Attribute(ACCEPTED_COMMAND_LIST, u32_list, lambda _c: self.accepted_commands()),
            Attribute(GENERATED_COMMAND_LIST, u32_list, lambda _c: self.generated_commands()),
        ]


@dataclass(frozen=True, slots=True)
class DeviceType:
    """DeviceTypeStruct (9.5.5.1)."""

    id: int
    revision: int


@dataclass
class Endpoint:
    """One endpoint: its device types and server clusters."""

    id: int
    device_types: list[DeviceType]
    clusters: dict[int, Cluster] = field(default_factory=dict)
    model: DataModel | None = None

    def add(self, cluster: Cluster) -> Cluster:
        if cluster.ID in self.clusters:
            raise ValueError(f"cluster 0x{cluster.ID:04X} already on endpoint {self.id}")
        cluster.endpoint = self
        self.clusters[cluster.ID] = cluster
        if self.model is not None:
            self.model.register_commands(cluster)
        return cluster


ChangeListener = Callable[[int, int, "int | None"], None]


class DataModel:
    """All endpoints of the node and the command dispatch table."""

    def __init__(self) -> None:
        self.endpoints: dict[int, Endpoint] = {}
        self.commands: dict[tuple[int, int], CommandSpec] = {}
        self._listeners: list[ChangeListener] = []

    def add_endpoint(self, endpoint: Endpoint) -> Endpoint:
        if endpoint.id in self.endpoints:
            raise ValueError(f"endpoint {endpoint.id} already exists")
        endpoint.model = self
        self.endpoints[endpoint.id] = endpoint
        for cluster in endpoint.clusters.values():
            self.register_commands(cluster)
        return endpoint

    def register_commands(self, cluster: Cluster) -> None:
        """Enter a cluster's commands in the dispatch table (one entry per cluster type)."""
        for spec in cluster.COMMANDS.values():
            self.commands.setdefault((cluster.ID, spec.command_id), spec)

    def cluster(self, endpoint_id: int, cluster_id: int) -> Cluster | None:
        ep = self.endpoints.get(endpoint_id)
        return None if ep is None else ep.clusters.get(cluster_id)

    def device_types(self, endpoint_id: int) -> list[int]:
        ep = self.endpoints.get(endpoint_id)
        return [] if ep is None else [d.id for d in ep.device_types]

    def iter_clusters(self) -> Iterator[tuple[Endpoint, Cluster]]:
        for ep_id in sorted(self.endpoints):
            ep = self.endpoints[ep_id]
            for cl_id in sorted(ep.clusters):
                yield ep, ep.clusters[cl_id]

    def subscribe_changes(self, listener: ChangeListener) -> None:
        """Call ``listener(endpoint, cluster, attribute or None)`` on every change."""
        self._listeners.append(listener)

    def notify(self, endpoint: int, cluster: int, attribute: int | None) -> None:
        for listener in self._listeners:
            listener(endpoint, cluster, attribute)
