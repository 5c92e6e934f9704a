"""StatusReport messages, Matter Core spec Appendix D, and the codes they carry.

A StatusReport is sent as the Secure Channel message 0x40 by every protocol that uses it
(secure channel, BDX): ``u16 general code ‖ u32 protocol id ‖ u16 protocol code ‖ data``, little
endian, where the protocol id is ``vendor id << 16 | protocol id``.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from matter_ota.messaging.errors import MessageError

_FIXED = struct.Struct("<HIH")


class Protocol(enum.IntEnum):
    """Protocol ids of the standard vendor (0x0000), spec 4.4.3.4 / Appendix A."""

    SECURE_CHANNEL = 0x0000
    INTERACTION_MODEL = 0x0001
    BDX = 0x0002
    USER_DIRECTED_COMMISSIONING = 0x0003


class SecureChannelOpcode(enum.IntEnum):
    """Secure Channel protocol opcodes (4.11.1.3 / Table 18)."""

    MSG_COUNTER_SYNC_REQ = 0x00
    MSG_COUNTER_SYNC_RSP = 0x01
    STANDALONE_ACK = 0x10
    PBKDF_PARAM_REQUEST = 0x20
    PBKDF_PARAM_RESPONSE = 0x21
    PASE_PAKE1 = 0x22
    PASE_PAKE2 = 0x23
    PASE_PAKE3 = 0x24
    CASE_SIGMA1 = 0x30
    CASE_SIGMA2 = 0x31
    CASE_SIGMA3 = 0x32
    CASE_SIGMA2_RESUME = 0x33
    STATUS_REPORT = 0x40
    ICD_CHECK_IN = 0x50


class GeneralCode(enum.IntEnum):
    """General status codes (Appendix D.3.1)."""

    SUCCESS = 0
    FAILURE = 1
    BAD_PRECONDITION = 2
    OUT_OF_RANGE = 3
    BAD_REQUEST = 4
    UNSUPPORTED = 5
    UNEXPECTED = 6
    RESOURCE_EXHAUSTED = 7
    BUSY = 8
    TIMEOUT = 9
    CONTINUE = 10
    ABORTED = 11
    INVALID_ARGUMENT = 12
    NOT_FOUND = 13
    ALREADY_EXISTS = 14
    PERMISSION_DENIED = 15
    DATA_LOSS = 16
    MESSAGE_TOO_LARGE = 17


class SecureChannelCode(enum.IntEnum):
    """Secure Channel protocol status codes (4.11.1.4 / Table 19)."""

    SESSION_ESTABLISHMENT_SUCCESS = 0x0000
    NO_SHARED_TRUST_ROOTS = 0x0001
    INVALID_PARAMETER = 0x0002
    CLOSE_SESSION = 0x0003
    BUSY = 0x0004
    REQUIRED_CATS_NOT_PRESENT = 0x0005


# Protocol code meaning "no protocol-specific status" (Appendix D.3.3).
NO_PROTOCOL_CODE = 0x0000


@dataclass(frozen=True, slots=True)
class StatusReport:
    """One StatusReport; ``protocol_id`` is the 32-bit ``vendor << 16 | protocol`` id."""

    general_code: int
    protocol_id: int
    protocol_code: int
    data: bytes = b""

    @property
    def is_success(self) -> bool:
        """True for a general SUCCESS code."""
        return self.general_code == GeneralCode.SUCCESS

    def encode(self) -> bytes:
        """The StatusReport payload."""
        if not (
            0 <= self.general_code <= 0xFFFF
            and 0 <= self.protocol_id <= 0xFFFF_FFFF
            and 0 <= self.protocol_code <= 0xFFFF
        ):
            raise MessageError(f"status report field out of range: {self}")
        return _FIXED.pack(self.general_code, self.protocol_id, self.protocol_code) + self.data

    @classmethod
    def decode(cls, data: bytes) -> StatusReport:
        """Decode a StatusReport payload; :class:`MessageError` if it is too short."""
        if len(data) < _FIXED.size:
            raise MessageError(f"status report of {len(data)} bytes is too short")
        general, protocol, code = _FIXED.unpack_from(data, 0)
        return cls(general, protocol, code, bytes(data[_FIXED.size :]))

    def describe(self) -> str:
        """A compact log-friendly rendering, e.g. ``FAILURE/0x0000/0x0002``."""
        try:
            general = GeneralCode(self.general_code).name
        except ValueError:
            general = str(self.general_code)
        return f"{general}/0x{self.protocol_id:08x}/0x{self.protocol_code:04x}"


class StatusError(Exception):
    """A protocol failure to report to the peer as a StatusReport.

    Raise it from any exchange handler; the node turns it into a StatusReport on the exchange and
    closes the exchange, in one place.
    """

    def __init__(
        self,
        general_code: int,
        protocol_id: int = Protocol.SECURE_CHANNEL,
        protocol_code: int = NO_PROTOCOL_CODE,
        data: bytes = b"",
        reason: str = "",
    ) -> None:
        self.report = StatusReport(int(general_code), int(protocol_id), int(protocol_code), data)
        self.reason = reason
        super().__init__(reason or self.report.describe())

    @property
    def general_code(self) -> int:
        return self.report.general_code

    @property
    def protocol_id(self) -> int:
        return self.report.protocol_id

    @property
    def protocol_code(self) -> int:
        return self.report.protocol_code
