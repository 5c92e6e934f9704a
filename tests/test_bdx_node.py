"""BDX between nodes in memory: the provider's BdxServer and requestor downloads, time by hand."""

from __future__ import annotations

import hashlib
import io
import random

import pytest
from bdx_pair import BdxNet, Device
from hypothesis import given, settings
from hypothesis import strategies as st
from msg_pair import Recorder

from matter_ota.bdx.client import DownloadCompleted, DownloadFailed
from matter_ota.bdx.image_source import BytesImage
from matter_ota.bdx.messages import (
    CounterMessage,
    DriveMode,
    Opcode,
    ReceiveAccept,
    StatusCode,
    TransferInit,
)
from matter_ota.bdx.receiver import ReceiverState
from matter_ota.bdx.sender import (
    DEFAULT_IDLE_TIMEOUT,
    FailReason,
    SenderConfig,
    TransferCompleted,
    TransferFailed,
    TransferProgress,
    TransferStarted,
)
from matter_ota.messaging.exchange import Exchange
from matter_ota.messaging.session import SessionKind
from matter_ota.messaging.status import GeneralCode, Protocol, StatusReport
from matter_ota.ota_image import build_image, verify_bytes

PAYLOAD = random.Random(7).randbytes(300_000)
IMAGE = build_image(PAYLOAD, vendor_id=0xFFF1, product_id=0x8001, software_version=2,
                    software_version_string="2.0")
DESIGNATOR = "fff1-8001-2"


class Lookup:
    """Only the released designator resolves; every opened image is remembered."""

    def __init__(self, data: bytes = IMAGE) -> None:
        self.data = data
        self.opened: list[BytesImage] = []

    def __call__(self, designator: str) -> BytesImage | None:
        if designator != DESIGNATOR:
            return None
        self.opened.append(BytesImage(self.data))
        return self.opened[-1]


def of(events: list[object], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def status_of(report: StatusReport | None) -> StatusCode | None:
    assert report is not None and report.general_code == GeneralCode.FAILURE
    assert report.protocol_id == Protocol.BDX
    return StatusCode(report.protocol_code)


def test_full_transfer_of_an_image() -> None:
    lookup = Lookup()
    net = BdxNet(lookup)
    dev = net.add_device()
    sink = io.BytesIO()
    download = dev.download(DESIGNATOR.encode(), sink)
    net.run()
    assert sink.getvalue() == IMAGE
    header = verify_bytes(sink.getvalue(), vendor_id=0xFFF1, software_version=2)
    assert header.digest == hashlib.sha256(PAYLOAD).digest()
    assert of(dev.events, DownloadCompleted) == [DownloadCompleted(download)]
    rx = download.receiver
    assert rx.accept is not None and rx.accept.mode is DriveMode.RECEIVER_DRIVE
    assert rx.accept.max_block_size == 1194 and rx.accept.length == len(IMAGE)
    started, *_, completed = [e for e in net.provider_events
                              if isinstance(e, TransferStarted | TransferCompleted)]
    assert started.device == ("case", 1, dev.node_id) and started.designator == DESIGNATOR
    assert completed.bytes_sent == len(IMAGE)
    assert of(net.provider_events, TransferProgress)[-1].bytes_sent == len(IMAGE)
    assert lookup.opened[0].closed and len(net.server.table) == 0
    # Nothing left behind on either node once the acks settled.
    net.advance(1.0)
    assert len(net.provider.exchanges) == 0 and len(dev.node.exchanges) == 0


def test_resume_and_skip() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    sink = io.BytesIO()
    dl = dev.download(DESIGNATOR.encode(), sink, start_offset=123_456)
    net.run()
    assert dl.receiver.state is ReceiverState.DONE and sink.getvalue() == IMAGE[123_456:]
    last = of(net.provider_events, TransferProgress)[-1]
    assert last.position == len(IMAGE) and last.bytes_sent == len(IMAGE) - 123_456
    sink = io.BytesIO()
    dl = dev.download(DESIGNATOR.encode(), sink, max_block_size=1000, skips={3: 50_000})
    net.run()
    assert sink.getvalue() == IMAGE[:3000] + IMAGE[53_000:]


def test_sender_drive() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    sink = io.BytesIO()
    dl = dev.download(DESIGNATOR.encode(), sink, modes=DriveMode.SENDER_DRIVE)
    net.run()
    assert dl.receiver.accept is not None
    assert dl.receiver.accept.mode is DriveMode.SENDER_DRIVE and sink.getvalue() == IMAGE


def test_loss_is_repaired_by_mrp() -> None:
    net = BdxNet(Lookup(IMAGE[:60_000]))
    dev = net.add_device()
    sink = io.BytesIO()
    rng = random.Random(3)
    lost = []

    def drop(data: bytes) -> bool:
        if rng.random() < 0.15:
            lost.append(data)
            return True
        return False

    dl = dev.download(DESIGNATOR.encode(), sink)
    net.advance(120.0, drop)
    assert len(lost) > 10
    assert dl.receiver.state is ReceiverState.DONE and sink.getvalue() == IMAGE[:60_000]
    assert of(net.provider_events, TransferCompleted)


def test_unknown_designator() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    dev.download(b"fw/../../etc/shadow", io.BytesIO())
    net.run()
    (failed,) = of(dev.events, DownloadFailed)
    assert status_of(failed.report) is StatusCode.FILE_DESIGNATOR_UNKNOWN
    assert of(net.provider_events, TransferStarted) == []


def _raw(dev: Device, net: BdxNet) -> tuple[Exchange, Recorder]:
    rec = Recorder()
    return dev.node.new_exchange(dev.session, rec, net.now), rec


def _init(**kw: object) -> bytes:
    fields: dict[str, object] = {"modes": DriveMode.RECEIVER_DRIVE, "max_block_size": 1024,
                                 "file_designator": DESIGNATOR.encode()}
    fields.update(kw)
    return TransferInit(**fields).encode()  # type: ignore[arg-type]


def test_wrong_block_counter_gets_a_status_report() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    ex, rec = _raw(dev, net)
    ex.send(Protocol.BDX, Opcode.RECEIVE_INIT, _init())
    net.run()
    assert ReceiveAccept.decode(rec.messages[0].payload).length == len(IMAGE)
    ex.send(Protocol.BDX, Opcode.BLOCK_QUERY, CounterMessage(5).encode())
    net.run()
    report = StatusReport.decode(rec.messages[1].payload)
    assert rec.messages[1].is_status_report()
    assert status_of(report) is StatusCode.BAD_BLOCK_COUNTER
    (failed,) = of(net.provider_events, TransferFailed)
    assert failed.reason is FailReason.PROTOCOL_ERROR
    assert failed.status is StatusCode.BAD_BLOCK_COUNTER
    assert len(net.server.table) == 0


def test_unexpected_opcode_and_send_init() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    ex, rec = _raw(dev, net)
    ex.send(Protocol.BDX, Opcode.RECEIVE_INIT, _init())
    net.run()
    ex.send(Protocol.BDX, Opcode.BLOCK_ACK_EOF, CounterMessage(0).encode())
    net.run()
    assert status_of(StatusReport.decode(rec.messages[1].payload)) is StatusCode.UNEXPECTED_MESSAGE
    ex2, rec2 = _raw(dev, net)
    ex2.send(Protocol.BDX, Opcode.SEND_INIT, _init())
    net.run()
    assert status_of(StatusReport.decode(rec2.messages[0].payload)) is (
        StatusCode.TRANSFER_METHOD_NOT_SUPPORTED)


def test_busy_limit() -> None:
    net = BdxNet(Lookup(), SenderConfig(max_transfers=2))
    devs = [net.add_device() for _ in range(3)]
    exchanges = [_raw(d, net) for d in devs]
    for ex, _ in exchanges:
        ex.send(Protocol.BDX, Opcode.RECEIVE_INIT, _init())
    net.run()
    accepted = [rec for _, rec in exchanges if not rec.messages[0].is_status_report()]
    refused = [rec for _, rec in exchanges if rec.messages[0].is_status_report()]
    assert len(accepted) == 2 and len(refused) == 1
    assert status_of(StatusReport.decode(refused[0].messages[0].payload)) is (
        StatusCode.RESPONDER_BUSY)


def test_same_device_restarting_supersedes_its_transfer() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    ex, _ = _raw(dev, net)
    ex.send(Protocol.BDX, Opcode.RECEIVE_INIT, _init())
    net.run()
    sink = io.BytesIO()
    dev.download(DESIGNATOR.encode(), sink)  # the device rebooted and asks again
    net.run()
    assert sink.getvalue() == IMAGE
    (failed,) = of(net.provider_events, TransferFailed)
    assert failed.reason is FailReason.SUPERSEDED


def test_idle_timeout_is_at_least_five_minutes() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    ex, rec = _raw(dev, net)
    ex.send(Protocol.BDX, Opcode.RECEIVE_INIT, _init())
    net.run()
    ex.send(Protocol.BDX, Opcode.BLOCK_QUERY, CounterMessage(0).encode())
    net.run()
    assert len(rec.messages) == 2  # accept, block 0; then the device goes quiet
    net.advance(DEFAULT_IDLE_TIMEOUT - 1)
    assert of(net.provider_events, TransferFailed) == [] and len(net.server.table) == 1
    # A late query still works and resets the timer.
    ex.send(Protocol.BDX, Opcode.BLOCK_QUERY, CounterMessage(1).encode())
    net.advance(DEFAULT_IDLE_TIMEOUT - 1)
    assert of(net.provider_events, TransferFailed) == []
    net.advance(2)
    (failed,) = of(net.provider_events, TransferFailed)
    assert failed.reason is FailReason.IDLE_TIMEOUT and len(net.server.table) == 0


def test_peer_abort() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    dl = dev.download(DESIGNATOR.encode(), io.BytesIO(), max_block_size=100)
    net.step()
    net.step()
    dl.abort(net.now)
    net.run()
    (failed,) = of(net.provider_events, TransferFailed)
    assert failed.reason is FailReason.PEER_STATUS
    assert failed.status is StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR


def test_session_closed_fails_the_transfer() -> None:
    net = BdxNet(Lookup())
    dev = net.add_device()
    ex, _ = _raw(dev, net)
    ex.send(Protocol.BDX, Opcode.RECEIVE_INIT, _init())
    net.run()
    (session,) = list(net.provider.sessions)
    net.provider.remove_session(session)
    net.drain()
    (failed,) = of(net.provider_events, TransferFailed)
    assert failed.reason is FailReason.SESSION_CLOSED and len(net.server.table) == 0


def test_session_kinds_are_explicit() -> None:
    net = BdxNet(Lookup(), kind=SessionKind.PASE)  # default: CASE only
    dev = net.add_device()
    dl = dev.download(DESIGNATOR.encode(), io.BytesIO())
    net.run()
    assert dl.receiver.state is ReceiverState.AWAIT_ACCEPT  # dropped, never answered
    assert net.provider_events == []
    net = BdxNet(Lookup(), kind=SessionKind.PASE,
                 sessions=(SessionKind.CASE, SessionKind.PASE))
    dev = net.add_device()
    sink = io.BytesIO()
    dev.download(DESIGNATOR.encode(), sink)
    net.run()
    assert sink.getvalue() == IMAGE
    with pytest.raises(ValueError, match="unsecured"):
        BdxNet(Lookup(), sessions=(SessionKind.UNSECURED,))


def test_twenty_concurrent_transfers() -> None:
    lookup = Lookup()
    net = BdxNet(lookup)
    devs = [net.add_device() for _ in range(20)]
    sinks = [io.BytesIO() for _ in devs]
    downloads = [d.download(DESIGNATOR.encode(), s, start_offset=i * 1000)
                 for i, (d, s) in enumerate(zip(devs, sinks, strict=True))]
    net.step()
    assert len(net.server.table) == 20  # all running at once
    net.run()
    for i, (dl, sink) in enumerate(zip(downloads, sinks, strict=True)):
        assert dl.receiver.state is ReceiverState.DONE
        assert sink.getvalue() == IMAGE[i * 1000:]
    assert len(of(net.provider_events, TransferCompleted)) == 20
    assert all(image.closed for image in lookup.opened)


_OPS = [int(o) for o in Opcode] + [0x40, 0x03, 0xFF]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_OPS),
                          st.one_of(st.binary(max_size=16),
                                    st.integers(0, 3).map(lambda n: CounterMessage(n).encode()))),
                max_size=8))
def test_any_message_sequence_leaves_the_server_consistent(
        steps: list[tuple[int, bytes]]) -> None:
    net = BdxNet(Lookup(IMAGE[:5000]))
    dev = net.add_device()
    ex, _ = _raw(dev, net)
    ex.send(Protocol.BDX, Opcode.RECEIVE_INIT, _init(max_block_size=1000))
    net.run()
    for opcode, payload in steps:
        if ex.closed:
            break
        protocol = Protocol.SECURE_CHANNEL if opcode == 0x40 else Protocol.BDX
        ex.send(protocol, opcode, payload)
        net.run()
    net.advance(DEFAULT_IDLE_TIMEOUT + 60)
    # Every transfer ended exactly once, nothing is left open or attached.
    started = of(net.provider_events, TransferStarted)
    ended = of(net.provider_events, TransferCompleted) + of(net.provider_events, TransferFailed)
    assert len(started) == 1 and len(ended) == 1
    assert len(net.server.table) == 0 and net.server._exchanges == {}
    assert len(net.provider.exchanges) == 0


def test_shutdown_ends_every_transfer() -> None:
    lookup = Lookup()
    net = BdxNet(lookup)
    for dev in [net.add_device() for _ in range(3)]:
        dev.download(DESIGNATOR.encode(), io.BytesIO())
    net.step()
    assert len(net.server.table) == 3
    net.server.shutdown(net.now)
    net.run()
    for dev in net.devices:  # each device is told, it does not wait for its idle timeout
        (failed_download,) = of(dev.events, DownloadFailed)
        assert status_of(failed_download.report) is StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR
    failed = of(net.provider_events, TransferFailed)
    assert [f.reason for f in failed] == [FailReason.SHUTDOWN] * 3
    assert all(f.reason.store_state == "aborted" for f in failed)
    assert len(net.server.table) == 0 and all(image.closed for image in lookup.opened)
    net.advance(1.0)
    assert len(net.provider.exchanges) == 0
