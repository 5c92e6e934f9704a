"""The small subset of ASN.1 DER that Matter operational certificates use.

Writing produces canonical DER; reading is strict (definite lengths, minimal length octets,
single-octet tags) and raises :class:`DERError` on anything else. Certificate conversion relies
on both: a certificate read from DER is re-encoded and compared byte for byte, so the X.509 TBS
that signatures cover is reproduced exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

# X.690 universal tags (with the constructed bit where it applies)
BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
IA5_STRING = 0x16
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31


class DERError(ValueError):
    """Malformed or unsupported DER."""


def tlv(tag: int, content: bytes) -> bytes:
    """One DER element: tag octet, definite length, content."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def seq(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    return tlv(SET, b"".join(sorted(items)))


def integer(n: int) -> bytes:
    """A non-negative or negative INTEGER in minimal two's complement."""
    size = max(1, (n + (n < 0)).bit_length() // 8 + 1)
    return tlv(INTEGER, n.to_bytes(size, "big", signed=True))


def boolean(b: bool) -> bytes:
    return tlv(BOOLEAN, b"\xff" if b else b"\x00")


def octet_string(b: bytes) -> bytes:
    return tlv(OCTET_STRING, b)


def bit_string(b: bytes, unused: int = 0) -> bytes:
    return tlv(BIT_STRING, bytes((unused,)) + b)


@functools.lru_cache(maxsize=256)
def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form."""
    return tlv(OID, oid_content(dotted))


def oid_content(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def oid_from_content(content: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets."""
    if not content or content[-1] & 0x80:
        raise DERError("truncated OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for b in content:
        if value == 0 and b == 0x80:
            raise DERError("non-minimal OBJECT IDENTIFIER arc")
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


@dataclass(frozen=True, slots=True)
class Element:
    """One parsed DER element; ``raw`` is its complete encoding."""

    tag: int
    content: bytes
    raw: bytes

    def children(self) -> list[Element]:
        """The elements inside a constructed element."""
        if not self.tag & 0x20:
            raise DERError(f"element 0x{self.tag:02x} is not constructed")
        return list(iter_elements(self.content))

    def expect(self, tag: int, what: str) -> Element:
        if self.tag != tag:
            raise DERError(f"{what}: expected tag 0x{tag:02x}, got 0x{self.tag:02x}")
        return self


def _read(data: bytes, pos: int) -> tuple[Element, int]:
    if pos + 2 > len(data):
        raise DERError("truncated element header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DERError("multi-octet tags are not supported")
    first = data[pos + 1]
    at = pos + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DERError("indefinite length is not DER")
    else:
        n = first & 0x7F
        if n > 4 or at + n > len(data):
            raise DERError("bad length octets")
        length = int.from_bytes(data[at : at + n], "big")
        if length < 0x80 or data[at] == 0:
            raise DERError("non-minimal length")
        at += n
    end = at + length
    if end > len(data):
        raise DERError("element runs past the end of its container")
    return Element(tag, data[at:end], data[pos:end]), end


def iter_elements(data: bytes) -> Iterator[Element]:
    """The consecutive elements that fill ``data`` exactly."""
    pos = 0
    while pos < len(data):
        element, pos = _read(data, pos)
        yield element


def parse(data: bytes) -> Element:
    """Exactly one element filling the whole buffer."""
    element, end = _read(bytes(data), 0)
    if end != len(data):
        raise DERError("trailing data after DER element")
    return element


def parse_integer(e: Element, what: str) -> int:
    e.expect(INTEGER, what)
    if not e.content:
        raise DERError(f"{what}: empty INTEGER")
    return int.from_bytes(e.content, "big", signed=True)
