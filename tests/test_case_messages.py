"""The CASE message codec's short paths agree with the generic TLV codec and schemas."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota import tlv
from matter_ota.secure_channel.case_messages import (
    Sigma1,
    Sigma2,
    Sigma2Resume,
    Sigma3,
    TBEData2,
    TBEData3,
    TBSData,
    decode_flat,
)
from matter_ota.secure_channel.session_params import SessionParametersTLV

SCHEMAS: list[type[tlv.Struct]] = [
    Sigma1,
    Sigma2,
    Sigma2Resume,
    Sigma3,
    TBEData2,
    TBEData3,
    TBSData,
]


def _b(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


_u16 = st.integers(0, 0xFFFF)
_params = st.one_of(
    st.none(),
    st.builds(
        SessionParametersTLV,
        idle_interval_ms=st.one_of(st.none(), st.integers(0, 0xFFFF_FFFF)),
        active_interval_ms=st.one_of(st.none(), st.integers(0, 0xFFFF_FFFF)),
        active_threshold_ms=st.one_of(st.none(), _u16),
        data_model_revision=st.one_of(st.none(), _u16),
        specification_version=st.one_of(st.none(), st.integers(0, 0xFFFF_FFFF)),
    ),
)
_cert = st.binary(min_size=1, max_size=400)
_resume = st.one_of(st.none(), _b(16))

MESSAGES: st.SearchStrategy[Any] = st.one_of(
    st.builds(
        Sigma1,
        initiator_random=_b(32),
        initiator_session_id=_u16,
        destination_id=_b(32),
        initiator_eph_pub_key=_b(65),
        initiator_session_params=_params,
        resumption_id=_resume,
        initiator_resume_mic=_resume,
    ),
    st.builds(
        Sigma2,
        responder_random=_b(32),
        responder_session_id=_u16,
        responder_eph_pub_key=_b(65),
        encrypted2=st.binary(min_size=17, max_size=1200),
        responder_session_params=_params,
    ),
    st.builds(
        Sigma2Resume,
        resumption_id=_b(16),
        sigma2_resume_mic=_b(16),
        responder_session_id=_u16,
        responder_session_params=_params,
    ),
    st.builds(Sigma3, encrypted3=st.binary(min_size=17, max_size=1200)),
    st.builds(
        TBEData2,
        noc=_cert,
        icac=st.one_of(st.none(), _cert),
        signature=_b(64),
        resumption_id=_b(16),
    ),
    st.builds(TBEData3, noc=_cert, icac=st.one_of(st.none(), _cert), signature=_b(64)),
    st.builds(
        TBSData,
        noc=_cert,
        icac=st.one_of(st.none(), _cert),
        sender_eph_pub_key=_b(65),
        receiver_eph_pub_key=_b(65),
    ),
)


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_short_encoder_writes_the_codecs_bytes(msg: tlv.Struct) -> None:
    encoded = msg.encode()
    assert encoded == tlv.encode(msg.to_value())
    assert decode_flat(type(msg), encoded) == type(msg).decode(encoded) == msg


def _outcome(fn: Any) -> object:
    try:
        return fn()
    except tlv.TLVError:
        return "TLVError"


@st.composite
def _mutations(draw: st.DrawFn) -> tuple[type[tlv.Struct], bytes]:
    msg = draw(MESSAGES)
    data = bytearray(msg.encode())
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 4))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=3))
    return draw(st.sampled_from(SCHEMAS)), bytes(data)


@settings(max_examples=500, deadline=None)
@given(_mutations())
def test_short_decoder_answers_like_the_schema(case: tuple[type[tlv.Struct], bytes]) -> None:
    cls, data = case
    assert _outcome(lambda: decode_flat(cls, data)) == _outcome(lambda: cls.decode(data))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x15",
        b"\x15\x18\x18",
        b"\x15\x30\x01\x02ab\x30\x01\x02ab\x18",  # duplicate tag
        b"\x15\x25\x02\x01\x18",  # truncated integer
        b"\x15\x2c\x01\x01\xff\x18",  # a string member: not a short-path shape
    ],
)
def test_short_decoder_edge_cases(data: bytes) -> None:
    for cls in SCHEMAS:
        assert _outcome(lambda cls=cls: decode_flat(cls, data)) == _outcome(
            lambda cls=cls: cls.decode(data)
        )
