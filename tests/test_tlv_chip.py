"""Our TLV codec against connectedhomeip's Python TLV (`chip.tlv`, home-assistant-chip-clusters).

Both directions on hypothesis-generated values: the two encoders produce the same bytes, each
decoder reads the other's bytes back to the same typed value.

chip.tlv quirks the generators stay clear of (bugs or limits of the oracle, not of Matter TLV):
its writer crashes on fully-qualified tags with numbers above 0xFFFF (a 5-value struct.pack into
"<BHHL"), it spells the fully-qualified profile (vendor 0, profile 0) as the common profile, and
its TLVList takes only context or anonymous tags.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota import tlv
from matter_ota.tlv import CommonTag, Float32, FullTag, ImplicitTag, TLVList, uint

chip_tlv = pytest.importorskip("chip.tlv", reason="home-assistant-chip-clusters not installed")


# --------------------------------------------------------------------------- value mapping


def tag_to_chip(tag: Any) -> Any:
    if tag is None or isinstance(tag, int):
        return tag
    if isinstance(tag, CommonTag):
        return (0, tag.number)
    if isinstance(tag, ImplicitTag):
        return (None, tag.number)
    assert isinstance(tag, FullTag)
    return ((tag.vendor_id << 16) | tag.profile, tag.number)


def tag_from_chip(tag: Any) -> Any:
    if tag is None or isinstance(tag, int):
        return tag
    profile, number = tag
    if profile is None:
        return ImplicitTag(number)
    if profile == 0:
        return CommonTag(number)
    return FullTag(profile >> 16, profile & 0xFFFF, number)


def to_chip(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, uint):
        return chip_tlv.uint(int(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Float32):
        return chip_tlv.float32(float(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):  # OrderedDict: chip.tlv sorts a plain dict, we keep the order
        return OrderedDict((tag_to_chip(k), to_chip(v)) for k, v in value.items())
    if isinstance(value, TLVList):
        return chip_tlv.TLVList([(tag_to_chip(t), to_chip(v)) for t, v in value])
    assert isinstance(value, list)
    return [to_chip(v) for v in value]


def from_chip(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | bytes):
        return value
    if isinstance(value, chip_tlv.uint):
        return uint(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, chip_tlv.float32):
        return Float32(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, dict):
        return {tag_from_chip(k): from_chip(v) for k, v in value.items()}
    if isinstance(value, chip_tlv.TLVList):
        return TLVList((t, from_chip(v)) for t, v in value)
    assert isinstance(value, list)
    return [from_chip(v) for v in value]


def chip_encode(value: Any) -> bytes:
    writer = chip_tlv.TLVWriter()
    writer.put(None, to_chip(value))
    return bytes(writer.encoding)


def chip_decode(data: bytes) -> Any:
    return from_chip(chip_tlv.TLVReader(data).get()["Any"])


def same(a: Any, b: Any) -> bool:
    """Equal *and* of the same TLV type all the way down (uint vs int, single vs double)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        fmt = "<f" if isinstance(a, Float32) else "<d"
        return struct.pack(fmt, a) == struct.pack(fmt, b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):  # arrays and TLVLists (pairs of tag, value)
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple):
        return a[0] == b[0] and same(a[1], b[1])
    return bool(a == b)


# --------------------------------------------------------------------------- generated values

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.integers(0, (1 << 64) - 1).map(uint),
    st.sampled_from([0, -1, 127, 128, -128, -129, 32767, 32768, -(1 << 31), 1 << 31]),
    st.sampled_from([0, 255, 256, 65535, 65536, (1 << 32) - 1, 1 << 32]).map(uint),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.binary(max_size=300),
)
struct_tags = st.one_of(
    st.integers(0, 255),
    st.integers(0, (1 << 32) - 1).map(CommonTag),
    st.integers(0, (1 << 32) - 1).map(ImplicitTag),
    st.builds(
        FullTag, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)
    ).filter(lambda t: (t.vendor_id, t.profile) != (0, 0)),
)


def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(struct_tags, inner, max_size=5),
        st.lists(st.tuples(st.none() | st.integers(0, 255), inner), max_size=5).map(TLVList),
    )


values = st.recursive(scalars, containers, max_leaves=25)


@settings(max_examples=600, deadline=None)
@given(values)
def test_chip_reads_what_we_write(value: Any) -> None:
    data = tlv.encode(value)
    assert same(chip_decode(data), value)


@settings(max_examples=600, deadline=None)
@given(values)
def test_we_read_what_chip_writes_and_write_the_same_bytes(value: Any) -> None:
    data = chip_encode(value)
    assert same(tlv.decode(data), value)
    assert tlv.encode(value) == data  # both pick the shortest encodings


@pytest.mark.parametrize(
    "value",
    [
        {0: uint(0xFFF1), 1: uint(0x8000), 2: uint(2), 3: "2.0", 4: uint(3)},
        [Float32(math.inf), -0.0, float("-inf")],
        TLVList([(None, uint(1)), (3, "x"), (3, "repeated tag")]),
        {FullTag(0xFFF1, 0xDEED, 0xFFFF): {CommonTag(70000): [b"", ""]}},
    ],
)
def test_hand_picked_values(value: Any) -> None:
    assert tlv.encode(value) == chip_encode(value)
    assert same(chip_decode(tlv.encode(value)), value)


def test_fully_qualified_8_byte_tags_decode_in_chip() -> None:
    # chip.tlv cannot *write* these (see the module docstring); it does read ours.
    value = {FullTag(0xFFF1, 0xDEED, 0xAA55FEED): uint(42)}
    assert same(chip_decode(tlv.encode(value)), value)
