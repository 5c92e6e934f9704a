"""BDX messages on the wire, Matter Core spec 11.22 (protocol id 0x0002).

BDX is a byte protocol, not TLV: every field is a little-endian integer at a fixed place, the
widths of the range fields depend on flags, and the optional metadata (TLV) is whatever follows.

    SendInit / ReceiveInit    PTC u8 ‖ RC u8 ‖ PMBS u16 ‖ [STARTOFS u32/u64] ‖ [DEFLEN u32/u64]
                              ‖ FDL u16 ‖ FD ‖ metadata                                (11.22.5.1)
    SendAccept                TC u8 ‖ MBS u16 ‖ metadata                               (11.22.5.2)
    ReceiveAccept             TC u8 ‖ RC u8 ‖ MBS u16 ‖ [STARTOFS] ‖ [LEN] ‖ metadata   (11.22.5.3)
    BlockQuery/Ack/AckEOF     counter u32                                              (11.22.6)
    Block / BlockEOF          counter u32 ‖ data
    BlockQueryWithSkip        counter u32 ‖ bytes to skip u64

The spec's ReceiveAccept has no start offset; connectedhomeip writes one (flag STARTOFS) when
the accepted offset is not 0, so we read it when flagged and write it only when asked to.

Every decoder raises :class:`BdxError` and nothing else; the error carries the BDX status code
the peer should be told, so the node's one error path turns it into the StatusReport.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from matter_ota.messaging.status import GeneralCode, Protocol, StatusError, StatusReport

#: BDX protocol version we speak (11.22.5.1.1: "BDX Version 0").
BDX_VERSION = 0

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_COUNTER = _U32
_SKIP = struct.Struct("<IQ")
_INIT_FIXED = struct.Struct("<BBH")
_SEND_ACCEPT_FIXED = struct.Struct("<BH")
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF
_VERSION_MASK = 0x0F


class Opcode(enum.IntEnum):
    """BDX message types (11.22.3.1)."""

    SEND_INIT = 0x01
    SEND_ACCEPT = 0x02
    RECEIVE_INIT = 0x04
    RECEIVE_ACCEPT = 0x05
    BLOCK_QUERY = 0x10
    BLOCK = 0x11
    BLOCK_EOF = 0x12
    BLOCK_ACK = 0x13
    BLOCK_ACK_EOF = 0x14
    BLOCK_QUERY_WITH_SKIP = 0x15


class StatusCode(enum.IntEnum):
    """BDX protocol status codes carried in a StatusReport (11.22.4, Table "BDX Status Codes").

    Same values in connectedhomeip (bdx::StatusCode) and matter.js (BdxStatusCode).
    """

    LENGTH_TOO_LARGE = 0x0012
    LENGTH_TOO_SHORT = 0x0013
    LENGTH_MISMATCH = 0x0014
    LENGTH_REQUIRED = 0x0015
    BAD_MESSAGE_CONTENTS = 0x0016
    BAD_BLOCK_COUNTER = 0x0017
    UNEXPECTED_MESSAGE = 0x0018
    RESPONDER_BUSY = 0x0019
    TRANSFER_FAILED_UNKNOWN_ERROR = 0x001F
    TRANSFER_METHOD_NOT_SUPPORTED = 0x0050
    FILE_DESIGNATOR_UNKNOWN = 0x0051
    START_OFFSET_NOT_SUPPORTED = 0x0052
    VERSION_NOT_SUPPORTED = 0x0053
    UNKNOWN = 0x005F


class DriveMode(enum.IntFlag):
    """The transfer-control bits (11.22.5.1.1); the low nibble is the version."""

    SENDER_DRIVE = 0x10
    RECEIVER_DRIVE = 0x20
    ASYNC = 0x40


class RangeControl(enum.IntFlag):
    """The range-control bits (11.22.5.1.2)."""

    DEFINITE_LENGTH = 0x01
    START_OFFSET = 0x02
    WIDE_RANGE = 0x10


_MODE_MASK = int(DriveMode.SENDER_DRIVE | DriveMode.RECEIVER_DRIVE | DriveMode.ASYNC)


class BdxError(StatusError):
    """A BDX failure: ``code`` is the BDX status to report (general code FAILURE, 11.22.4)."""

    def __init__(self, code: StatusCode, reason: str) -> None:
        super().__init__(GeneralCode.FAILURE, Protocol.BDX, code, reason=reason)
        self.code = code


def status_report(code: StatusCode) -> StatusReport:
    """The StatusReport BDX sends for ``code``."""
    return StatusReport(GeneralCode.FAILURE, Protocol.BDX, int(code))


def _bad(reason: str) -> BdxError:
    return BdxError(StatusCode.BAD_MESSAGE_CONTENTS, reason)


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, fmt: struct.Struct) -> int:
        if len(self.data) - self.offset < fmt.size:
            raise _bad(f"{self.what} truncated at byte {len(self.data)}")
        (value,) = fmt.unpack_from(self.data, self.offset)
        self.offset += fmt.size
        return int(value)

    def take_bytes(self, size: int) -> bytes:
        if len(self.data) - self.offset < size:
            raise _bad(f"{self.what}: {size} bytes announced, {len(self.data) - self.offset} left")
        out = bytes(self.data[self.offset : self.offset + size])
        self.offset += size
        return out

    def rest(self) -> bytes:
        out = bytes(self.data[self.offset :])
        self.offset = len(self.data)
        return out


def _check_u(value: int, limit: int, name: str) -> None:
    if not 0 <= value <= limit:
        raise ValueError(f"{name} {value} out of range 0..{limit}")


def _control_byte(version: int, modes: DriveMode) -> int:
    _check_u(version, _VERSION_MASK, "version")
    return version | (int(modes) & _MODE_MASK)


def _range_fields(start_offset: int | None, length: int) -> tuple[int, bytes]:
    """Range-control byte and the offset/length fields, 32-bit unless a value needs 64."""
    offset = start_offset or 0
    _check_u(offset, U64_MAX, "start offset")
    _check_u(length, U64_MAX, "length")
    wide = offset > U32_MAX or length > U32_MAX
    fmt = _U64 if wide else _U32
    rc = RangeControl(0)
    fields = b""
    if start_offset is not None:
        rc |= RangeControl.START_OFFSET
        fields += fmt.pack(offset)
    if length:
        rc |= RangeControl.DEFINITE_LENGTH
        fields += fmt.pack(length)
    if wide:
        rc |= RangeControl.WIDE_RANGE
    return int(rc), fields


def _read_range(reader: _Reader, rc: int) -> tuple[int | None, int]:
    fmt = _U64 if rc & RangeControl.WIDE_RANGE else _U32
    offset = reader.take(fmt) if rc & RangeControl.START_OFFSET else None
    length = reader.take(fmt) if rc & RangeControl.DEFINITE_LENGTH else 0
    return offset, length


@dataclass(frozen=True, slots=True)
class TransferInit:
    """SendInit or ReceiveInit (same layout, 11.22.5.1).

    ``modes`` are the proposed drive modes, ``version`` the highest BDX version the initiator
    speaks, ``max_length`` 0 for an indefinite length, ``start_offset`` 0 for the beginning.
    """

    modes: DriveMode
    max_block_size: int
    file_designator: bytes
    start_offset: int = 0
    max_length: int = 0
    version: int = BDX_VERSION
    metadata: bytes = b""

    def encode(self) -> bytes:
        """The message payload."""
        _check_u(self.max_block_size, 0xFFFF, "max block size")
        _check_u(len(self.file_designator), 0xFFFF, "file designator length")
        rc, fields = _range_fields(self.start_offset or None, self.max_length)
        head = _INIT_FIXED.pack(_control_byte(self.version, self.modes), rc, self.max_block_size)
        designator = _U16.pack(len(self.file_designator)) + self.file_designator
        return head + fields + designator + self.metadata

    @classmethod
    def decode(cls, data: bytes) -> TransferInit:
        """Parse a SendInit/ReceiveInit payload; :class:`BdxError` if malformed."""
        reader = _Reader(data, "TransferInit")
        ptc = reader.take(_U8)
        rc = reader.take(_U8)
        max_block_size = reader.take(_U16)
        offset, length = _read_range(reader, rc)
        designator = reader.take_bytes(reader.take(_U16))
        return cls(
            modes=DriveMode(ptc & _MODE_MASK),
            max_block_size=max_block_size,
            file_designator=designator,
            start_offset=offset or 0,
            max_length=length,
            version=ptc & _VERSION_MASK,
            metadata=reader.rest(),
        )


@dataclass(frozen=True, slots=True)
class SendAccept:
    """The responder's answer to a SendInit (11.22.5.2): exactly one drive mode chosen."""

    mode: DriveMode
    max_block_size: int
    version: int = BDX_VERSION
    metadata: bytes = b""

    def encode(self) -> bytes:
        _check_u(self.max_block_size, 0xFFFF, "max block size")
        control = _control_byte(self.version, self.mode)
        return _SEND_ACCEPT_FIXED.pack(control, self.max_block_size) + self.metadata

    @classmethod
    def decode(cls, data: bytes) -> SendAccept:
        reader = _Reader(data, "SendAccept")
        tc = reader.take(_U8)
        max_block_size = reader.take(_U16)
        return cls(DriveMode(tc & _MODE_MASK), max_block_size, tc & _VERSION_MASK, reader.rest())


@dataclass(frozen=True, slots=True)
class ReceiveAccept:
    """The responder's answer to a ReceiveInit (11.22.5.3).

    ``length`` 0 means indefinite. ``start_offset`` is written only when not None (see the
    module docstring: connectedhomeip echoes an accepted non-zero offset).
    """

    mode: DriveMode
    max_block_size: int
    length: int = 0
    start_offset: int | None = None
    version: int = BDX_VERSION
    metadata: bytes = b""

    def encode(self) -> bytes:
        _check_u(self.max_block_size, 0xFFFF, "max block size")
        rc, fields = _range_fields(self.start_offset, self.length)
        head = _INIT_FIXED.pack(_control_byte(self.version, self.mode), rc, self.max_block_size)
        return head + fields + self.metadata

    @classmethod
    def decode(cls, data: bytes) -> ReceiveAccept:
        reader = _Reader(data, "ReceiveAccept")
        tc = reader.take(_U8)
        rc = reader.take(_U8)
        max_block_size = reader.take(_U16)
        offset, length = _read_range(reader, rc)
        return cls(
            mode=DriveMode(tc & _MODE_MASK),
            max_block_size=max_block_size,
            length=length,
            start_offset=offset,
            version=tc & _VERSION_MASK,
            metadata=reader.rest(),
        )


@dataclass(frozen=True, slots=True)
class CounterMessage:
    """BlockQuery, BlockAck or BlockAckEOF: just the block counter (11.22.6.2/6.4/6.6)."""

    counter: int

    def encode(self) -> bytes:
        return _COUNTER.pack(self.counter)

    @classmethod
    def decode(cls, data: bytes) -> CounterMessage:
        if len(data) != _COUNTER.size:
            raise _bad(f"counter message of {len(data)} bytes, expected 4")
        return cls(_COUNTER.unpack(data)[0])


@dataclass(frozen=True, slots=True)
class BlockQueryWithSkip:
    """BlockQuery that first moves the sender's position ``bytes_to_skip`` ahead (11.22.6.3)."""

    counter: int
    bytes_to_skip: int

    def encode(self) -> bytes:
        return _SKIP.pack(self.counter, self.bytes_to_skip)

    @classmethod
    def decode(cls, data: bytes) -> BlockQueryWithSkip:
        if len(data) != _SKIP.size:
            raise _bad(f"BlockQueryWithSkip of {len(data)} bytes, expected 12")
        counter, skip = _SKIP.unpack(data)
        return cls(counter, skip)


@dataclass(frozen=True, slots=True)
class DataBlock:
    """Block or BlockEOF: the counter and the data (11.22.6.4/6.5)."""

    counter: int
    data: bytes

    def encode(self) -> bytes:
        return encode_block(self.counter, self.data)

    @classmethod
    def decode(cls, data: bytes) -> DataBlock:
        if len(data) < _COUNTER.size:
            raise _bad(f"block of {len(data)} bytes has no counter")
        return cls(_COUNTER.unpack_from(data, 0)[0], bytes(data[_COUNTER.size :]))


def encode_block(counter: int, data: bytes | memoryview) -> bytes:
    """A Block/BlockEOF payload without building a :class:`DataBlock` first."""
    return _COUNTER.pack(counter) + data


#: Block header bytes in front of the data (the counter).
BLOCK_OVERHEAD = _COUNTER.size

BdxMessage = (
    TransferInit | SendAccept | ReceiveAccept | CounterMessage | BlockQueryWithSkip | DataBlock
)

_DECODERS: dict[Opcode, type[TransferInit | SendAccept | ReceiveAccept | CounterMessage
                             | BlockQueryWithSkip | DataBlock]] = {
    Opcode.SEND_INIT: TransferInit,
    Opcode.RECEIVE_INIT: TransferInit,
    Opcode.SEND_ACCEPT: SendAccept,
    Opcode.RECEIVE_ACCEPT: ReceiveAccept,
    Opcode.BLOCK_QUERY: CounterMessage,
    Opcode.BLOCK_ACK: CounterMessage,
    Opcode.BLOCK_ACK_EOF: CounterMessage,
    Opcode.BLOCK_QUERY_WITH_SKIP: BlockQueryWithSkip,
    Opcode.BLOCK: DataBlock,
    Opcode.BLOCK_EOF: DataBlock,
}


def decode(opcode: int, payload: bytes) -> BdxMessage:
    """Decode the payload of BDX message ``opcode``; :class:`BdxError` on anything wrong."""
    try:
        kind = _DECODERS[Opcode(opcode)]
    except ValueError:
        raise BdxError(
            StatusCode.UNEXPECTED_MESSAGE, f"unknown BDX opcode 0x{opcode:02x}"
        ) from None
    return kind.decode(payload)
