"""BDX wire format (Matter Core 11.22.5/6): exact bytes, round trips, decoder robustness."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota.bdx import messages as m
from matter_ota.bdx.messages import (
    BdxError,
    BlockQueryWithSkip,
    CounterMessage,
    DataBlock,
    DriveMode,
    Opcode,
    ReceiveAccept,
    SendAccept,
    StatusCode,
    TransferInit,
)
from matter_ota.messaging.status import GeneralCode, Protocol, StatusReport


def test_status_codes_match_the_spec_table() -> None:
    # Matter Core 11.22.4, also connectedhomeip bdx::StatusCode and matter.js BdxStatusCode.
    assert {c.name: c.value for c in StatusCode} == {
        "LENGTH_TOO_LARGE": 0x12, "LENGTH_TOO_SHORT": 0x13, "LENGTH_MISMATCH": 0x14,
        "LENGTH_REQUIRED": 0x15, "BAD_MESSAGE_CONTENTS": 0x16, "BAD_BLOCK_COUNTER": 0x17,
        "UNEXPECTED_MESSAGE": 0x18, "RESPONDER_BUSY": 0x19,
        "TRANSFER_FAILED_UNKNOWN_ERROR": 0x1F, "TRANSFER_METHOD_NOT_SUPPORTED": 0x50,
        "FILE_DESIGNATOR_UNKNOWN": 0x51, "START_OFFSET_NOT_SUPPORTED": 0x52,
        "VERSION_NOT_SUPPORTED": 0x53, "UNKNOWN": 0x5F,
    }
    assert [int(o) for o in Opcode] == [1, 2, 4, 5, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15]


def test_receive_init_bytes_as_the_sdk_lays_them_out() -> None:
    # A requestor's ReceiveInit: receiver drive, version 0, block 1024, no offset, no length,
    # designator "fw/1" (connectedhomeip TransferInit::WriteToBuffer layout).
    init = TransferInit(DriveMode.RECEIVER_DRIVE, 1024, b"fw/1")
    assert init.encode() == bytes([0x20, 0x00]) + struct.pack("<H", 1024) + b"\x04\x00fw/1"
    assert TransferInit.decode(init.encode()) == init


def test_init_with_offset_and_length_narrow_and_wide() -> None:
    narrow = TransferInit(DriveMode.RECEIVER_DRIVE | DriveMode.SENDER_DRIVE, 512, b"x",
                          start_offset=4096, max_length=100, metadata=b"\x15\x18")
    raw = narrow.encode()
    # PTC 0x30, RC = DEFLEN|STARTOFS = 0x03, 32-bit offset then length.
    assert raw[:4] == bytes([0x30, 0x03]) + struct.pack("<H", 512)
    assert raw[4:12] == struct.pack("<II", 4096, 100)
    assert raw[12:] == b"\x01\x00x\x15\x18"
    assert TransferInit.decode(raw) == narrow
    wide = TransferInit(DriveMode.RECEIVER_DRIVE, 512, b"x", start_offset=1 << 33)
    raw = wide.encode()
    assert raw[1] == 0x12  # STARTOFS | WIDERANGE
    assert raw[4:12] == struct.pack("<Q", 1 << 33)
    assert TransferInit.decode(raw) == wide


def test_receive_accept_carries_offset_only_when_asked() -> None:
    plain = ReceiveAccept(DriveMode.RECEIVER_DRIVE, 1194, length=5000)
    assert plain.encode() == bytes([0x20, 0x01]) + struct.pack("<HI", 1194, 5000)
    resumed = ReceiveAccept(DriveMode.RECEIVER_DRIVE, 1194, length=5000, start_offset=100)
    assert resumed.encode()[1] == 0x03
    assert ReceiveAccept.decode(resumed.encode()) == resumed
    assert ReceiveAccept.decode(plain.encode()) == plain


def test_small_messages() -> None:
    assert CounterMessage(7).encode() == b"\x07\x00\x00\x00"
    assert BlockQueryWithSkip(1, 2).encode() == struct.pack("<IQ", 1, 2)
    assert DataBlock(3, b"abc").encode() == b"\x03\x00\x00\x00abc"
    assert SendAccept(DriveMode.SENDER_DRIVE, 64).encode() == b"\x10\x40\x00"
    assert m.decode(Opcode.BLOCK_EOF, b"\x00\x00\x00\x00") == DataBlock(0, b"")


def test_error_is_a_bdx_status_report() -> None:
    with pytest.raises(BdxError) as info:
        CounterMessage.decode(b"\x01\x02")
    assert info.value.code is StatusCode.BAD_MESSAGE_CONTENTS
    assert info.value.report == StatusReport(GeneralCode.FAILURE, Protocol.BDX, 0x16)
    with pytest.raises(BdxError) as info:
        m.decode(0x03, b"")
    assert info.value.code is StatusCode.UNEXPECTED_MESSAGE


@pytest.mark.parametrize("raw", [
    b"", b"\x20", b"\x20\x00\x00", b"\x20\x01\x00\x04", b"\x20\x00\x00\x04\x05\x00abc",
    b"\x20\x12\x00\x04\x00\x00\x00\x00",
])
def test_truncated_init_is_bad_message_contents(raw: bytes) -> None:
    with pytest.raises(BdxError) as info:
        TransferInit.decode(raw)
    assert info.value.code is StatusCode.BAD_MESSAGE_CONTENTS


init_strategy = st.builds(
    TransferInit,
    modes=st.sampled_from([DriveMode.RECEIVER_DRIVE, DriveMode.SENDER_DRIVE,
                           DriveMode.RECEIVER_DRIVE | DriveMode.SENDER_DRIVE | DriveMode.ASYNC]),
    max_block_size=st.integers(0, 0xFFFF),
    file_designator=st.binary(max_size=300),
    start_offset=st.integers(0, m.U64_MAX),
    max_length=st.integers(0, m.U64_MAX),
    version=st.integers(0, 15),
    metadata=st.binary(max_size=40),
)


@given(init_strategy)
def test_init_round_trip(init: TransferInit) -> None:
    assert TransferInit.decode(init.encode()) == init


@given(st.builds(ReceiveAccept, mode=st.sampled_from(list(DriveMode)),
                 max_block_size=st.integers(0, 0xFFFF), length=st.integers(0, m.U64_MAX),
                 start_offset=st.one_of(st.none(), st.integers(0, m.U64_MAX)),
                 version=st.integers(0, 15), metadata=st.binary(max_size=20)))
def test_receive_accept_round_trip(accept: ReceiveAccept) -> None:
    assert ReceiveAccept.decode(accept.encode()) == accept


@settings(max_examples=600)
@given(st.integers(0, 0xFF), st.binary(max_size=64))
def test_decoders_raise_only_bdx_error(opcode: int, payload: bytes) -> None:
    try:
        message = m.decode(opcode, payload)
    except BdxError:
        return
    # Whatever decodes re-encodes to a message that decodes to the same value.
    assert m.decode(opcode, message.encode()) == message


@given(init_strategy, st.data())
def test_truncating_a_valid_init_never_escapes(init: TransferInit, data: st.DataObject) -> None:
    raw = init.encode()
    cut = data.draw(st.integers(0, len(raw)))
    try:
        TransferInit.decode(raw[:cut])
    except BdxError as err:
        assert err.code is StatusCode.BAD_MESSAGE_CONTENTS
