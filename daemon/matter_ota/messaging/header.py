"""Message header and protocol (exchange) header codec, Matter Core spec 4.4.

Wire layout, all integers little endian::

    message header (4.4.1, authenticated but never encrypted)
      u8  message flags      version(7..4)=0 | S(2) source node id present | DSIZ(1..0)
      u16 session id         0 = unsecured session
      u8  security flags     P(7) privacy | C(6) control | MX(5) extensions | session type(1..0)
      u32 message counter
      u64 source node id                     if S
      u64 destination node id                if DSIZ == 1
      u16 destination group id               if DSIZ == 2
      u16 length + bytes  message extensions if MX
    protocol header (4.4.3, encrypted on secure sessions)
      u8  exchange flags     V(4) vendor | SX(3) secured extensions | R(2) | A(1) | I(0)
      u8  protocol opcode
      u16 exchange id
      u16 protocol vendor id                 if V
      u16 protocol id
      u32 acknowledged message counter       if A
      u16 length + bytes  secured extensions if SX
    application payload

Decoders raise :class:`MessageError` and nothing else on any input.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from matter_ota.messaging.errors import MessageError

# 4.4.1.2 Message Flags
_VERSION_MASK = 0xF0
_FLAG_S = 0x04
_DSIZ_MASK = 0x03
_DSIZ_NONE, _DSIZ_NODE, _DSIZ_GROUP = 0, 1, 2

# 4.4.1.4 Security Flags
SEC_FLAG_PRIVACY = 0x80
SEC_FLAG_CONTROL = 0x40
SEC_FLAG_EXTENSIONS = 0x20
_SESSION_TYPE_MASK = 0x03

# 4.4.3.1 Exchange Flags
EX_FLAG_INITIATOR = 0x01
EX_FLAG_ACK = 0x02
EX_FLAG_RELIABLE = 0x04
EX_FLAG_SECURED_EXTENSIONS = 0x08
EX_FLAG_VENDOR = 0x10

_FIXED = struct.Struct("<BHBI")
_PROTO_FIXED = struct.Struct("<BBH")
_PROTO_PLAIN = struct.Struct("<BBHH")
_PROTO_ACK = struct.Struct("<BBHHI")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

UNSECURED_SESSION_ID = 0

# A Matter message travels in one UDP datagram on a path with the IPv6 minimum MTU: 1280 bytes
# less the IPv6 (40) and UDP (8) headers (connectedhomeip: kMaxUDPAndIPHeaderSizeBytes = 48).
MAX_MESSAGE_SIZE = 1280 - 48
# Secure unicast overhead: message header 8, protocol header 6 + ack counter 4, MIC 16.
SECURE_OVERHEAD = 8 + 6 + 4 + 16
MAX_SECURE_PAYLOAD = MAX_MESSAGE_SIZE - SECURE_OVERHEAD
MAX_NODE_ID = 0xFFFF_FFFF_FFFF_FFFF


class SessionType(enum.IntEnum):
    """4.4.1.4: the session type carried in the low bits of the security flags."""

    UNICAST = 0
    GROUP = 1


_SESSION_TYPES = (SessionType.UNICAST, SessionType.GROUP)


def _check(value: int, bits: int, name: str) -> None:
    if not 0 <= value < (1 << bits):
        raise MessageError(f"{name} {value} does not fit in {bits} bits")


@dataclass(slots=True)
class MessageHeader:
    """The unencrypted message header (4.4.1)."""

    session_id: int
    message_counter: int
    session_type: SessionType = SessionType.UNICAST
    source_node_id: int | None = None
    dest_node_id: int | None = None
    dest_group_id: int | None = None
    privacy: bool = False
    control: bool = False
    extensions: bytes | None = None

    @property
    def security_flags(self) -> int:
        """The security flags byte, also the first byte of the AES-CCM nonce (4.7.2.1)."""
        return (
            int(self.session_type)
            | (SEC_FLAG_PRIVACY if self.privacy else 0)
            | (SEC_FLAG_CONTROL if self.control else 0)
            | (SEC_FLAG_EXTENSIONS if self.extensions is not None else 0)
        )

    @property
    def is_secure(self) -> bool:
        """True for messages of a secure (PASE/CASE/group) session."""
        return self.session_id != UNSECURED_SESSION_ID or self.session_type != SessionType.UNICAST

    def encode(self) -> bytes:
        """The header bytes; raises :class:`MessageError` for values that cannot be encoded."""
        _check(self.session_id, 16, "session id")
        _check(self.message_counter, 32, "message counter")
        if self.dest_node_id is not None and self.dest_group_id is not None:
            raise MessageError("destination node id and group id are exclusive")
        if self.dest_group_id is not None and self.session_type != SessionType.GROUP:
            raise MessageError("a group id needs the group session type")
        if self.dest_node_id is not None and self.session_type != SessionType.UNICAST:
            raise MessageError("a destination node id needs the unicast session type")
        flags = 0
        tail = b""
        if self.source_node_id is not None:
            _check(self.source_node_id, 64, "source node id")
            flags |= _FLAG_S
            tail += _U64.pack(self.source_node_id)
        if self.dest_node_id is not None:
            _check(self.dest_node_id, 64, "destination node id")
            flags |= _DSIZ_NODE
            tail += _U64.pack(self.dest_node_id)
        elif self.dest_group_id is not None:
            _check(self.dest_group_id, 16, "destination group id")
            flags |= _DSIZ_GROUP
            tail += _U16.pack(self.dest_group_id)
        if self.extensions is not None:
            _check(len(self.extensions), 16, "message extensions length")
            tail += _U16.pack(len(self.extensions)) + self.extensions
        head = _FIXED.pack(flags, self.session_id, self.security_flags, self.message_counter)
        return head + tail

    @classmethod
    def decode(cls, data: bytes) -> tuple[MessageHeader, int]:
        """Decode the header at the start of ``data``; returns it and the payload offset."""
        if len(data) < _FIXED.size:
            raise MessageError(f"message of {len(data)} bytes is shorter than a header")
        flags, session_id, sec, counter = _FIXED.unpack_from(data, 0)
        if not flags and not sec:  # the common case: unicast, no ids, no extensions
            return cls(session_id, counter), _FIXED.size
        if flags & _VERSION_MASK:
            raise MessageError(f"unsupported message version {flags >> 4}")
        if sec & _SESSION_TYPE_MASK > SessionType.GROUP:
            raise MessageError(f"reserved session type {sec & _SESSION_TYPE_MASK}")
        session_type = _SESSION_TYPES[sec & _SESSION_TYPE_MASK]
        reader = _Reader(data, _FIXED.size)
        source = reader.u64() if flags & _FLAG_S else None
        dsiz = flags & _DSIZ_MASK
        dest_node = dest_group = None
        if dsiz == _DSIZ_NODE:
            if session_type != SessionType.UNICAST:
                raise MessageError("destination node id on a group session")
            dest_node = reader.u64()
        elif dsiz == _DSIZ_GROUP:
            if session_type != SessionType.GROUP:
                raise MessageError("destination group id on a unicast session")
            dest_group = reader.u16()
        elif dsiz != _DSIZ_NONE:
            raise MessageError("reserved destination size 3")
        extensions = reader.block() if sec & SEC_FLAG_EXTENSIONS else None
        header = cls(
            session_id=session_id,
            message_counter=counter,
            session_type=session_type,
            source_node_id=source,
            dest_node_id=dest_node,
            dest_group_id=dest_group,
            privacy=bool(sec & SEC_FLAG_PRIVACY),
            control=bool(sec & SEC_FLAG_CONTROL),
            extensions=extensions,
        )
        return header, reader.offset


@dataclass(slots=True)
class ProtocolHeader:
    """The protocol (exchange) header (4.4.3) that starts every message payload.

    ``protocol_id`` is the 16-bit protocol id; ``vendor_id`` is present (V flag) only for
    vendor-specific protocols. :attr:`full_protocol_id` is ``vendor << 16 | protocol``.
    """

    protocol_id: int
    opcode: int
    exchange_id: int
    initiator: bool = False
    requires_ack: bool = False
    ack_counter: int | None = None
    vendor_id: int | None = None
    secured_extensions: bytes | None = None

    @property
    def full_protocol_id(self) -> int:
        """The 32-bit protocol id: vendor id in the upper 16 bits."""
        return ((self.vendor_id or 0) << 16) | self.protocol_id

    @property
    def exchange_flags(self) -> int:
        """The exchange flags byte."""
        flags = 0
        if self.initiator:
            flags |= EX_FLAG_INITIATOR
        if self.ack_counter is not None:
            flags |= EX_FLAG_ACK
        if self.requires_ack:
            flags |= EX_FLAG_RELIABLE
        if self.secured_extensions is not None:
            flags |= EX_FLAG_SECURED_EXTENSIONS
        if self.vendor_id is not None:
            flags |= EX_FLAG_VENDOR
        return flags

    def encode(self) -> bytes:
        """The header bytes; raises :class:`MessageError` for values that cannot be encoded."""
        if self.vendor_id is None and self.secured_extensions is None:
            return encode_protocol_header(
                self.protocol_id, self.opcode, self.exchange_id, self.initiator,
                self.requires_ack, self.ack_counter,
            )
        try:
            out = bytearray(_PROTO_FIXED.pack(self.exchange_flags, self.opcode, self.exchange_id))
            if self.vendor_id is not None:
                out += _U16.pack(self.vendor_id)
            out += _U16.pack(self.protocol_id)
            if self.ack_counter is not None:
                out += _U32.pack(self.ack_counter)
            if self.secured_extensions is not None:
                out += _U16.pack(len(self.secured_extensions)) + self.secured_extensions
            return bytes(out)
        except struct.error as exc:
            raise MessageError(f"protocol header field out of range: {exc}") from None

    @classmethod
    def decode(cls, data: bytes) -> tuple[ProtocolHeader, int]:
        """Decode the header at the start of ``data``; returns it and the payload offset."""
        size = len(data)
        if size < _PROTO_FIXED.size:
            raise MessageError(f"payload of {size} bytes is shorter than a protocol header")
        flags = data[0]
        if not flags & (EX_FLAG_VENDOR | EX_FLAG_SECURED_EXTENSIONS):
            # The common shapes (every message of the standard protocols): one unpack.
            initiator, reliable = bool(flags & EX_FLAG_INITIATOR), bool(flags & EX_FLAG_RELIABLE)
            if flags & EX_FLAG_ACK:
                if size < _PROTO_ACK.size:
                    raise MessageError("protocol header truncated")
                _, opcode, exchange_id, protocol_id, ack = _PROTO_ACK.unpack_from(data, 0)
                return cls(
                    protocol_id, opcode, exchange_id, initiator, reliable, ack
                ), _PROTO_ACK.size
            if size < _PROTO_PLAIN.size:
                raise MessageError("protocol header truncated")
            _, opcode, exchange_id, protocol_id = _PROTO_PLAIN.unpack_from(data, 0)
            return cls(protocol_id, opcode, exchange_id, initiator, reliable), _PROTO_PLAIN.size
        _, opcode, exchange_id = _PROTO_FIXED.unpack_from(data, 0)
        reader = _Reader(data, _PROTO_FIXED.size)
        vendor_id = reader.u16() if flags & EX_FLAG_VENDOR else None
        protocol_id = reader.u16()
        ack_counter = reader.u32() if flags & EX_FLAG_ACK else None
        secured = reader.block() if flags & EX_FLAG_SECURED_EXTENSIONS else None
        header = cls(
            protocol_id=protocol_id,
            opcode=opcode,
            exchange_id=exchange_id,
            initiator=bool(flags & EX_FLAG_INITIATOR),
            requires_ack=bool(flags & EX_FLAG_RELIABLE),
            ack_counter=ack_counter,
            vendor_id=vendor_id,
            secured_extensions=secured,
        )
        return header, reader.offset


def encode_protocol_header(
    protocol_id: int,
    opcode: int,
    exchange_id: int,
    initiator: bool,
    requires_ack: bool,
    ack_counter: int | None,
) -> bytes:
    """``ProtocolHeader(...).encode()`` for the common shapes (no vendor id, no secured
    extensions), packed in one call without building the object: every message sent on an
    exchange goes through here."""
    flags = (EX_FLAG_INITIATOR if initiator else 0) | (EX_FLAG_RELIABLE if requires_ack else 0)
    try:
        if ack_counter is None:
            return _PROTO_PLAIN.pack(flags, opcode, exchange_id, protocol_id)
        return _PROTO_ACK.pack(flags | EX_FLAG_ACK, opcode, exchange_id, protocol_id, ack_counter)
    except struct.error as exc:
        raise MessageError(f"protocol header field out of range: {exc}") from None


class _Reader:
    __slots__ = ("data", "offset")

    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.offset = offset

    def _take(self, fmt: struct.Struct) -> int:
        if self.offset + fmt.size > len(self.data):
            raise MessageError("header truncated")
        (value,) = fmt.unpack_from(self.data, self.offset)
        self.offset += fmt.size
        return int(value)

    def u16(self) -> int:
        return self._take(_U16)

    def u32(self) -> int:
        return self._take(_U32)

    def u64(self) -> int:
        return self._take(_U64)

    def block(self) -> bytes:
        length = self.u16()
        end = self.offset + length
        if end > len(self.data):
            raise MessageError("extension block truncated")
        value = bytes(self.data[self.offset : end])
        self.offset = end
        return value
