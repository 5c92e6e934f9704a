"""Matter TLV codec (Matter Core spec, Appendix A).

Python <-> TLV mapping:

====================  ==========================================================
Python                TLV
====================  ==========================================================
``int``               signed integer, shortest width
:class:`uint`         unsigned integer, shortest width
``bool`` / ``None``   boolean / null
``float``             double; :class:`Float32` for single precision
``str`` / ``bytes``   UTF-8 string / octet string
``dict``              structure; keys are tags (``int`` = context tag)
``list``/``tuple``    array (anonymous elements)
:class:`TLVList`      list container: ``(tag or None, value)`` pairs
====================  ==========================================================

Writing always uses the shortest encoding; reading accepts any valid width but is otherwise
strict: truncation, bad lengths, reserved types, misplaced end-of-container, anonymous or
duplicate structure members, tagged array elements, invalid UTF-8 and excessive nesting all
raise :class:`TLVError` and nothing else.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

MAX_DEPTH = 32  # deeper nesting than any Matter message; bounds recursion on hostile input


class TLVError(ValueError):
    """Any malformed TLV, or a value that does not fit its schema."""


class uint(int):
    """An integer that is encoded as a TLV unsigned integer."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"uint({int(self)})"


class Float32(float):
    """A float that is encoded as a TLV single-precision float (rounded to it on creation)."""

    __slots__ = ()

    def __new__(cls, x: float = 0.0) -> Float32:
        try:
            rounded = _F32.unpack(_F32.pack(x))[0]
        except OverflowError:  # IEEE round-to-nearest overflows to infinity
            rounded = math.copysign(math.inf, x)
        return super().__new__(cls, rounded)

    def __repr__(self) -> str:
        return f"Float32({float(self)!r})"


@dataclasses.dataclass(frozen=True, slots=True)
class CommonTag:
    """A tag in the Matter common profile (A.7.2)."""

    number: int


@dataclasses.dataclass(frozen=True, slots=True)
class ImplicitTag:
    """A profile-specific tag whose profile is implied by context (A.7.3)."""

    number: int


@dataclasses.dataclass(frozen=True, slots=True)
class FullTag:
    """A fully-qualified tag: vendor id, profile number and tag number (A.7.4)."""

    vendor_id: int
    profile: int
    number: int


Tag: TypeAlias = int | CommonTag | ImplicitTag | FullTag


class TLVList(list[tuple[Tag | None, Any]]):
    """A TLV list container: ordered ``(tag, value)`` pairs, tags may repeat or be absent."""

    def get(self, tag: Tag, default: Any = None) -> Any:
        """The value of the first member with ``tag``."""
        for t, v in self:
            if t == tag:
                return v
        return default

    def __repr__(self) -> str:
        return f"TLVList({list.__repr__(self)})"


# A.7: element types (low five bits of the control octet)
_INT = 0x00  # 0x00-0x03 signed, widths 1, 2, 4, 8
_UINT = 0x04  # 0x04-0x07
_FALSE = 0x08
_TRUE = 0x09
_FLOAT = 0x0A
_DOUBLE = 0x0B
_UTF8 = 0x0C  # 0x0C-0x0F, length field 1, 2, 4, 8 octets
_BYTES = 0x10  # 0x10-0x13
_NULL = 0x14
_STRUCT = 0x15
_ARRAY = 0x16
_LIST = 0x17
_END = 0x18

# A.8: tag control (high three bits)
_TAG_ANON = 0x00
_TAG_CONTEXT = 0x20
_TAG_COMMON2 = 0x40
_TAG_COMMON4 = 0x60
_TAG_IMPLICIT2 = 0x80
_TAG_IMPLICIT4 = 0xA0
_TAG_FULL6 = 0xC0
_TAG_FULL8 = 0xE0

_SIGNED = (struct.Struct("<b"), struct.Struct("<h"), struct.Struct("<i"), struct.Struct("<q"))
_UNSIGNED = (struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q"))
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")
_H = struct.Struct("<H")
_I = struct.Struct("<I")
_HHH = struct.Struct("<HHH")
_HHI = struct.Struct("<HHI")


# --------------------------------------------------------------------------- encoding


def _tag_bytes(tag: Tag | None) -> tuple[int, bytes]:
    if tag is None:
        return _TAG_ANON, b""
    if isinstance(tag, bool):
        raise TLVError(f"not a TLV tag: {tag!r}")
    if isinstance(tag, int):
        if not 0 <= tag <= 0xFF:
            raise TLVError(f"context tag {tag} out of range 0..255")
        return _TAG_CONTEXT, bytes((tag,))
    if isinstance(tag, CommonTag):
        return _numbered_tag(tag.number, _TAG_COMMON2, _TAG_COMMON4, "common profile")
    if isinstance(tag, ImplicitTag):
        return _numbered_tag(tag.number, _TAG_IMPLICIT2, _TAG_IMPLICIT4, "implicit profile")
    if isinstance(tag, FullTag):
        if not (0 <= tag.vendor_id <= 0xFFFF and 0 <= tag.profile <= 0xFFFF):
            raise TLVError(f"fully-qualified tag {tag} has vendor or profile out of range")
        if 0 <= tag.number <= 0xFFFF:
            return _TAG_FULL6, _HHH.pack(tag.vendor_id, tag.profile, tag.number)
        if 0 <= tag.number <= 0xFFFFFFFF:
            return _TAG_FULL8, _HHI.pack(tag.vendor_id, tag.profile, tag.number)
        raise TLVError(f"tag number {tag.number} out of range")
    raise TLVError(f"not a TLV tag: {tag!r}")


def _numbered_tag(number: int, ctl2: int, ctl4: int, what: str) -> tuple[int, bytes]:
    if 0 <= number <= 0xFFFF:
        return ctl2, _H.pack(number)
    if 0 <= number <= 0xFFFFFFFF:
        return ctl4, _I.pack(number)
    raise TLVError(f"{what} tag number {number} out of range")


def _length_prefix(base: int, n: int) -> tuple[int, bytes]:
    if n <= 0xFF:
        return base, bytes((n,))
    if n <= 0xFFFF:
        return base + 1, _H.pack(n)
    if n <= 0xFFFFFFFF:
        return base + 2, _I.pack(n)
    return base + 3, struct.pack("<Q", n)


def _encode_into(out: bytearray, tag: Tag | None, value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise TLVError(f"nesting deeper than {MAX_DEPTH}")
    ctl, tb = _tag_bytes(tag)
    if value is None:
        out.append(ctl | _NULL)
        out += tb
    elif value is True or value is False:
        out.append(ctl | (_TRUE if value else _FALSE))
        out += tb
    elif isinstance(value, uint):
        v = int(value)
        if v < 0 or v > 0xFFFFFFFFFFFFFFFF:
            raise TLVError(f"unsigned integer {v} out of range")
        i = 0 if v <= 0xFF else 1 if v <= 0xFFFF else 2 if v <= 0xFFFFFFFF else 3
        out.append(ctl | (_UINT + i))
        out += tb
        out += _UNSIGNED[i].pack(v)
    elif isinstance(value, int):
        v = int(value)
        if -0x80 <= v <= 0x7F:
            i = 0
        elif -0x8000 <= v <= 0x7FFF:
            i = 1
        elif -0x80000000 <= v <= 0x7FFFFFFF:
            i = 2
        elif -0x8000000000000000 <= v <= 0x7FFFFFFFFFFFFFFF:
            i = 3
        else:
            raise TLVError(f"signed integer {v} out of range")
        out.append(ctl | (_INT + i))
        out += tb
        out += _SIGNED[i].pack(v)
    elif isinstance(value, Float32):
        out.append(ctl | _FLOAT)
        out += tb
        out += _F32.pack(value)
    elif isinstance(value, float):
        out.append(ctl | _DOUBLE)
        out += tb
        out += _F64.pack(value)
    elif isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise TLVError(f"string is not encodable as UTF-8: {exc}") from exc
        et, lb = _length_prefix(_UTF8, len(data))
        out.append(ctl | et)
        out += tb
        out += lb
        out += data
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        et, lb = _length_prefix(_BYTES, len(data))
        out.append(ctl | et)
        out += tb
        out += lb
        out += data
    elif isinstance(value, dict):
        out.append(ctl | _STRUCT)
        out += tb
        for k, v in value.items():
            if k is None:
                raise TLVError("structure members need a tag")
            _encode_into(out, k, v, depth + 1)
        out.append(_END)
    elif isinstance(value, TLVList):
        out.append(ctl | _LIST)
        out += tb
        for k, v in value:
            _encode_into(out, k, v, depth + 1)
        out.append(_END)
    elif isinstance(value, list | tuple):
        out.append(ctl | _ARRAY)
        out += tb
        for v in value:
            _encode_into(out, None, v, depth + 1)
        out.append(_END)
    elif hasattr(value, "to_value"):  # a schema Struct nested in a plain value
        _encode_into(out, tag, value.to_value(), depth)
    else:
        raise TLVError(f"cannot encode {type(value).__name__} as TLV")


def encode(value: Any, tag: Tag | None = None) -> bytes:
    """Encode one element (with ``tag``; anonymous by default)."""
    out = bytearray()
    _encode_into(out, tag, value, 0)
    return bytes(out)


# --------------------------------------------------------------------------- decoding


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.end = len(self.data)

    def take(self, n: int, what: str) -> int:
        """Reserve ``n`` octets; returns their start offset."""
        p = self.pos
        if n > self.end - p:
            raise TLVError(f"truncated {what} at offset {p}: need {n} octets, {self.end - p} left")
        self.pos = p + n
        return p

    def element(self, depth: int) -> tuple[Tag | None, Any]:
        data = self.data
        p = self.take(1, "control octet")
        ctl = data[p]
        tc = ctl & 0xE0
        et = ctl & 0x1F
        tag: Tag | None
        if tc == _TAG_ANON:
            tag = None
        elif tc == _TAG_CONTEXT:
            tag = data[self.take(1, "context tag")]
        elif tc == _TAG_COMMON2:
            tag = CommonTag(_H.unpack_from(data, self.take(2, "tag"))[0])
        elif tc == _TAG_COMMON4:
            tag = CommonTag(_I.unpack_from(data, self.take(4, "tag"))[0])
        elif tc == _TAG_IMPLICIT2:
            tag = ImplicitTag(_H.unpack_from(data, self.take(2, "tag"))[0])
        elif tc == _TAG_IMPLICIT4:
            tag = ImplicitTag(_I.unpack_from(data, self.take(4, "tag"))[0])
        elif tc == _TAG_FULL6:
            tag = FullTag(*_HHH.unpack_from(data, self.take(6, "tag")))
        else:
            tag = FullTag(*_HHI.unpack_from(data, self.take(8, "tag")))

        if et <= 0x03:
            s = _SIGNED[et]
            return tag, s.unpack_from(data, self.take(s.size, "integer"))[0]
        if et <= 0x07:
            s = _UNSIGNED[et - _UINT]
            return tag, uint(s.unpack_from(data, self.take(s.size, "integer"))[0])
        if et == _FALSE:
            return tag, False
        if et == _TRUE:
            return tag, True
        if et == _FLOAT:
            return tag, Float32(_F32.unpack_from(data, self.take(4, "float"))[0])
        if et == _DOUBLE:
            return tag, _F64.unpack_from(data, self.take(8, "double"))[0]
        if et <= 0x13:
            i = (et - _UTF8) & 0x03
            s = _UNSIGNED[i]
            n = s.unpack_from(data, self.take(s.size, "length"))[0]
            start = self.take(n, "string")
            raw = data[start : start + n]
            if et < _BYTES:
                try:
                    return tag, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise TLVError(f"invalid UTF-8 in string at offset {start}") from exc
            return tag, raw
        if et == _NULL:
            return tag, None
        if et in (_STRUCT, _ARRAY, _LIST):
            if depth >= MAX_DEPTH:
                raise TLVError(f"nesting deeper than {MAX_DEPTH} at offset {p}")
            return tag, self.container(et, depth + 1, p)
        if et == _END:
            raise TLVError(f"end of container outside a container at offset {p}")
        raise TLVError(f"reserved element type 0x{et:02x} at offset {p}")

    def container(self, kind: int, depth: int, start: int) -> Any:
        data = self.data
        members: list[tuple[Tag | None, Any]] = []
        while True:
            if self.pos >= self.end:
                raise TLVError(f"container opened at offset {start} is not closed")
            if data[self.pos] & 0x1F == _END:
                if data[self.pos] != _END:
                    raise TLVError(f"end of container with a tag at offset {self.pos}")
                self.pos += 1
                break
            at = self.pos
            tag, value = self.element(depth)
            if kind == _STRUCT and tag is None:
                raise TLVError(f"anonymous structure member at offset {at}")
            if kind == _ARRAY and tag is not None:
                raise TLVError(f"tagged array element at offset {at}")
            members.append((tag, value))
        if kind == _ARRAY:
            return [v for _, v in members]
        if kind == _LIST:
            return TLVList(members)
        result: dict[Tag, Any] = {}
        for tag, value in members:
            assert tag is not None
            if tag in result:
                raise TLVError(f"duplicate tag {tag!r} in structure opened at offset {start}")
            result[tag] = value
        return result


def decode_element(data: bytes | bytearray | memoryview) -> tuple[Tag | None, Any]:
    """Decode exactly one element filling ``data``; returns ``(tag, value)``."""
    r = _Reader(data)
    tag, value = r.element(0)
    if r.pos != r.end:
        raise TLVError(f"{r.end - r.pos} trailing octets after the element at offset {r.pos}")
    return tag, value


def decode(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one element filling ``data``; returns its value."""
    return decode_element(data)[1]


def iter_elements(data: bytes | bytearray | memoryview) -> Iterator[tuple[Tag | None, Any]]:
    """Decode a sequence of top-level elements (e.g. a TLV stream)."""
    r = _Reader(data)
    while r.pos < r.end:
        yield r.element(0)


def encode_many(elements: Iterable[tuple[Tag | None, Any]]) -> bytes:
    """Encode a sequence of top-level elements back to back."""
    out = bytearray()
    for tag, value in elements:
        _encode_into(out, tag, value, 0)
    return bytes(out)
