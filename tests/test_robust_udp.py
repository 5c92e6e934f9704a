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

import anyio

from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.header import MessageHeader, ProtocolHeader
from matter_ota.messaging.status import Protocol
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.runtime import ratelimit

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
