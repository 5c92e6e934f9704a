"""Message and protocol header codec (spec 4.4), counters (4.6), message crypto (4.7)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matter_ota.messaging import MessageError
from matter_ota.messaging.counters import (
    COUNTER_WINDOW,
    CounterExhausted,
    MessageCounter,
    ReceptionState,
    random_initial_counter,
)
from matter_ota.messaging.crypto import SessionKeys, derive_session_keys
from matter_ota.messaging.header import MessageHeader, ProtocolHeader, SessionType
from matter_ota.messaging.session import SecureSession, SessionKind
from matter_ota.messaging.status import StatusError, StatusReport

# matter.js packages/protocol/test/session/SecureSessionTest.ts: a captured PASE-session message.
DECRYPT_KEY = bytes.fromhex("bacb178b2588443d5d5b1e4559e7accc")
ENCRYPT_KEY = bytes.fromhex("66951379d0a6d151cf5472cccf13f360")
MESSAGE_ENCRYPTED = bytes.fromhex(
    "001d350022145300ec2b931025dada82ed67521c966d2454d131a271023be699e4e2796650f568e590fd9b65f4"
    "56c720a60a0da127eaa53974c5d41d3d933ed7b58a9ce5b5cb96ad94a7762611c48774cf75458327e74c34668a"
    "45dc9943546f8a6aa1dcd40bd4b8014befb49954a097a60cbdff333ee3f2fd1f49"
)
DECRYPTED_PAYLOAD = bytes.fromhex(
    "153600172403312504fcff181724020024033024040018172402002403302404011817240200240330240402"
    "18172402002403302404031817240200240328240402181724020024032824040418172403312404031818290324"
    "ff0118"
)
PLAIN_PAYLOAD = bytes.fromhex(
    "1536011535012600799ac60c37012402002403312404031824021418181535012600b771f32f370124020024"
    "0328240404182502018018181535012600b771f32f3701240200240328240402182502f1ff18181535012600dd"
    "ad82d637012402002403302404031824020218181535012600ddad82d6370124020024033024040218240200181815"
    "35012600ddad82d6370124020024033024040118350224003c1818181535012600ddad82d63701240200240330240400"
    "1824020018181535012600799ac60c37012402002403312504fcff18240201181818290424ff0118"
)
ENCRYPTED_PAYLOAD = bytes.fromhex(
    "1f9c4e278a2e2a755ebb4fcb9478211efb09aa9518fcafb56d74f135544636037c16fb6b62347794da0c5bde14"
    "2e1a8b1cc96575e9e55471c08b58f7640b7d7f4173c8ff967c39e9961f30a29cb1f64f68df4b5bc1e742587f77"
    "8eeb9ec586c162ff384558596792a2c1e43c150cd0e9ec1484c50950f17cd6c084d07caed94ce45c20004210cbde"
    "48da44ebcf7d931657f03e07e3ea29ae41868b804bf39e628323cd025507773f07268301aa1e77a82927fce04124"
    "1839cee4114f6307b6befe3befde87a2d3f13eeef96b27b36e788d907b44bef2d195aa802692f4f12acc015aede3"
    "cd29da272d1e4b7f3f59683d25bf08f0e29fba2a8a9b"
)


def _vector_session(counter_start: int = 1, peer_session_id: int = 0x351D) -> SecureSession:
    keys = SessionKeys(i2r_key=ENCRYPT_KEY, r2i_key=DECRYPT_KEY, attestation_challenge=b"\0" * 16)
    return SecureSession(
        kind=SessionKind.PASE,
        local_session_id=1,
        peer_session_id=peer_session_id,
        keys=keys,
        is_initiator=True,
        counter_start=counter_start,
    )


def test_decrypts_matter_js_vector() -> None:
    header, offset = MessageHeader.decode(MESSAGE_ENCRYPTED)
    assert header.session_id == 0x351D and header.message_counter == 0x00531422
    plain = _vector_session().decrypt(header, MESSAGE_ENCRYPTED, offset)
    proto, body = ProtocolHeader.decode(plain)
    assert plain[body:] == DECRYPTED_PAYLOAD
    assert proto.protocol_id == 0x0001 and proto.requires_ack


def test_encrypts_matter_js_vector() -> None:
    # matter.js encodes with the session's peer session id 0x8d4b (part of the AAD).
    session = _vector_session(counter_start=12519906, peer_session_id=0x8D4B)
    proto = ProtocolHeader(
        protocol_id=1, opcode=5, exchange_id=0x048D, requires_ack=True, ack_counter=0x00531422
    )
    datagram, counter = session.encode(proto, PLAIN_PAYLOAD)
    assert counter == 12519906
    header, offset = MessageHeader.decode(datagram)
    assert header.session_id == 0x8D4B
    assert datagram[offset:] == ENCRYPTED_PAYLOAD


def test_tampered_message_fails_mic() -> None:
    header, offset = MessageHeader.decode(MESSAGE_ENCRYPTED)
    for index in (0, 3, offset, len(MESSAGE_ENCRYPTED) - 1):
        bad = bytearray(MESSAGE_ENCRYPTED)
        bad[index] ^= 0x01
        h, o = MessageHeader.decode(bytes(bad))
        with pytest.raises(MessageError):
            _vector_session().decrypt(h, bytes(bad), o)
    with pytest.raises(MessageError):
        _vector_session().decrypt(header, MESSAGE_ENCRYPTED[: offset + 15], offset)


def test_unsecured_header_layout() -> None:
    # flags S, session 0, sec flags 0, counter, source node id (spec 4.4.1)
    header = MessageHeader(0, 0x01020304, source_node_id=0x1122334455667788)
    raw = header.encode()
    assert raw.hex() == "0400000004030201" + "8877665544332211"
    reply = MessageHeader(0, 7, dest_node_id=0x1122334455667788).encode()
    assert reply[0] == 0x01 and len(reply) == 16
    group = MessageHeader(5, 9, session_type=SessionType.GROUP, dest_group_id=0xABCD).encode()
    assert group.hex() == "020500010900000" + "0cdab"


def test_protocol_header_layout() -> None:
    proto = ProtocolHeader(
        protocol_id=0x0002, opcode=0x11, exchange_id=0x1234, initiator=True, requires_ack=True,
        ack_counter=0xA0B0C0D0, vendor_id=0xFFF1,
    )
    # flags I|A|R|V, opcode, exchange id, vendor id, protocol id, ack counter
    assert proto.encode().hex() == "17113412f1ff0200d0c0b0a0"
    assert proto.full_protocol_id == 0xFFF10002


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        bytes.fromhex("10000000000000000000"),  # version 1
        bytes.fromhex("03000000010000"),  # DSIZ 3 and short
        bytes.fromhex("0300000001000000"),  # DSIZ 3
        bytes.fromhex("0100000201000000" + "00" * 8),  # node destination on reserved type 2
        bytes.fromhex("0200000001000000abcd"),  # group id on a unicast session
        bytes.fromhex("0000002001000000ff00"),  # extensions length beyond the end
    ],
)
def test_header_rejects(raw: bytes) -> None:
    with pytest.raises(MessageError):
        MessageHeader.decode(raw)


_u16 = st.integers(0, 0xFFFF)
_u32 = st.integers(0, 0xFFFF_FFFF)
_u64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)


@st.composite
def message_headers(draw: st.DrawFn) -> MessageHeader:
    group = draw(st.booleans())
    return MessageHeader(
        session_id=draw(_u16),
        message_counter=draw(_u32),
        session_type=SessionType.GROUP if group else SessionType.UNICAST,
        source_node_id=draw(st.none() | _u64),
        dest_node_id=None if group else draw(st.none() | _u64),
        dest_group_id=draw(st.none() | _u16) if group else None,
        privacy=draw(st.booleans()),
        control=draw(st.booleans()),
        extensions=draw(st.none() | st.binary(max_size=40)),
    )


protocol_headers = st.builds(
    ProtocolHeader,
    protocol_id=_u16,
    opcode=st.integers(0, 255),
    exchange_id=_u16,
    initiator=st.booleans(),
    requires_ack=st.booleans(),
    ack_counter=st.none() | _u32,
    vendor_id=st.none() | _u16,
    secured_extensions=st.none() | st.binary(max_size=40),
)


@given(message_headers(), st.binary(max_size=20))
def test_message_header_round_trip(header: MessageHeader, payload: bytes) -> None:
    raw = header.encode()
    decoded, offset = MessageHeader.decode(raw + payload)
    assert decoded == header and offset == len(raw)


@given(protocol_headers, st.binary(max_size=20))
def test_protocol_header_round_trip(header: ProtocolHeader, payload: bytes) -> None:
    raw = header.encode()
    decoded, offset = ProtocolHeader.decode(raw + payload)
    assert decoded == header and raw + payload == raw + payload[: len(payload)]
    assert offset == len(raw)


@given(st.binary(max_size=64))
def test_decoders_raise_only_message_error(data: bytes) -> None:
    for decode in (MessageHeader.decode, ProtocolHeader.decode, StatusReport.decode):
        with contextlib.suppress(MessageError):
            decode(data)


@given(message_headers(), st.data())
def test_truncated_headers_raise(header: MessageHeader, data: st.DataObject) -> None:
    raw = header.encode()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(MessageError):
        MessageHeader.decode(raw[:cut])


def test_status_report_layout_and_error() -> None:
    report = StatusReport(general_code=1, protocol_id=0x0000_0002, protocol_code=0x0052)
    assert report.encode().hex() == "0100" + "02000000" + "5200"
    assert StatusReport.decode(report.encode() + b"xy").data == b"xy"
    err = StatusError(1, 0, 2, reason="bad pake")
    assert err.report == StatusReport(1, 0, 2) and "bad pake" in str(err)


# -- counters ---------------------------------------------------------------------------------


def test_initial_counter_range() -> None:
    assert random_initial_counter(lambda _bits: 0) == 1
    assert random_initial_counter(lambda _bits: 0xFFFF_FFFF) == 1 << 28
    assert all(1 <= random_initial_counter() <= 1 << 28 for _ in range(100))


def test_counter_wraps_or_exhausts() -> None:
    global_counter = MessageCounter(0xFFFF_FFFF, wraps=True)
    assert global_counter.next() == 0xFFFF_FFFF and global_counter.next() == 0
    session_counter = MessageCounter(0xFFFF_FFFE, wraps=False)
    assert session_counter.next() == 0xFFFF_FFFE
    with pytest.raises(CounterExhausted):
        session_counter.next()


def test_encrypted_window() -> None:
    state = ReceptionState(encrypted_unicast=True)
    assert state.accept(100)
    assert not state.accept(100)  # the max counter again
    assert state.accept(100 - COUNTER_WINDOW)  # the oldest slot of the window
    assert not state.accept(100 - COUNTER_WINDOW)
    assert not state.accept(100 - COUNTER_WINDOW - 1)  # behind the window: duplicate
    assert state.accept(99) and not state.accept(99)
    assert state.accept(105)  # ahead: shifts the window by 5
    assert not state.accept(99) and not state.accept(100) and state.accept(98)
    assert state.accept(105 + 40)  # beyond the window: all older ones forgotten
    assert not state.accept(105)  # now behind the window
    assert not state.accept(0)
    # No rollover on encrypted unicast: a small counter after a big one is old, not new.
    state = ReceptionState(encrypted_unicast=True)
    assert state.accept(0xFFFF_FFF0)
    assert not state.accept(3)


def test_unencrypted_window_trusts_first_and_rolls_over() -> None:
    state = ReceptionState(encrypted_unicast=False)
    assert state.max_counter is None
    assert state.accept(0xFFFF_FFF0)
    assert not state.accept(0xFFFF_FFF0)
    assert state.accept(5)  # rolled over: 21 ahead
    assert not state.accept(0xFFFF_FFF0)  # still inside the window behind 5
    assert state.accept(0xFFFF_FFF1)
    # Far behind the window: the peer rebooted with a new counter; accepted, window reset.
    assert state.accept(0x4000_0000 + 5)
    assert state.accept(0x0000_1000)
    assert state.max_counter == 0x0000_1000


@given(st.lists(st.integers(0, 200), max_size=80))
def test_encrypted_window_never_accepts_twice(counters: list[int]) -> None:
    state = ReceptionState(encrypted_unicast=True)
    seen: set[int] = set()
    for counter in counters:
        if state.accept(counter):
            assert counter not in seen
            seen.add(counter)
        elif counter not in seen:
            # Refusing a never-seen counter is right only behind the window (or the initial 0).
            assert state.max_counter is not None
            assert counter < state.max_counter - COUNTER_WINDOW or counter == 0


def test_derive_session_keys_shape() -> None:
    keys = derive_session_keys(b"secret" * 5, b"")
    assert len(keys.i2r_key) == len(keys.r2i_key) == len(keys.attestation_challenge) == 16
    assert keys != derive_session_keys(b"secret" * 5, b"", info=b"SessionResumptionKeys")
