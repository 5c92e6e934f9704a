"""The UDP runtime under a flood: 20,000 garbage datagrams from one loopback socket while a
legitimate client opens PASE and reads. The legitimate exchange completes, the daemon stays up
and the log stays bounded (no line per garbage datagram at INFO; DEBUG drop lines rate-limited).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import struct
import time

import anyio
from adversary import PASSCODE, World

from matter_ota.im.messages import AttributePathIB, Opcode, ReadRequest
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.header import MessageHeader, ProtocolHeader
from matter_ota.messaging.session import SecureSession
from matter_ota.messaging.status import Protocol
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.node import Node, SessionEstablished
from matter_ota.runtime import ratelimit
from matter_ota.runtime.udp import UdpTransport
from matter_ota.secure_channel.pase_node import start_pase

FLOOD = 20_000
LOCAL = "127.0.0.1"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class _Read(ExchangeDelegate):
    def __init__(self) -> None:
        self.reports: list[Message] = []

    def on_message(self, exchange: Exchange, message: Message) -> None:
        self.reports.append(message)
        exchange.close()

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        pass


def garbage(rng: random.Random, n: int) -> bytes:
    """Every other datagram is pure noise; the rest look like session establishment (a valid
    unsecured header from a fresh ephemeral node id, handshake opcodes, junk payloads) or like
    secured traffic of unknown sessions, so the flood reaches deep into the node."""
    kind = n % 4
    if kind in (0, 2):
        return rng.randbytes(rng.randrange(0, 1400))
    if kind == 1:
        opcode = rng.choice([Op.PBKDF_PARAM_REQUEST, Op.CASE_SIGMA1, Op.PASE_PAKE1, 0x77])
        header = MessageHeader(0, n, source_node_id=rng.getrandbits(63) | 1)
        proto = ProtocolHeader(protocol_id=Protocol.SECURE_CHANNEL, opcode=opcode,
                               exchange_id=n & 0xFFFF, initiator=True, requires_ack=True)
        return header.encode() + proto.encode() + rng.randbytes(rng.randrange(0, 200))
    return struct.pack("<BHBI", 0, rng.randrange(1, 0x10000), 0, n) + rng.randbytes(40)


async def _flood(target: tuple[str, int], legit_done: anyio.Event, stop: anyio.Event) -> None:
    """At least FLOOD datagrams, and on until the legitimate client is done."""
    rng = random.Random(1234)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind((LOCAL, 0))
        while sent < FLOOD or not legit_done.is_set():
            for _ in range(50):
                with contextlib.suppress(BlockingIOError):
                    sock.sendto(garbage(rng, sent), target)
                sent += 1
            await anyio.sleep(0.001)
    FLOOD_SENT.append(sent)
    stop.set()


FLOOD_SENT: list[int] = []


async def _until(condition: object, seconds: float) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # type: ignore[operator]
            await anyio.sleep(0.005)


def test_flood_of_garbage_does_not_stop_a_legitimate_pase_and_read() -> None:
    world = World()
    capture = _Capture()
    root = logging.getLogger("matter_ota")
    old_level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    events: list[object] = []
    try:
        async def main() -> tuple[float, UdpTransport]:
            server = UdpTransport(world.server, host=LOCAL, port=0)
            client_node = Node()
            client = UdpTransport(client_node, host=LOCAL, port=0, on_event=events.append)
            async with anyio.create_task_group() as tg:
                target = await tg.start(server.run)
                await tg.start(client.run)
                flood_done, legit_done = anyio.Event(), anyio.Event()
                tg.start_soon(_flood, target, legit_done, flood_done)
                await anyio.sleep(0.05)  # the flood is under way
                started = time.monotonic()
                start_pase(client_node, target, PASSCODE, time.monotonic())
                client.kick()

                def established() -> SecureSession | None:
                    found = [e.session for e in events if isinstance(e, SessionEstablished)]
                    return found[0] if found else None

                await _until(established, 30)
                session = established()
                assert session is not None
                read = _Read()
                request = ReadRequest(attribute_requests=[AttributePathIB(
                    endpoint=0, cluster=0x0028, attribute=0x0002)], fabric_filtered=True)
                client_node.new_exchange(session, read, time.monotonic()).send(
                    Protocol.INTERACTION_MODEL, Opcode.READ_REQUEST, request.encode())
                client.kick()
                await _until(lambda: read.reports, 30)
                elapsed = time.monotonic() - started
                assert read.reports[0].opcode == Opcode.REPORT_DATA
                flood_was_running = not flood_done.is_set()
                legit_done.set()
                await flood_done.wait()
                await anyio.sleep(0.2)  # let the server work through its queues
                tg.cancel_scope.cancel()
            print(f"\nPASE + read under a flood of {FLOOD_SENT[-1]} datagrams: "
                  f"{elapsed * 1000:.0f} ms "
                  f"(flood still running when done: {flood_was_running}); server received "
                  f"{server.stats.received}, dropped {server.stats.handshake_dropped} "
                  f"handshake datagrams, slowest {server.stats.slowest * 1000:.1f} ms")
            return elapsed, server

        _elapsed, server = anyio.run(main)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
        ratelimit.uninstall()  # the transports installed it; later tests count their own lines
    assert server.stats.errors == 0  # no exception reached the loop's guard
    assert server.stats.received > FLOOD // 4
    info = [r for r in capture.records if r.levelno >= logging.INFO]
    debug = [r for r in capture.records if r.levelno < logging.INFO]
    by_event: dict[str, int] = {}
    for r in info:
        key = str(r.msg).split(" ", 1)[0]
        by_event[key] = by_event.get(key, 0) + 1
    print(f"log lines: {len(info)} at INFO or above {by_event}, {len(debug)} at DEBUG")
    assert len(info) < 300, by_event
    assert len(debug) < 1000


def test_log_limit_lets_a_burst_through_then_counts_what_it_suppressed() -> None:
    now = [0.0]
    limit = ratelimit.PeerEventLimit(burst=3, interval=10.0, clock=lambda: now[0])

    def record(msg: str, level: int = logging.DEBUG, *args: object) -> logging.LogRecord:
        return logging.LogRecord("matter_ota.node", level, __file__, 1, msg, args, None)

    passed = [limit.filter(record("event=drop peer=%s", logging.DEBUG, "x")) for _ in range(10)]
    assert passed == [True] * 3 + [False] * 7
    assert limit.filter(record("event=duplicate peer=%s", logging.DEBUG, "x"))  # its own budget
    assert limit.filter(record("event=session_established kind=case", logging.INFO))
    assert all(limit.filter(record("event=odd", logging.WARNING)) for _ in range(10))
    assert [limit.filter(record("event=status_sent x", logging.INFO)) for _ in range(4)] == [
        True, True, True, False]
    now[0] = 10.0
    first = record("event=drop peer=%s", logging.DEBUG, "y")
    assert limit.filter(first)
    assert first.getMessage() == "event=drop peer=y suppressed=7"
