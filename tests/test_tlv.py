"""TLV codec: spec vectors, round trips, strict decoding, robustness, schemas."""

from __future__ import annotations

import contextlib
import math
import struct
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota import tlv
from matter_ota.tlv import CommonTag, Float32, FullTag, ImplicitTag, TLVError, TLVList, uint

# Matter Core spec, Appendix A.12 (examples of encodings).
SPEC_VECTORS: list[tuple[Any, Any, str]] = [
    (None, False, "08"),
    (None, True, "09"),
    (None, 42, "002a"),
    (None, -17, "00ef"),
    (None, uint(42), "042a"),
    (None, -170000, "02f067fdff"),
    (None, 40000000000, "0300902f5009000000"),
    (None, "Hello!", "0c0648656c6c6f21"),
    (None, "Tschüs", "0c0754736368c3bc73"),
    (None, b"\x00\x01\x02\x03\x04", "10050001020304"),
    (None, None, "14"),
    (None, Float32(0.0), "0a00000000"),
    (None, Float32(17.9), "0a33338f41"),
    (None, Float32(math.inf), "0a0000807f"),
    (None, Float32(-math.inf), "0a000080ff"),
    (None, 0.0, "0b0000000000000000"),
    (None, 1 / 3, "0b555555555555d53f"),
    (None, 17.9, "0b6666666666e63140"),
    (None, {}, "1518"),
    (None, [], "1618"),
    (None, TLVList(), "1718"),
    (None, {0: 42, 1: -17}, "1520002a2001ef18"),
    (None, [0, 1, 2, 3, 4], "1600000001000200030004" + "18"),
    (FullTag(0xFFF1, 0xDEED, 1), uint(42), "c4f1ffedde01002a"),
    (FullTag(0xFFF1, 0xDEED, 0xAA55FEED), uint(42), "e4f1ffeddeedfe55aa2a"),
    (CommonTag(1), uint(42), "4401002a"),
    (CommonTag(100000), uint(42), "64a08601002a"),
    (ImplicitTag(1), uint(42), "8401002a"),
]


@pytest.mark.parametrize(("tag", "value", "hexed"), SPEC_VECTORS)
def test_spec_vectors(tag: Any, value: Any, hexed: str) -> None:
    data = bytes.fromhex(hexed)
    assert tlv.encode(value, tag) == data
    got_tag, got = tlv.decode_element(data)
    assert got_tag == tag
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value
        assert type(got) is type(value) or (type(value) is int and type(got) is int)


def test_non_shortest_widths_are_accepted() -> None:
    assert tlv.decode(bytes.fromhex("012a00")) == 42  # signed, 2 octets
    assert tlv.decode(bytes.fromhex("062a000000")) == uint(42)  # unsigned, 4 octets
    assert tlv.decode(bytes.fromhex("0d0200" + "6869")) == "hi"  # 2-octet length


def test_shortest_widths_on_write() -> None:
    for v, n in [(127, 2), (128, 3), (-128, 2), (-129, 3), (2**31 - 1, 5), (2**31, 9)]:
        assert len(tlv.encode(v)) == n, v
    for v, n in [(255, 2), (256, 3), (2**32 - 1, 5), (2**32, 9), (2**64 - 1, 9)]:
        assert len(tlv.encode(uint(v))) == n, v
    assert tlv.encode("x" * 256)[:3] == bytes((0x0D, 0x00, 0x01))


@pytest.mark.parametrize(
    ("hexed", "why"),
    [
        ("", "truncated"),
        ("01", "truncated"),
        ("0c05616263", "truncated"),
        ("15", "not closed"),
        ("152001", "truncated"),
        ("18", "outside a container"),
        ("19", "reserved"),
        ("1f", "reserved"),
        ("150018", "anonymous structure member"),
        ("1620002a18", "tagged array element"),
        ("1520002a20002b18", "duplicate tag"),
        ("0c02c328", "UTF-8"),
        ("002a00", "trailing"),
        ("153818", "end of container with a tag"),
    ],
)
def test_strict_decoding(hexed: str, why: str) -> None:
    with pytest.raises(TLVError, match=why):
        tlv.decode(bytes.fromhex(hexed))


def test_nesting_is_bounded() -> None:
    deep = bytes([0x16] * 200) + bytes([0x18] * 200)
    with pytest.raises(TLVError, match="nesting"):
        tlv.decode(deep)
    v: Any = []
    for _ in range(tlv.MAX_DEPTH + 2):
        v = [v]
    with pytest.raises(TLVError, match="nesting"):
        tlv.encode(v)


@pytest.mark.parametrize(
    "value",
    [2**63, -(2**63) - 1, uint(2**64), uint(-1), object(), {256: 1}, {None: 1}, {True: 1}],
)
def test_unencodable_values(value: Any) -> None:
    with pytest.raises(TLVError):
        tlv.encode(value)


def test_lists_keep_order_and_duplicates() -> None:
    v = TLVList([(1, uint(5)), (None, "a"), (1, uint(6)), (CommonTag(3), None)])
    assert tlv.decode(tlv.encode(v)) == v
    assert v.get(1) == 5


# --------------------------------------------------------------------------- properties

tags = st.one_of(
    st.integers(0, 255),
    st.builds(CommonTag, st.integers(0, 2**32 - 1)),
    st.builds(ImplicitTag, st.integers(0, 2**32 - 1)),
    st.builds(FullTag, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 2**32 - 1)),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**64 - 1).map(uint),
    st.floats(allow_nan=False),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.text(),
    st.binary(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(tags, children, max_size=5),
        st.lists(st.tuples(st.none() | tags, children), max_size=5).map(TLVList),
    ),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, TLVList):
        return isinstance(b, TLVList) and len(a) == len(b) and all(
            x[0] == y[0] and _same(x[1], y[1]) for x, y in zip(a, b, strict=True)
        )
    if isinstance(a, list | tuple):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, bool) or a is None:
        return a is b
    if isinstance(a, uint):
        return isinstance(b, uint) and a == b
    if isinstance(a, int):
        return type(b) is int and a == b
    if isinstance(a, Float32):
        return isinstance(b, Float32) and struct.pack("<f", a) == struct.pack("<f", b)
    if isinstance(a, float):
        return type(b) is float and struct.pack("<d", a) == struct.pack("<d", b)
    return bool(type(a) is type(b) and a == b)


@given(st.none() | tags, values)
@settings(max_examples=400)
def test_round_trip(tag: Any, value: Any) -> None:
    data = tlv.encode(value, tag)
    got_tag, got = tlv.decode_element(data)
    assert got_tag == tag
    assert _same(value, got)
    assert tlv.encode(got, got_tag) == data  # decoding then encoding is the identity


@given(st.binary(max_size=200))
@settings(max_examples=1500)
def test_random_input_raises_only_tlv_error(data: bytes) -> None:
    with contextlib.suppress(TLVError):
        tlv.decode(data)


@given(values, st.data())
def test_truncation_and_corruption_raise_only_tlv_error(value: Any, data: st.DataObject) -> None:
    encoded = tlv.encode(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(TLVError):
        tlv.decode(encoded[:cut])
    pos = data.draw(st.integers(0, len(encoded) - 1))
    flipped = bytearray(encoded)
    flipped[pos] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(TLVError):
        tlv.decode(bytes(flipped))


# --------------------------------------------------------------------------- schemas


@dataclass(kw_only=True)
class Inner(tlv.Struct):
    a: int = tlv.field(0, tlv.I8)
    b: list[str] = tlv.field(1, tlv.ArrayOf(tlv.Str(max_len=4)))


@dataclass(kw_only=True)
class Query(tlv.Struct):
    vendor_id: int = tlv.field(0, tlv.U16)
    product_id: int = tlv.field(1, tlv.U16)
    software_version: int = tlv.field(2, tlv.U32)
    protocols: list[int] = tlv.field(3, tlv.ArrayOf(tlv.U8))
    hardware_version: int | None = tlv.field(4, tlv.U16, optional=True)
    location: str | None = tlv.field(5, tlv.Str(max_len=2), optional=True)
    consent: bool | None = tlv.field(6, tlv.Bool, optional=True)
    token: bytes | None = tlv.field(7, tlv.Bytes(min_len=8, max_len=32), nullable=True)
    inner: Inner | None = tlv.field(8, Inner, optional=True)
    ratio: float | None = tlv.field(9, Float32, optional=True)


@dataclass(kw_only=True)
class Path(tlv.ListStruct):
    endpoint: int | None = tlv.field(2, tlv.U16, optional=True)
    cluster: int | None = tlv.field(3, tlv.U32, optional=True)


def test_schema_round_trip_and_wire_types() -> None:
    q = Query(
        vendor_id=0xFFF1,
        product_id=0x8001,
        software_version=7,
        protocols=[0, 1],
        location="US",
        token=None,
        inner=Inner(a=-3, b=["x"]),
        ratio=0.5,
    )
    data = q.encode()
    raw = tlv.decode(data)
    assert isinstance(raw[0], uint) and raw[7] is None and 4 not in raw
    assert Query.decode(data) == q


def test_schema_errors_name_the_field() -> None:
    base = Query(vendor_id=1, product_id=2, software_version=3, protocols=[], token=None)
    value = base.to_value()
    with pytest.raises(TLVError, match=r"Query.vendor_id: missing mandatory field"):
        Query.from_value({k: v for k, v in value.items() if k != 0})
    with pytest.raises(TLVError, match=r"Query.product_id: 70000 out of range for U16"):
        Query.from_value({**value, 1: uint(70000)})
    with pytest.raises(TLVError, match=r"Query.location: length 3 outside 0..2"):
        Query.from_value({**value, 5: "USA"})
    with pytest.raises(TLVError, match=r"Query.token: length 2 outside 8..32"):
        Query.from_value({**value, 7: b"ab"})
    with pytest.raises(TLVError, match=r"Query.protocols\[1\]: expected integer"):
        Query.from_value({**value, 3: [uint(1), "x"]})
    with pytest.raises(TLVError, match=r"Query.inner.b\[0\]"):
        Query.from_value({**value, 8: {0: 1, 1: ["toolong"]}})
    with pytest.raises(TLVError, match=r"null is not allowed"):
        Query.from_value({**value, 0: None})
    with pytest.raises(TLVError, match="expected structure"):
        Query.from_value([1])


def test_schema_ignores_unknown_tags() -> None:
    base = Query(vendor_id=1, product_id=2, software_version=3, protocols=[], token=b"12345678")
    value = {**base.to_value(), 200: "future field"}
    assert Query.from_value(value) == base


def test_list_struct() -> None:
    p = Path(endpoint=0, cluster=0x29)
    assert isinstance(tlv.decode(p.encode()), TLVList)
    assert Path.decode(p.encode()) == p
    with pytest.raises(TLVError, match="duplicate"):
        Path.from_value(TLVList([(2, uint(0)), (2, uint(1))]))


@given(st.binary(max_size=120))
@settings(max_examples=500)
def test_schema_decode_raises_only_tlv_error(data: bytes) -> None:
    with contextlib.suppress(TLVError):
        Query.decode(data)
