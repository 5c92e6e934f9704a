"""Onboarding payloads (spec 5.1): the QR code (`MT:` + base-38) and the manual pairing code.

Both carry the setup passcode and the discriminator a commissioner needs to find the node
(DNS-SD `_L` / `_S` subtypes, see :mod:`matter_ota.dnssd`) and to open PASE with it.

- QR code (5.1.3): 88 bits packed least-significant bit first: version (3), vendor id (16),
  product id (16), commissioning flow (2), discovery capabilities (8), discriminator (12),
  passcode (27), padding (4); base-38 encoded (5.1.3.1) after the prefix ``MT:``. Optional TLV
  data after the 88 bits is not generated (a provider has no use for it) and refused on parse.
- Manual pairing code (5.1.4): 10 or 20 decimal digits plus a Verhoeff check digit. It carries
  only the 4 upper bits of the discriminator (the "short discriminator"); vendor and product id
  only when the commissioning flow is not Standard (the 21-digit form).

:func:`parse_qr_code` and :func:`parse_manual_code` accept what the generators produce and raise
:class:`SetupPayloadError` (and nothing else) on any other input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

QR_PREFIX = "MT:"  # 5.1.3
BASE38_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-."  # 5.1.3.1 Table 38
_BASE38_INDEX = {c: i for i, c in enumerate(BASE38_ALPHABET)}
# 5.1.3.1: a chunk of 1, 2 or 3 bytes becomes 2, 4 or 5 base-38 characters.
_CHARS_FOR_BYTES = {1: 2, 2: 4, 3: 5}
_BYTES_FOR_CHARS = {v: k for k, v in _CHARS_FOR_BYTES.items()}

# 5.1.3 Table 37: the packed fields in order, with their widths in bits.
_QR_FIELDS = (
    ("version", 3),
    ("vendor_id", 16),
    ("product_id", 16),
    ("flow", 2),
    ("capabilities", 8),
    ("discriminator", 12),
    ("passcode", 27),
    ("padding", 4),
)
_QR_BITS = sum(width for _, width in _QR_FIELDS)  # 88
_QR_BYTES = _QR_BITS // 8  # 11

MAX_PASSCODE = 99_999_998  # 5.1.7.1
MAX_VENDOR_ID = 0xFFF4  # 2.5.2: 0xFFF1-0xFFF4 are the test vendors, above is reserved
# 5.1.7.1: passcodes a device SHALL NOT use.
INVALID_PASSCODES = frozenset(
    [0, 11111111, 22222222, 33333333, 44444444, 55555555, 66666666, 77777777, 88888888,
     99999999, 12345678, 87654321]
)


class SetupPayloadError(ValueError):
    """A setup payload that cannot be encoded, or a code that does not parse."""


class CommissioningFlow(enum.IntEnum):
    """5.1.3 Table 37 (Custom Flow field)."""

    STANDARD = 0
    USER_INTENT = 1
    CUSTOM = 2


class Capability(enum.IntFlag):
    """5.1.3 Table 39, Discovery Capabilities Bitmask."""

    SOFT_AP = 0x01
    BLE = 0x02
    ON_NETWORK = 0x04


@dataclass(frozen=True)
class SetupPayload:
    """What a commissioner needs to find and authenticate a commissionable node."""

    passcode: int
    discriminator: int
    vendor_id: int = 0xFFF1
    product_id: int = 0x8000
    flow: CommissioningFlow = CommissioningFlow.STANDARD
    capabilities: Capability = Capability.ON_NETWORK
    version: int = 0

    def __post_init__(self) -> None:
        checks = (
            ("passcode", self.passcode, 1, MAX_PASSCODE),
            ("discriminator", self.discriminator, 0, 0xFFF),
            ("vendor id", self.vendor_id, 0, 0xFFFF),
            ("product id", self.product_id, 0, 0xFFFF),
            ("version", self.version, 0, 0),  # 5.1.3: version SHALL be 0
        )
        for name, value, low, high in checks:
            if not low <= value <= high:
                raise SetupPayloadError(f"{name} {value} outside {low}..{high}")
        # Vendor id 0 means "not given"; otherwise a real or test vendor (2.5.2, up to 0xFFF4),
        # and a product id goes with it (connectedhomeip CheckPayloadCommonConstraints).
        if self.vendor_id > MAX_VENDOR_ID:
            raise SetupPayloadError(f"vendor id 0x{self.vendor_id:04X} is reserved")
        if self.vendor_id != 0 and self.product_id == 0:
            raise SetupPayloadError("product id 0 is only allowed without a vendor id")
        if self.passcode in INVALID_PASSCODES:
            raise SetupPayloadError(f"passcode {self.passcode:08d} is not allowed (5.1.7.1)")
        if int(self.flow) not in (0, 1, 2) or not 0 <= int(self.capabilities) <= 0xFF:
            raise SetupPayloadError("commissioning flow or capabilities out of range")

    @property
    def short_discriminator(self) -> int:
        """The 4 most significant bits of the 12-bit discriminator (5.1.4)."""
        return self.discriminator >> 8

    def qr_code(self) -> str:
        """The QR code text, ``MT:`` followed by base-38 (5.1.3)."""
        values = {
            "version": self.version, "vendor_id": self.vendor_id, "product_id": self.product_id,
            "flow": int(self.flow), "capabilities": int(self.capabilities),
            "discriminator": self.discriminator, "passcode": self.passcode, "padding": 0,
        }
        packed, shift = 0, 0
        for name, width in _QR_FIELDS:
            packed |= values[name] << shift
            shift += width
        return QR_PREFIX + base38_encode(packed.to_bytes(_QR_BYTES, "little"))

    def manual_code(self) -> str:
        """The 11-digit (Standard flow) or 21-digit manual pairing code (5.1.4)."""
        long_form = self.flow != CommissioningFlow.STANDARD
        short = self.short_discriminator
        chunk1 = (int(long_form) << 2) | (short >> 2)
        chunk2 = ((short & 0x3) << 14) | (self.passcode & 0x3FFF)
        chunk3 = self.passcode >> 14
        digits = f"{chunk1}{chunk2:05d}{chunk3:04d}"
        if long_form:
            digits += f"{self.vendor_id:05d}{self.product_id:05d}"
        return digits + verhoeff_check_digit(digits)


def format_manual_code(code: str) -> str:
    """Group a manual code for people: ``3497-011-2332`` (11 digits), 4-3-4-5-5 for 21."""
    if len(code) == 11:
        return f"{code[:4]}-{code[4:7]}-{code[7:]}"
    return f"{code[:4]}-{code[4:7]}-{code[7:11]}-{code[11:16]}-{code[16:]}"


# ----------------------------------------------------------------------------- base-38


def base38_encode(data: bytes) -> str:
    """5.1.3.1: each 3-byte little-endian chunk becomes 5 characters, least significant
    first; a final chunk of 2 or 1 bytes becomes 4 or 2 characters."""
    out = []
    for i in range(0, len(data), 3):
        chunk = data[i:i + 3]
        value = int.from_bytes(chunk, "little")
        for _ in range(_CHARS_FOR_BYTES[len(chunk)]):
            value, digit = divmod(value, 38)
            out.append(BASE38_ALPHABET[digit])
    return "".join(out)


def base38_decode(text: str) -> bytes:
    """Inverse of :func:`base38_encode`; :class:`SetupPayloadError` on a bad string."""
    out = bytearray()
    for i in range(0, len(text), 5):
        chunk = text[i:i + 5]
        if len(chunk) not in _BYTES_FOR_CHARS:
            raise SetupPayloadError(f"base-38 text of length {len(text)} cannot be decoded")
        value = 0
        for char in reversed(chunk):
            digit = _BASE38_INDEX.get(char)
            if digit is None:
                raise SetupPayloadError(f"{char!r} is not a base-38 character")
            value = value * 38 + digit
        size = _BYTES_FOR_CHARS[len(chunk)]
        if value >= 1 << (8 * size):
            raise SetupPayloadError(f"base-38 chunk {chunk!r} overflows {size} bytes")
        out += value.to_bytes(size, "little")
    return bytes(out)


# ----------------------------------------------------------------------------- Verhoeff

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_VERHOEFF_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _verhoeff(digits: str, offset: int) -> int:
    check = 0
    for i, char in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[(i + offset) % 8][int(char)]]
    return check


def verhoeff_check_digit(digits: str) -> str:
    """The Verhoeff check digit of a decimal string (5.1.4.1 uses it for manual codes)."""
    return str(_VERHOEFF_INV[_verhoeff(digits, 1)])


def verhoeff_valid(digits: str) -> bool:
    """True if the last digit is the Verhoeff check digit of the others."""
    return len(digits) > 1 and digits.isascii() and digits.isdigit() and _verhoeff(digits, 0) == 0


# ----------------------------------------------------------------------------- parsing


def parse_qr_code(text: str) -> SetupPayload:
    """The payload of a ``MT:`` QR code (no optional TLV data)."""
    if not text.startswith(QR_PREFIX):
        raise SetupPayloadError(f"a QR code starts with {QR_PREFIX!r}")
    data = base38_decode(text[len(QR_PREFIX):])
    if len(data) != _QR_BYTES:
        raise SetupPayloadError(
            f"QR payload is {len(data)} bytes, not {_QR_BYTES} (optional data is not supported)"
        )
    packed = int.from_bytes(data, "little")
    fields: dict[str, int] = {}
    for name, width in _QR_FIELDS:
        fields[name] = packed & ((1 << width) - 1)
        packed >>= width
    if fields["padding"] != 0:
        raise SetupPayloadError("QR padding bits are not zero")
    if fields["flow"] == 3:
        raise SetupPayloadError("commissioning flow 3 is reserved")
    return SetupPayload(
        passcode=fields["passcode"], discriminator=fields["discriminator"],
        vendor_id=fields["vendor_id"], product_id=fields["product_id"],
        flow=CommissioningFlow(fields["flow"]), capabilities=Capability(fields["capabilities"]),
        version=fields["version"],
    )


@dataclass(frozen=True)
class ManualCode:
    """What a manual pairing code carries: the short discriminator only."""

    passcode: int
    short_discriminator: int
    vendor_id: int | None = None
    product_id: int | None = None


def parse_manual_code(text: str) -> ManualCode:
    """The content of an 11- or 21-digit manual code (dashes and spaces are ignored)."""
    digits = text.replace("-", "").replace(" ", "")
    if len(digits) not in (11, 21) or not (digits.isascii() and digits.isdigit()):
        raise SetupPayloadError("a manual pairing code is 11 or 21 decimal digits")
    if not verhoeff_valid(digits):
        raise SetupPayloadError("manual pairing code check digit is wrong")
    chunk1, chunk2, chunk3 = int(digits[0]), int(digits[1:6]), int(digits[6:10])
    long_form = bool(chunk1 & 0x4)
    if long_form != (len(digits) == 21) or chunk1 > 7 or chunk2 > 0xFFFF or chunk3 > 0x1FFF:
        raise SetupPayloadError("manual pairing code fields are inconsistent")
    short = ((chunk1 & 0x3) << 2) | (chunk2 >> 14)
    passcode = (chunk3 << 14) | (chunk2 & 0x3FFF)
    if not 1 <= passcode <= MAX_PASSCODE or passcode in INVALID_PASSCODES:
        raise SetupPayloadError(f"passcode {passcode} is not a valid setup passcode")
    if not long_form:
        return ManualCode(passcode, short)
    vendor_id, product_id = int(digits[10:15]), int(digits[15:20])
    if vendor_id > 0xFFFF or product_id > 0xFFFF:
        raise SetupPayloadError("vendor or product id out of range")
    return ManualCode(passcode, short, vendor_id, product_id)
