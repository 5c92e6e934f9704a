"""UDP transport for the sans-IO :class:`~matter_ota.node.Node`, on anyio.

One socket (IPv6 dual-stack where the kernel allows it, IPv4 otherwise, or an explicit address),
two tasks:

- the *reader* takes datagrams off the socket and files them in two bounded queues by a peek at
  the session id (message header bytes 1-2): **session** traffic (session id != 0, AES-CCM only,
  cheap) and **handshake** traffic (session id 0: PASE / CASE, whose public-key crypto costs
  milliseconds);
- the *processor* feeds the node, draining the session queue before each handshake datagram, and
  re-arms one timer from :meth:`Node.next_deadline`.

So a burst of handshakes (a fleet re-checking in after an outage) cannot starve devices that are
already downloading over established sessions: their datagrams overtake the queued handshakes,
and a full handshake queue drops (the initiators retransmit under MRP), which bounds the work
and the memory a flood can cause. Processing stays on the event loop thread; the node is one
state machine and needs no locks. Malformed datagrams are dropped by the node; an unexpected
exception while processing one is logged and never ends the loop.
"""

from __future__ import annotations

import logging
import math
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.lowlevel

from matter_ota.messaging.session import Address
from matter_ota.node import Node

log = logging.getLogger("matter_ota.udp")

DEFAULT_PORT = 5540  # 4.3 / 2.5.6 Matter operational UDP port
MAX_DATAGRAM = 1280  # 4.4.4: IPv6 minimum MTU bounds a Matter message
SLOW_DATAGRAM = 0.050  # seconds of processing worth a log line


@dataclass
class TransportStats:
    """Counters an operator or a test can read."""

    received: int = 0
    sent: int = 0
    handshake_dropped: int = 0
    errors: int = 0
    slowest: float = 0.0


def open_socket(host: str | None, port: int) -> socket.socket:
    """A bound non-blocking UDP socket: dual-stack ``[::]`` by default, IPv4 if no IPv6."""
    if host is None:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        except OSError:
            host = "0.0.0.0"
        else:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                sock.bind(("::", port))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            return sock
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class UdpTransport:
    """Moves datagrams between a UDP socket and a :class:`Node`, and runs its timer."""

    def __init__(
        self,
        node: Node,
        *,
        host: str | None = None,
        port: int = DEFAULT_PORT,
        clock: Callable[[], float] = time.monotonic,
        max_handshake_queue: int = 64,
        max_session_queue: int = 1024,
        on_event: Callable[[object], None] | None = None,
    ) -> None:
        self.node = node
        self.host = host
        self.port = port
        self.clock = clock
        self.stats = TransportStats()
        self.local_address: Address | None = None
        self._max_handshake = max_handshake_queue
        self._max_session = max_session_queue
        self._session_q: deque[tuple[bytes, Address]] = deque()
        self._handshake_q: deque[tuple[bytes, Address]] = deque()
        self._wake = anyio.Event()
        self._sock: anyio.abc.UDPSocket | None = None
        self._on_event = on_event

    async def run(self, *, task_status: anyio.abc.TaskStatus[Address] = anyio.TASK_STATUS_IGNORED,
                  ) -> None:
        """Serve until cancelled; ``task_status.started`` gets the bound (host, port)."""
        raw = open_socket(self.host, self.port)
        async with await anyio.abc.UDPSocket.from_socket(raw) as sock:
            self._sock = sock
            bound = raw.getsockname()
            self.local_address = (str(bound[0]), int(bound[1]))
            log.info("event=listening address=[%s]:%d", *self.local_address)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._reader, sock)
                    task_status.started(self.local_address)
                    await self._processor(sock)
            finally:
                self._sock = None

    async def _reader(self, sock: anyio.abc.UDPSocket) -> None:
        while True:
            try:
                data, addr = await sock.receive()
            except OSError as exc:  # e.g. ICMP port unreachable surfacing on Linux
                log.debug("event=recv_error error=%s", exc)
                continue
            self.stats.received += 1
            peer = (str(addr[0]), int(addr[1]))
            if len(data) >= 3 and data[1] == 0 and data[2] == 0:
                if len(self._handshake_q) >= self._max_handshake:
                    self.stats.handshake_dropped += 1
                    log.debug("event=drop reason=handshake_queue_full peer=[%s]:%d", *peer)
                    continue
                self._handshake_q.append((data, peer))
            else:
                if len(self._session_q) >= self._max_session:
                    log.debug("event=drop reason=session_queue_full peer=[%s]:%d", *peer)
                    continue
                self._session_q.append((data, peer))
            self._wake.set()

    async def _processor(self, sock: anyio.abc.UDPSocket) -> None:
        while True:
            deadline = self.node.next_deadline()
            if not self._session_q and not self._handshake_q:
                timeout = math.inf if deadline is None else max(0.0, deadline - self.clock())
                with anyio.move_on_after(timeout):
                    await self._wake.wait()
                self._wake = anyio.Event()
            if self._session_q:
                self._process(*self._session_q.popleft())
            elif self._handshake_q:
                self._process(*self._handshake_q.popleft())
            deadline = self.node.next_deadline()
            now = self.clock()
            if deadline is not None and deadline <= now:
                self._guard(self.node.handle_timer, now)
            self._drain_events()
            await self._flush(sock)
            await anyio.lowlevel.checkpoint()

    def _process(self, data: bytes, addr: Address) -> None:
        started = self.clock()
        self._guard(self.node.datagram_received, data, addr, started)
        spent = self.clock() - started
        self.stats.slowest = max(self.stats.slowest, spent)
        if spent > SLOW_DATAGRAM:
            log.info("event=slow_datagram ms=%.1f peer=[%s]:%d", spent * 1000, *addr)

    def _guard(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # the node drops bad input itself; this is a bug guard
            self.stats.errors += 1
            log.exception("event=node_error")

    async def _flush(self, sock: anyio.abc.UDPSocket) -> None:
        for data, (host, port) in self.node.datagrams_to_send():
            if len(data) > MAX_DATAGRAM:
                log.warning("event=oversize_datagram size=%d peer=[%s]:%d", len(data), host, port)
            try:
                await sock.sendto(data, host, port)
                self.stats.sent += 1
            except OSError as exc:
                log.debug("event=send_error peer=[%s]:%d error=%s", host, port, exc)

    def _drain_events(self) -> None:
        while (event := self.node.next_event()) is not None:
            if self._on_event is None:
                log.debug("event=node_event type=%s", type(event).__name__)
            else:
                self._guard(self._on_event, event)

    def kick(self) -> None:
        """Wake the processor (call after driving the node from outside, e.g. a new exchange)."""
        self._wake.set()
