"""The provider's sans-IO BDX sender: negotiation, the state table, counters, limits, events."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from matter_ota.bdx.image_source import BytesImage, FileImage, ReleasedImages
from matter_ota.bdx.messages import (
    BdxError,
    BlockQueryWithSkip,
    CounterMessage,
    DataBlock,
    DriveMode,
    Opcode,
    ReceiveAccept,
    StatusCode,
    TransferInit,
)
from matter_ota.bdx.receiver import ReceiverState, ReceiverTransfer
from matter_ota.bdx.sender import (
    DEFAULT_IDLE_TIMEOUT,
    MAX_BLOCK_SIZE,
    TRANSITIONS,
    FailReason,
    Input,
    SenderConfig,
    SenderTransfer,
    State,
    TransferCompleted,
    TransferFailed,
    TransferProgress,
    TransferStarted,
)
from matter_ota.bdx.transfers import TransferTable
from matter_ota.messaging.header import MAX_SECURE_PAYLOAD

IMAGE = bytes((i * 7 + 3) % 251 for i in range(10_000))
RD = DriveMode.RECEIVER_DRIVE
SD = DriveMode.SENDER_DRIVE


class HashSink:
    """A sink that keeps only a digest (what a requestor verifying an image does)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.hash.update(data)
        self.size += len(data)


class Images:
    """A lookup that knows one designator and records what it opened."""

    def __init__(self, data: bytes = IMAGE, name: str = "fw-2") -> None:
        self.data, self.name = data, name
        self.opened: list[BytesImage] = []

    def __call__(self, designator: str) -> BytesImage | None:
        if designator != self.name:
            return None
        image = BytesImage(self.data)
        self.opened.append(image)
        return image


def init(designator: bytes = b"fw-2", **kw: object) -> bytes:
    fields: dict[str, object] = {"modes": RD, "max_block_size": 1024,
                                 "file_designator": designator}
    fields.update(kw)
    return TransferInit(**fields).encode()  # type: ignore[arg-type]


def events(table: TransferTable) -> list[object]:
    out = []
    while (e := table.next_event()) is not None:
        out.append(e)
    return out


def run(table: TransferTable, rx: ReceiverTransfer, device: object = "dev",
        now: float = 0.0) -> SenderTransfer:
    """Drive a full transfer between the table and a sans-IO receiver, in memory."""
    first = rx.start()
    transfer, accept, _ = table.open(device, first.payload, now)
    pending = [(Opcode.RECEIVE_ACCEPT, accept.encode())]
    pending += [(s.opcode, s.payload) for s in table.start(transfer, now)]
    while pending:
        replies = []
        for opcode, payload in pending:
            for s in rx.receive(opcode, payload):
                replies += [(r.opcode, r.payload) for r in
                            table.receive(transfer, s.opcode, s.payload, now)]
        pending = replies
    return transfer


def test_block_size_fits_one_datagram() -> None:
    assert MAX_BLOCK_SIZE + 4 == MAX_SECURE_PAYLOAD
    table = TransferTable(Images())
    _, accept, _ = table.open("d", init(max_block_size=0xFFFF), 0.0)
    assert accept.max_block_size == MAX_BLOCK_SIZE
    assert DEFAULT_IDLE_TIMEOUT >= 300  # TC-SU-3.x


@pytest.mark.parametrize("modes", [RD, SD, RD | SD])
def test_full_transfer_both_drive_modes(modes: DriveMode) -> None:
    images = Images()
    table = TransferTable(images, SenderConfig(progress_step=4096))
    sink = io.BytesIO()
    rx = ReceiverTransfer(b"fw-2", sink, modes=modes, max_block_size=1000)
    transfer = run(table, rx)
    assert sink.getvalue() == IMAGE and rx.state is ReceiverState.DONE
    assert transfer.state is State.DONE and len(table) == 0
    assert transfer.mode is (RD if modes & RD else SD)  # receiver drive preferred
    assert rx.blocks == 10 and images.opened[0].closed
    seen = events(table)
    assert isinstance(seen[0], TransferStarted) and seen[0].length == len(IMAGE)
    assert [e.bytes_sent for e in seen if isinstance(e, TransferProgress)] == [
        5000, 10_000]
    assert isinstance(seen[-1], TransferCompleted) and seen[-1].bytes_sent == len(IMAGE)


def test_exact_multiple_ends_with_a_full_block_eof() -> None:
    table = TransferTable(Images(IMAGE[:4000]))
    sink = io.BytesIO()
    rx = ReceiverTransfer(b"fw-2", sink, max_block_size=1000)
    run(table, rx)
    assert sink.getvalue() == IMAGE[:4000] and rx.blocks == 4


def test_resume_from_offset_and_max_length() -> None:
    table = TransferTable(Images())
    sink = io.BytesIO()
    rx = ReceiverTransfer(b"fw-2", sink, start_offset=4321)
    run(table, rx)
    assert rx.accept is not None and rx.accept.start_offset == 4321
    assert sink.getvalue() == IMAGE[4321:]
    sink = io.BytesIO()
    run(table, ReceiverTransfer(b"fw-2", sink, start_offset=10, max_length=2500,
                                max_block_size=1000))
    assert sink.getvalue() == IMAGE[10:2510]


def test_skip() -> None:
    table = TransferTable(Images())
    sink = io.BytesIO()
    rx = ReceiverTransfer(b"fw-2", sink, max_block_size=1000, skips={2: 3000})
    run(table, rx)
    assert sink.getvalue() == IMAGE[:2000] + IMAGE[5000:]
    # A skip past the end gives an empty BlockEOF.
    table2 = TransferTable(Images())
    t, _, _ = table2.open("d", init(max_block_size=1000), 0.0)
    table2.receive(t, Opcode.BLOCK_QUERY, CounterMessage(0).encode(), 0.0)
    out = table2.receive(t, Opcode.BLOCK_QUERY_WITH_SKIP,
                         BlockQueryWithSkip(1, 1 << 40).encode(), 0.0)
    assert out[0].opcode is Opcode.BLOCK_EOF and DataBlock.decode(out[0].payload).data == b""


def test_counters_wrap() -> None:
    table = TransferTable(Images(IMAGE[:3]))
    t, _, _ = table.open("d", init(max_block_size=1), 0.0)
    t._next_counter = 0xFFFF_FFFF
    out = table.receive(t, Opcode.BLOCK_QUERY, CounterMessage(0xFFFF_FFFF).encode(), 0.0)
    assert DataBlock.decode(out[0].payload).counter == 0xFFFF_FFFF
    out = table.receive(t, Opcode.BLOCK_QUERY, CounterMessage(0).encode(), 0.0)
    assert DataBlock.decode(out[0].payload).counter == 0


@pytest.mark.parametrize(("payload", "code"), [
    (init(b"nope"), StatusCode.FILE_DESIGNATOR_UNKNOWN),
    (init(b"\xff\xfe"), StatusCode.FILE_DESIGNATOR_UNKNOWN),
    (init(modes=DriveMode.ASYNC), StatusCode.TRANSFER_METHOD_NOT_SUPPORTED),
    (init(max_block_size=0), StatusCode.BAD_MESSAGE_CONTENTS),
    (init(start_offset=len(IMAGE) + 1), StatusCode.START_OFFSET_NOT_SUPPORTED),
    (init(start_offset=10, max_length=len(IMAGE)), StatusCode.LENGTH_TOO_LARGE),
    (b"\x20\x00", StatusCode.BAD_MESSAGE_CONTENTS),
])
def test_refused_init(payload: bytes, code: StatusCode) -> None:
    images = Images()
    table = TransferTable(images)
    with pytest.raises(BdxError) as info:
        table.open("d", payload, 0.0)
    assert info.value.code is code
    assert len(table) == 0 and all(i.closed for i in images.opened)


def test_designator_is_only_a_lookup_key() -> None:
    asked: list[str] = []

    def lookup(designator: str) -> BytesImage | None:
        asked.append(designator)
        return None

    with pytest.raises(BdxError):
        TransferTable(lookup).open("d", init(b"../../etc/passwd"), 0.0)
    assert asked == ["../../etc/passwd"]  # handed to the lookup as is, never opened as a path


def test_version_negotiates_down() -> None:
    _, accept, _ = TransferTable(Images()).open("d", init(version=3), 0.0)
    assert accept.version == 0


def test_busy_limit_and_one_transfer_per_device() -> None:
    table = TransferTable(Images(), SenderConfig(max_transfers=2))
    a, _, _ = table.open("a", init(), 0.0)
    table.open("b", init(), 0.0)
    with pytest.raises(BdxError) as info:
        table.open("c", init(), 0.0)
    assert info.value.code is StatusCode.RESPONDER_BUSY
    # "a" starts again (rebooted): its old transfer is superseded, not refused as busy.
    a2, _, old = table.open("a", init(), 1.0)
    assert old is a and a.state is State.FAILED and table.get("a") is a2 and len(table) == 2
    failed = [e for e in events(table) if isinstance(e, TransferFailed)]
    assert failed[0].reason is FailReason.SUPERSEDED
    table.fail(a2, FailReason.PEER_STATUS, "gone", 2.0)
    table.open("c", init(), 2.0)  # room again


def test_wrong_block_counter() -> None:
    table = TransferTable(Images())
    t, _, _ = table.open("d", init(), 0.0)
    with pytest.raises(BdxError) as info:
        table.receive(t, Opcode.BLOCK_QUERY, CounterMessage(1).encode(), 0.0)
    assert info.value.code is StatusCode.BAD_BLOCK_COUNTER
    assert t.state is State.FAILED and len(table) == 0
    (failed,) = [e for e in events(table) if isinstance(e, TransferFailed)]
    assert failed.reason is FailReason.PROTOCOL_ERROR
    assert failed.status is StatusCode.BAD_BLOCK_COUNTER


def test_ack_counter_checked() -> None:
    table = TransferTable(Images())
    t, _, _ = table.open("d", init(), 0.0)
    with pytest.raises(BdxError) as info:  # nothing sent yet
        t.receive(Opcode.BLOCK_ACK, CounterMessage(0).encode(), 0.0)
    assert info.value.code is StatusCode.BAD_BLOCK_COUNTER
    t.receive(Opcode.BLOCK_QUERY, CounterMessage(0).encode(), 0.0)
    assert t.receive(Opcode.BLOCK_ACK, CounterMessage(0).encode(), 1.0) == []
    assert t.last_activity == 1.0


# -- the state table (h11 style): every input not in TRANSITIONS is refused, state unchanged --

_VALID_PAYLOAD = {
    Input.BLOCK_QUERY: CounterMessage(0).encode(),
    Input.BLOCK_QUERY_WITH_SKIP: BlockQueryWithSkip(0, 0).encode(),
    Input.BLOCK_ACK: CounterMessage(0).encode(),
    Input.BLOCK_ACK_EOF: CounterMessage(0).encode(),
}


def _transfer_in(state: State) -> SenderTransfer:
    table = TransferTable(Images(IMAGE[:10]))
    mode = SD if state is State.AWAIT_ACK else RD
    block = 4 if state is State.AWAIT_ACK else 1024
    t, _, _ = table.open("d", init(modes=mode, max_block_size=block), 0.0)
    if state is State.AWAIT_ACK:
        t.start(0.0)
    elif state is State.AWAIT_EOF_ACK:
        t.receive(Opcode.BLOCK_QUERY, CounterMessage(0).encode(), 0.0)
    elif state is State.DONE:
        t.receive(Opcode.BLOCK_QUERY, CounterMessage(0).encode(), 0.0)
        t.receive(Opcode.BLOCK_ACK_EOF, CounterMessage(0).encode(), 0.0)
    elif state is State.FAILED:
        t.fail(FailReason.PEER_STATUS, "x", 0.0)
    assert t.state is state
    return t


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("what", [i for i in Input if i is not Input.FAIL])
def test_illegal_inputs_leave_the_state(state: State, what: Input) -> None:
    t = _transfer_in(state)
    if (state, what) in TRANSITIONS:
        try:
            t.receive(int(what.value), _VALID_PAYLOAD[what], 0.0)
        except BdxError as err:  # legal here, but this counter is not the one expected
            assert err.code is StatusCode.BAD_BLOCK_COUNTER
            return
        assert t.state in TRANSITIONS[(state, what)]
        return
    position = t.position
    with pytest.raises(BdxError) as info:
        t.receive(int(what.value), _VALID_PAYLOAD[what], 0.0)
    assert info.value.code is StatusCode.UNEXPECTED_MESSAGE
    assert t.state is state and t.position == position


@pytest.mark.parametrize("opcode", [Opcode.RECEIVE_INIT, Opcode.BLOCK, Opcode.BLOCK_EOF,
                                    Opcode.SEND_ACCEPT, 0x77])
def test_opcodes_a_sender_never_receives(opcode: int) -> None:
    t = _transfer_in(State.AWAIT_QUERY)
    with pytest.raises(BdxError) as info:
        t.receive(opcode, b"\x00\x00\x00\x00", 0.0)
    assert info.value.code is StatusCode.UNEXPECTED_MESSAGE
    assert t.state is State.AWAIT_QUERY


def test_fail_only_once() -> None:
    t = _transfer_in(State.DONE)
    assert not t.fail(FailReason.IDLE_TIMEOUT, "late", 1.0)
    assert t.state is State.DONE


def test_idle_timeout() -> None:
    table = TransferTable(Images())
    t, _, _ = table.open("d", init(), 100.0)
    assert table.next_deadline() == 100.0 + DEFAULT_IDLE_TIMEOUT
    t2 = table.receive(t, Opcode.BLOCK_QUERY, CounterMessage(0).encode(), 200.0)
    assert t2 and table.next_deadline() == 500.0
    assert table.expire(499.9) == []
    assert table.expire(500.0) == [t]
    assert t.state is State.FAILED and len(table) == 0 and table.next_deadline() is None
    failed = [e for e in events(table) if isinstance(e, TransferFailed)]
    assert failed[0].reason is FailReason.IDLE_TIMEOUT


def test_image_read_error_fails_the_transfer() -> None:
    class Broken(BytesImage):
        def read_at(self, offset: int, size: int) -> bytes:
            raise OSError("EIO")

    table = TransferTable(lambda _d: Broken(IMAGE))
    t, _, _ = table.open("d", init(), 0.0)
    with pytest.raises(BdxError) as info:
        table.receive(t, Opcode.BLOCK_QUERY, CounterMessage(0).encode(), 0.0)
    assert info.value.code is StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR
    assert t.failure is not None and t.failure.reason is FailReason.IO_ERROR


def test_file_image_reads_by_offset(tmp_path: Path) -> None:
    path = tmp_path / "img.ota"
    path.write_bytes(IMAGE)
    images: list[FileImage] = []

    def lookup(designator: str) -> FileImage:
        images.append(FileImage(path))
        return images[-1]

    table = TransferTable(lookup)
    sink = HashSink()
    run(table, ReceiverTransfer(b"x", sink))
    assert sink.hash.digest() == hashlib.sha256(IMAGE).digest()
    with pytest.raises(OSError):
        images[0].read_at(0, 1)  # closed when the transfer ended


@settings(max_examples=150)
@given(st.integers(0, 3000), st.integers(1, 700), st.integers(0, 3000), st.integers(0, 3000),
       st.dictionaries(st.integers(0, 8), st.integers(0, 900), max_size=3),
       st.sampled_from([RD, SD]))
def test_any_window_arrives_intact(size: int, block: int, offset: int, length: int,
                                   skips: dict[int, int], mode: DriveMode) -> None:
    assume(offset < size)
    data = IMAGE[:size]
    length = min(length, size - offset)
    if mode is SD:
        skips = {}
    sink = io.BytesIO()
    rx = ReceiverTransfer(b"fw-2", sink, start_offset=offset, max_length=length,
                          max_block_size=block, modes=mode, skips=skips)
    run(TransferTable(Images(data)), rx)
    assert rx.state is ReceiverState.DONE
    # The receiver's view, rebuilt independently: blocks of ``block`` bytes from ``offset``,
    # each skip moving ahead first, clamped at the end of the window.
    end = offset + (length or size - offset)
    pos, counter, expected = offset, 0, b""
    while True:
        pos = min(end, pos + skips.get(counter, 0))
        piece = data[pos : min(end, pos + block)]
        expected += piece
        pos += len(piece)
        counter += 1
        if pos >= end:
            break
    assert sink.getvalue() == expected and rx.blocks == counter


def test_receiver_rejects_bad_sender_messages() -> None:
    rx = ReceiverTransfer(b"fw", io.BytesIO(), max_block_size=100)
    rx.start()
    with pytest.raises(BdxError) as info:
        rx.receive(Opcode.BLOCK, DataBlock(0, b"x").encode())
    assert info.value.code is StatusCode.UNEXPECTED_MESSAGE
    with pytest.raises(BdxError) as info:
        rx.receive(Opcode.RECEIVE_ACCEPT, ReceiveAccept(RD, 200).encode())
    assert info.value.code is StatusCode.BAD_MESSAGE_CONTENTS
    rx.receive(Opcode.RECEIVE_ACCEPT, ReceiveAccept(RD, 100, length=150).encode())
    with pytest.raises(BdxError) as info:
        rx.receive(Opcode.BLOCK, DataBlock(1, b"x").encode())
    assert info.value.code is StatusCode.BAD_BLOCK_COUNTER
    rx.receive(Opcode.BLOCK, DataBlock(0, b"x" * 100).encode())
    with pytest.raises(BdxError) as info:
        rx.receive(Opcode.BLOCK_EOF, DataBlock(1, b"x" * 10).encode())
    assert info.value.code is StatusCode.LENGTH_TOO_SHORT


def test_store_end_states() -> None:
    # The store's TRANSFER_ENDS: a device that started over is not a failed update.
    assert FailReason.SUPERSEDED.store_state == FailReason.SHUTDOWN.store_state == "aborted"
    assert {r.store_state for r in FailReason} == {"aborted", "failed"}
    for reason in (FailReason.PEER_STATUS, FailReason.IDLE_TIMEOUT, FailReason.ACK_TIMEOUT,
                   FailReason.PROTOCOL_ERROR, FailReason.IO_ERROR, FailReason.SESSION_CLOSED):
        assert reason.store_state == "failed"


def test_released_images_lookup(tmp_path: Path) -> None:
    (tmp_path / "fw-2.ota").write_bytes(IMAGE)
    (tmp_path / "secret.ota").write_bytes(b"not released")
    lookup = ReleasedImages({"fw-2": tmp_path / "fw-2.ota"})
    table = TransferTable(lookup)
    sink = io.BytesIO()
    run(table, ReceiverTransfer(b"fw-2", sink))
    assert sink.getvalue() == IMAGE
    for designator in ("secret.ota", "fw-2.ota", str(tmp_path / "secret.ota"), "../fw-2"):
        assert lookup(designator) is None  # only released designators, never a path
    lookup.update({"fw-3": tmp_path / "gone.ota"})
    assert lookup("fw-2") is None and lookup("fw-3") is None  # withdrawn / unreadable
