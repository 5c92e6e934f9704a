"""UDP transport for the sans-IO :class:`~matter_ota.node.Node`, on anyio.

One non-blocking socket (IPv6 dual-stack where the kernel allows it, IPv4 otherwise, or an
explicit address) and one task that loops:

1. drain every datagram waiting in the socket into two bounded queues, by a peek at the session
   id (message header bytes 1-2): **session** traffic (the id of a session the node holds:
   AES-CCM only, ~20 us a message) and **handshake** traffic (session id 0: PASE / CASE, whose
   public-key crypto costs milliseconds: a PASE responder step is ~15 ms in pure Python; and
   anything naming no session we hold, which is garbage or stale). One source address may hold
   at most an eighth of the handshake queue, so a single flooding peer cannot crowd the others
   out of it;
2. hand the node one datagram, session traffic first;
3. run the node's timer if due, send what it queued, and sleep until the socket is readable or
   :meth:`Node.next_deadline` comes (one timer, re-armed every turn).

Why not threads: the node is one state machine (no locks wanted) and the expensive handshake
arithmetic is pure Python, which holds the GIL, so a worker thread would not let other peers run
anyway. Instead a burst of handshakes (a fleet re-checking in after an outage) delays an
established session's datagram by at most the one handshake step being computed, far below the
300 ms MRP floor, because queued session datagrams overtake queued handshakes; and a full
handshake queue drops new ones (initiators retransmit under MRP), bounding work and memory under a
flood. ``tests/test_msg_udp.py`` measures this. Malformed datagrams are dropped by the node; an
unexpected exception while processing one is logged and never ends the loop.
"""

from __future__ import annotations

import errno
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

from matter_ota.messaging.header import MAX_MESSAGE_SIZE
from matter_ota.messaging.session import Address
from matter_ota.node import Node
from matter_ota.runtime import ratelimit

log = logging.getLogger("matter_ota.udp")

DEFAULT_PORT = 5540  # 4.3 / 2.5.6 Matter operational UDP port
SLOW_DATAGRAM = 0.050  # seconds of processing worth a log line
RECV_BUFFER = 2048


def _peer(raw: tuple[object, ...]) -> Address:
    """(host, port) from a socket address; link-local IPv6 keeps its scope for the reply."""
    host, port = str(raw[0]), int(str(raw[1]))
    if len(raw) >= 4 and raw[3] and "%" not in host:
        host = f"{host}%{raw[3]}"
    return host, port


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
            return _bind(socket.AF_INET6, "::", port, v6only=False)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise
            log.info("event=ipv6_unavailable error=%s fallback=0.0.0.0", exc)
            host = "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _bind(family, host, port, v6only=True)


def _bind(family: int, host: str, port: int, *, v6only: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(v6only))
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
        prioritize_sessions: bool = True,
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
        self._per_source = max(2, max_handshake_queue // 8)  # of the handshake queue
        self._queued_from: dict[Address, int] = {}
        self._on_event = on_event
        self._prioritize = prioritize_sessions  # False: one FIFO (for measurements)
        self._sleep: anyio.CancelScope | None = None
        self._socket: socket.socket | None = None
        ratelimit.install()  # a flood of datagrams must not become a flood of log lines

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[Address] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; ``task_status.started`` gets the bound (host, port)."""
        sock = self._socket if self._socket is not None else self.open()
        self._socket = None
        try:
            assert self.local_address is not None
            log.info("event=listening address=[%s]:%d", *self.local_address)
            task_status.started(self.local_address)
            while True:
                self._drain(sock)
                item = self._take()
                if item is not None:
                    self._process(*item)
                deadline = self.node.next_deadline()
                now = self.clock()
                if deadline is not None and deadline <= now:
                    self._guard(self.node.handle_timer, now)
                self._drain_events()
                self._flush(sock)
                if self._session_q or self._handshake_q:
                    await anyio.lowlevel.checkpoint()
                    continue
                deadline = self.node.next_deadline()
                timeout = math.inf if deadline is None else max(0.0, deadline - self.clock())
                with anyio.move_on_after(timeout) as self._sleep:
                    await anyio.wait_readable(sock)
                self._sleep = None
        finally:
            # Last words queued before the cancel (transfers failed and CloseSession on
            # shutdown) still reach the event handler and the wire.
            self._drain_events()
            self._flush(sock)
            sock.close()

    def open(self) -> socket.socket:
        """Bind the socket now (``OSError`` if the port is taken); :meth:`run` then uses it."""
        if self._socket is None:
            self._socket = open_socket(self.host, self.port)
            bound = self._socket.getsockname()
            self.local_address = (str(bound[0]), int(bound[1]))
        return self._socket

    def enqueue(self, data: bytes, addr: Address) -> bool:
        """File a received datagram by kind; False if its queue is full (dropped)."""
        self.stats.received += 1
        # Only a session we hold earns priority: a peer can put any id in its header.
        session_id = data[1] | data[2] << 8 if len(data) >= 3 else 0
        established = session_id != 0 and self.node.sessions.get(session_id) is not None
        if not established and self._prioritize:
            queued = self._queued_from.get(addr, 0)
            if len(self._handshake_q) >= self._max_handshake or queued >= self._per_source:
                self.stats.handshake_dropped += 1
                log.debug("event=drop reason=handshake_queue_full peer=[%s]:%d", *addr)
                return False
            self._queued_from[addr] = queued + 1
            self._handshake_q.append((data, addr))
        else:
            if len(self._session_q) >= self._max_session:
                log.debug("event=drop reason=session_queue_full peer=[%s]:%d", *addr)
                return False
            self._session_q.append((data, addr))
        return True

    def _take(self) -> tuple[bytes, Address] | None:
        if self._session_q:
            return self._session_q.popleft()
        if self._handshake_q:
            item = self._handshake_q.popleft()
            left = self._queued_from.pop(item[1]) - 1
            if left:
                self._queued_from[item[1]] = left
            return item
        return None

    def _drain(self, sock: socket.socket) -> None:
        for _ in range(self._max_session + self._max_handshake):
            try:
                data, raw_addr = sock.recvfrom(RECV_BUFFER)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. ICMP port unreachable surfacing on Linux
                log.debug("event=recv_error error=%s", exc)
                continue
            self.enqueue(data, _peer(raw_addr))

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

    def _flush(self, sock: socket.socket) -> None:
        for data, (host, port) in self.node.datagrams_to_send():
            if len(data) > MAX_MESSAGE_SIZE:
                log.warning("event=oversize_datagram size=%d peer=[%s]:%d", len(data), host, port)
            try:
                sock.sendto(data, (host, port))  # UDP: a full buffer drops, MRP retransmits
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
        """Wake the loop now: call after driving the node from another task (e.g. opening an
        exchange as initiator), so that its datagrams go out and its timer is re-armed."""
        if self._sleep is not None:
            self._sleep.cancel()
