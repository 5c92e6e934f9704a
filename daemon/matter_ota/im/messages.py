"""Interaction Model messages and information blocks, Matter Core spec 10.6 (IBs) and 10.7.

Every message is an anonymous TLV structure ending with InteractionModelRevision (context tag
0xFF, 10.6.1). Paths (AttributePathIB, EventPathIB, CommandPathIB, ClusterPathIB) are TLV
*lists*; everything else is a structure. The schemas here are :class:`matter_ota.tlv.Struct`
dataclasses; ``Message.decode(payload)`` raises :class:`IMError` and nothing else on any input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from matter_ota import tlv

# 8.1.1 / connectedhomeip SpecificationDefinedRevisions.h: Matter 1.4 is IM revision 12.
IM_REVISION = 12
IM_REVISION_TAG = 0xFF


class IMError(ValueError):
    """A malformed Interaction Model message (answered with INVALID_ACTION, 8.10.1)."""


class Opcode(enum.IntEnum):
    """Interaction Model protocol (0x0001) opcodes, 10.2.1."""

    STATUS_RESPONSE = 0x01
    READ_REQUEST = 0x02
    SUBSCRIBE_REQUEST = 0x03
    SUBSCRIBE_RESPONSE = 0x04
    REPORT_DATA = 0x05
    WRITE_REQUEST = 0x06
    WRITE_RESPONSE = 0x07
    INVOKE_REQUEST = 0x08
    INVOKE_RESPONSE = 0x09
    TIMED_REQUEST = 0x0A


class Status(enum.IntEnum):
    """Interaction Model status codes, 8.10.1 (deprecated and reserved values left out)."""

    SUCCESS = 0x00
    FAILURE = 0x01
    INVALID_SUBSCRIPTION = 0x7D
    UNSUPPORTED_ACCESS = 0x7E
    UNSUPPORTED_ENDPOINT = 0x7F
    INVALID_ACTION = 0x80
    UNSUPPORTED_COMMAND = 0x81
    INVALID_COMMAND = 0x85
    UNSUPPORTED_ATTRIBUTE = 0x86
    CONSTRAINT_ERROR = 0x87
    UNSUPPORTED_WRITE = 0x88
    RESOURCE_EXHAUSTED = 0x89
    NOT_FOUND = 0x8B
    UNREPORTABLE_ATTRIBUTE = 0x8C
    INVALID_DATA_TYPE = 0x8D
    UNSUPPORTED_READ = 0x8F
    DATA_VERSION_MISMATCH = 0x92
    TIMEOUT = 0x94
    BUSY = 0x9C
    ACCESS_RESTRICTED = 0x9D
    UNSUPPORTED_CLUSTER = 0xC3
    NO_UPSTREAM_SUBSCRIPTION = 0xC5
    NEEDS_TIMED_INTERACTION = 0xC6
    UNSUPPORTED_EVENT = 0xC7
    PATHS_EXHAUSTED = 0xC8
    TIMED_REQUEST_MISMATCH = 0xC9
    FAILSAFE_REQUIRED = 0xCA
    INVALID_IN_STATE = 0xCB
    NO_COMMAND_RESPONSE = 0xCC
    DYNAMIC_CONSTRAINT_ERROR = 0xCF
    ALREADY_EXISTS = 0xD0
    INVALID_TRANSPORT_TYPE = 0xD1


def status_name(code: int) -> str:
    """``UNSUPPORTED_ENDPOINT`` for 0x7F, the number for unknown codes."""
    try:
        return Status(code).name
    except ValueError:
        return f"0x{code:02X}"


class _Decodes(tlv.Struct):
    """Schemas whose ``decode`` raises :class:`IMError` instead of ``TLVError``."""

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Self:
        try:
            return cls.from_value(tlv.decode(data))
        except (tlv.TLVError, TypeError, ValueError) as exc:
            raise IMError(f"{cls.__name__}: {exc}") from None


# -- paths (TLV lists) ---------------------------------------------------------------------------


@dataclass(kw_only=True)
class AttributePathIB(tlv.ListStruct, _Decodes):
    """10.6.2: None fields are wildcards. ``list_append`` encodes ListIndex as null (append)."""

    enable_tag_compression: bool | None = tlv.field(0, tlv.Bool, optional=True)
    node: int | None = tlv.field(1, tlv.U64, optional=True)
    endpoint: int | None = tlv.field(2, tlv.U16, optional=True)
    cluster: int | None = tlv.field(3, tlv.U32, optional=True)
    attribute: int | None = tlv.field(4, tlv.U32, optional=True)
    list_index: int | None = tlv.field(5, tlv.U16, optional=True)
    list_append: bool = field(default=False)

    _LIST_INDEX: ClassVar[int] = 5

    def to_value(self) -> Any:
        value = super().to_value()
        if self.list_append and self.list_index is None:
            value.append((self._LIST_INDEX, None))
        return value

    @classmethod
    def from_value(cls, value: Any, where: str | None = None) -> Self:
        members = value
        append = False
        if isinstance(value, tlv.TLVList):
            # ListIndex null means "append"; the generic schema would drop the distinction.
            append = any(t == cls._LIST_INDEX and v is None for t, v in value)
            members = tlv.TLVList((t, v) for t, v in value if not (
                t == cls._LIST_INDEX and v is None))
        path = super().from_value(members, where)
        path.list_append = append
        return path

    @property
    def is_wildcard(self) -> bool:
        """True if any of endpoint, cluster or attribute is a wildcard."""
        return self.endpoint is None or self.cluster is None or self.attribute is None


@dataclass(kw_only=True)
class ClusterPathIB(tlv.ListStruct):
    """10.6.7."""

    node: int | None = tlv.field(0, tlv.U64, optional=True)
    endpoint: int | None = tlv.field(1, tlv.U16, optional=True)
    cluster: int | None = tlv.field(2, tlv.U32, optional=True)


@dataclass(kw_only=True)
class EventPathIB(tlv.ListStruct):
    """10.6.8."""

    node: int | None = tlv.field(0, tlv.U64, optional=True)
    endpoint: int | None = tlv.field(1, tlv.U16, optional=True)
    cluster: int | None = tlv.field(2, tlv.U32, optional=True)
    event: int | None = tlv.field(3, tlv.U32, optional=True)
    is_urgent: bool | None = tlv.field(4, tlv.Bool, optional=True)


@dataclass(kw_only=True)
class CommandPathIB(tlv.ListStruct):
    """10.6.11: all three parts are mandatory for the commands we serve."""

    endpoint: int = tlv.field(0, tlv.U16)
    cluster: int = tlv.field(1, tlv.U32)
    command: int = tlv.field(2, tlv.U32)


# -- structures ----------------------------------------------------------------------------------


@dataclass(kw_only=True)
class StatusIB(tlv.Struct):
    """10.6.17."""

    status: int = tlv.field(0, tlv.U16)
    cluster_status: int | None = tlv.field(1, tlv.U8, optional=True)


@dataclass(kw_only=True)
class DataVersionFilterIB(tlv.Struct):
    """10.6.3."""

    path: ClusterPathIB = tlv.field(0, ClusterPathIB)
    data_version: int = tlv.field(1, tlv.U32)


@dataclass(kw_only=True)
class AttributeDataIB(tlv.Struct):
    """10.6.4: ``data`` is the attribute's TLV value."""

    data_version: int | None = tlv.field(0, tlv.U32, optional=True)
    path: AttributePathIB = tlv.field(1, AttributePathIB)
    data: Any = tlv.field(2, tlv.AnyType, nullable=True)


@dataclass(kw_only=True)
class AttributeStatusIB(tlv.Struct):
    """10.6.16."""

    path: AttributePathIB = tlv.field(0, AttributePathIB)
    status: StatusIB = tlv.field(1, StatusIB)


@dataclass(kw_only=True)
class AttributeReportIB(tlv.Struct):
    """10.6.5: exactly one of the two is present."""

    attribute_status: AttributeStatusIB | None = tlv.field(0, AttributeStatusIB, optional=True)
    attribute_data: AttributeDataIB | None = tlv.field(1, AttributeDataIB, optional=True)


@dataclass(kw_only=True)
class EventFilterIB(tlv.Struct):
    """10.6.6."""

    node: int | None = tlv.field(0, tlv.U64, optional=True)
    event_min: int = tlv.field(1, tlv.U64)


@dataclass(kw_only=True)
class EventStatusIB(tlv.Struct):
    """10.6.15."""

    path: EventPathIB = tlv.field(0, EventPathIB)
    status: StatusIB = tlv.field(1, StatusIB)


@dataclass(kw_only=True)
class EventReportIB(tlv.Struct):
    """10.6.9: we serve no events, so only statuses are ever sent."""

    event_status: EventStatusIB | None = tlv.field(0, EventStatusIB, optional=True)
    event_data: Any = tlv.field(1, tlv.AnyType, optional=True)


@dataclass(kw_only=True)
class CommandDataIB(tlv.Struct):
    """10.6.12: ``fields`` is the command's TLV structure."""

    path: CommandPathIB = tlv.field(0, CommandPathIB)
    fields: Any = tlv.field(1, tlv.AnyType, optional=True)
    command_ref: int | None = tlv.field(2, tlv.U16, optional=True)


@dataclass(kw_only=True)
class CommandStatusIB(tlv.Struct):
    """10.6.14."""

    path: CommandPathIB = tlv.field(0, CommandPathIB)
    status: StatusIB = tlv.field(1, StatusIB)
    command_ref: int | None = tlv.field(2, tlv.U16, optional=True)


@dataclass(kw_only=True)
class InvokeResponseIB(tlv.Struct):
    """10.6.13: exactly one of the two is present."""

    command: CommandDataIB | None = tlv.field(0, CommandDataIB, optional=True)
    status: CommandStatusIB | None = tlv.field(1, CommandStatusIB, optional=True)


# -- messages (10.7) -----------------------------------------------------------------------------


def _revision() -> Any:
    return tlv.field(IM_REVISION_TAG, tlv.U8, optional=True, default=IM_REVISION)


@dataclass(kw_only=True)
class StatusResponse(_Decodes):
    """10.7.1."""

    OPCODE: ClassVar[Opcode] = Opcode.STATUS_RESPONSE
    status: int = tlv.field(0, tlv.U16)
    revision: int | None = _revision()


@dataclass(kw_only=True)
class ReadRequest(_Decodes):
    """10.7.2."""

    OPCODE: ClassVar[Opcode] = Opcode.READ_REQUEST
    attribute_requests: list[AttributePathIB] | None = tlv.field(
        0, tlv.ArrayOf(AttributePathIB), optional=True)
    event_requests: list[EventPathIB] | None = tlv.field(
        1, tlv.ArrayOf(EventPathIB), optional=True)
    event_filters: list[EventFilterIB] | None = tlv.field(
        2, tlv.ArrayOf(EventFilterIB), optional=True)
    fabric_filtered: bool = tlv.field(3, tlv.Bool)
    data_version_filters: list[DataVersionFilterIB] | None = tlv.field(
        4, tlv.ArrayOf(DataVersionFilterIB), optional=True)
    revision: int | None = _revision()


@dataclass(kw_only=True)
class SubscribeRequest(_Decodes):
    """10.7.3 (tag 6, IsProxy, is reserved)."""

    OPCODE: ClassVar[Opcode] = Opcode.SUBSCRIBE_REQUEST
    keep_subscriptions: bool = tlv.field(0, tlv.Bool)
    min_interval_floor: int = tlv.field(1, tlv.U16)
    max_interval_ceiling: int = tlv.field(2, tlv.U16)
    attribute_requests: list[AttributePathIB] | None = tlv.field(
        3, tlv.ArrayOf(AttributePathIB), optional=True)
    event_requests: list[EventPathIB] | None = tlv.field(
        4, tlv.ArrayOf(EventPathIB), optional=True)
    event_filters: list[EventFilterIB] | None = tlv.field(
        5, tlv.ArrayOf(EventFilterIB), optional=True)
    fabric_filtered: bool = tlv.field(7, tlv.Bool)
    data_version_filters: list[DataVersionFilterIB] | None = tlv.field(
        8, tlv.ArrayOf(DataVersionFilterIB), optional=True)
    revision: int | None = _revision()


@dataclass(kw_only=True)
class SubscribeResponse(_Decodes):
    """10.7.4 (tag 1, MinIntervalFloor, is reserved)."""

    OPCODE: ClassVar[Opcode] = Opcode.SUBSCRIBE_RESPONSE
    subscription_id: int = tlv.field(0, tlv.U32)
    max_interval: int = tlv.field(2, tlv.U16)
    revision: int | None = _revision()


@dataclass(kw_only=True)
class ReportData(_Decodes):
    """10.7.5."""

    OPCODE: ClassVar[Opcode] = Opcode.REPORT_DATA
    subscription_id: int | None = tlv.field(0, tlv.U32, optional=True)
    attribute_reports: list[AttributeReportIB] | None = tlv.field(
        1, tlv.ArrayOf(AttributeReportIB), optional=True)
    event_reports: list[EventReportIB] | None = tlv.field(
        2, tlv.ArrayOf(EventReportIB), optional=True)
    more_chunked_messages: bool | None = tlv.field(3, tlv.Bool, optional=True)
    suppress_response: bool | None = tlv.field(4, tlv.Bool, optional=True)
    revision: int | None = _revision()


@dataclass(kw_only=True)
class WriteRequest(_Decodes):
    """10.7.6."""

    OPCODE: ClassVar[Opcode] = Opcode.WRITE_REQUEST
    suppress_response: bool | None = tlv.field(0, tlv.Bool, optional=True)
    timed_request: bool = tlv.field(1, tlv.Bool)
    write_requests: list[AttributeDataIB] = tlv.field(2, tlv.ArrayOf(AttributeDataIB))
    more_chunked_messages: bool | None = tlv.field(3, tlv.Bool, optional=True)
    revision: int | None = _revision()


@dataclass(kw_only=True)
class WriteResponse(_Decodes):
    """10.7.7."""

    OPCODE: ClassVar[Opcode] = Opcode.WRITE_RESPONSE
    write_responses: list[AttributeStatusIB] = tlv.field(0, tlv.ArrayOf(AttributeStatusIB))
    revision: int | None = _revision()


@dataclass(kw_only=True)
class InvokeRequest(_Decodes):
    """10.7.9."""

    OPCODE: ClassVar[Opcode] = Opcode.INVOKE_REQUEST
    suppress_response: bool = tlv.field(0, tlv.Bool)
    timed_request: bool = tlv.field(1, tlv.Bool)
    invoke_requests: list[CommandDataIB] = tlv.field(2, tlv.ArrayOf(CommandDataIB))
    revision: int | None = _revision()


@dataclass(kw_only=True)
class InvokeResponse(_Decodes):
    """10.7.10."""

    OPCODE: ClassVar[Opcode] = Opcode.INVOKE_RESPONSE
    suppress_response: bool = tlv.field(0, tlv.Bool)
    invoke_responses: list[InvokeResponseIB] = tlv.field(1, tlv.ArrayOf(InvokeResponseIB))
    more_chunked_messages: bool | None = tlv.field(2, tlv.Bool, optional=True)
    revision: int | None = _revision()


@dataclass(kw_only=True)
class TimedRequest(_Decodes):
    """10.7.8: ``timeout`` in milliseconds."""

    OPCODE: ClassVar[Opcode] = Opcode.TIMED_REQUEST
    timeout: int = tlv.field(0, tlv.U16)
    revision: int | None = _revision()
