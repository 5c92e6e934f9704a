"""Exchanges and their reliability (MRP), Matter Core spec 4.10 and 4.12.

An :class:`Exchange` is one conversation on one session: the messages of a PASE handshake, an
IM interaction or a BDX transfer. It carries the MRP state of that conversation: reliable
messages awaiting an acknowledgement (retransmitted with backoff, given up after
:data:`~.mrp.MRP_MAX_TRANSMISSIONS`), the acknowledgement we owe the peer (piggybacked on our next
message or sent standalone after :data:`~.mrp.MRP_STANDALONE_ACK_TIMEOUT`), and an optional
response timeout.

Protocol code talks to an exchange through :meth:`Exchange.send`, :meth:`Exchange.send_status`,
:meth:`Exchange.close` and :meth:`Exchange.set_response_timeout`, and receives through an
:class:`ExchangeDelegate` set on :attr:`Exchange.delegate`.

The :class:`ExchangeManager` routes received messages to exchanges, allocates exchange ids and
runs the timers. It is sans-IO: datagrams leave through the ``transmit`` callback and time comes
in through :attr:`ExchangeManager.now`.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from matter_ota.messaging.errors import MessageError
from matter_ota.messaging.header import (
    MAX_MESSAGE_SIZE,
    MAX_SECURE_PAYLOAD,
    MessageHeader,
    ProtocolHeader,
    encode_protocol_header,
)
from matter_ota.messaging.mrp import (
    MRP_MAX_TRANSMISSIONS,
    MRP_STANDALONE_ACK_TIMEOUT,
    Jitter,
    Retransmit,
    backoff_interval,
)
from matter_ota.messaging.session import Address, Session
from matter_ota.messaging.status import Protocol, SecureChannelOpcode, StatusReport

if TYPE_CHECKING:
    from matter_ota.node import Node

log = logging.getLogger("matter_ota.exchange")

Transmit = Callable[[bytes, Address | None], None]

# Plain ints for the per-message comparisons: on Python 3.11 ``Enum.MEMBER`` is a descriptor
# call (~0.2 us) at every use.
_SECURE_CHANNEL = int(Protocol.SECURE_CHANNEL)
_STANDALONE_ACK = int(SecureChannelOpcode.STANDALONE_ACK)
_STATUS_REPORT = int(SecureChannelOpcode.STATUS_REPORT)


class CloseReason(enum.Enum):
    """Why an exchange ended (passed to :meth:`ExchangeDelegate.on_close`)."""

    LOCAL = "local"  # our side called close()
    ACK_TIMEOUT = "ack_timeout"  # MRP gave up on a message (4.12.2.1)
    RESPONSE_TIMEOUT = "response_timeout"  # the peer did not answer in time
    SESSION_CLOSED = "session_closed"  # the session went away under the exchange


@dataclass(slots=True)
class Message:
    """A received, authenticated, de-duplicated message, as handlers see it."""

    session: Session
    header: MessageHeader
    protocol: ProtocolHeader
    payload: bytes
    addr: Address
    received_at: float

    @property
    def protocol_id(self) -> int:
        """The 32-bit protocol id (vendor << 16 | protocol)."""
        proto = self.protocol  # full_protocol_id, one property less per dispatch
        return ((proto.vendor_id or 0) << 16) | proto.protocol_id

    @property
    def opcode(self) -> int:
        return self.protocol.opcode

    def is_status_report(self) -> bool:
        proto = self.protocol
        return (
            proto.opcode == _STATUS_REPORT
            and proto.protocol_id == _SECURE_CHANNEL
            and proto.vendor_id is None
        )


class ExchangeDelegate:
    """Receives the messages of one exchange after its first (multi-message protocols).

    Subclass and override; a handler installs it with ``exchange.delegate = obj``. Raising
    :class:`~.status.StatusError` from :meth:`on_message` sends that status and closes the
    exchange.
    """

    def on_message(self, exchange: Exchange, message: Message) -> None:
        """A new message arrived on ``exchange``."""

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        """The exchange ended for a reason other than our own :meth:`Exchange.close`."""


class Exchange:
    """One exchange: id, role, session, MRP state and the delegate that handles it."""

    # Slots: one is created per incoming request, and its fields are read on every message.
    __slots__ = (
        "_ack_deadline",
        "_filed_at",
        "_live",
        "_pending_ack",
        "_response_deadline",
        "_retransmits",
        "closed",
        "context",
        "delegate",
        "exchange_id",
        "is_initiator",
        "manager",
        "session",
    )

    def __init__(
        self, manager: ExchangeManager, session: Session, exchange_id: int, is_initiator: bool
    ) -> None:
        self.manager = manager
        self.session = session
        self.exchange_id = exchange_id
        self.is_initiator = is_initiator
        self.delegate: ExchangeDelegate | None = None
        self.closed = False
        self.context: dict[str, Any] = {}  # free for protocol code
        self._pending_ack: int | None = None
        self._ack_deadline: float | None = None
        self._retransmits: dict[int, Retransmit] = {}
        self._response_deadline: float | None = None
        self._live = True  # False once the manager forgot it
        self._filed_at: float | None = None  # the earliest time this exchange is in the heap

    # -- API for protocol code ----------------------------------------------------------------

    @property
    def node(self) -> Node:
        """The node this exchange belongs to (sessions, events)."""
        return self.manager.node

    @property
    def now(self) -> float:
        """The time of the event being processed."""
        return self.manager.now

    @property
    def awaiting_ack(self) -> bool:
        """True while a reliable message of ours is unacknowledged."""
        return bool(self._retransmits)

    def send(
        self,
        protocol_id: int,
        opcode: int,
        payload: bytes = b"",
        *,
        reliable: bool = True,
        vendor_id: int | None = None,
    ) -> int:
        """Send a message on this exchange; returns its message counter.

        Any acknowledgement we owe the peer rides along (piggyback, 4.12.5.2). A reliable message
        is retransmitted until acknowledged or :data:`MRP_MAX_TRANSMISSIONS` is reached. A
        message over :data:`~.header.MAX_MESSAGE_SIZE` raises :class:`MessageError` (nothing is
        sent); :data:`~.header.MAX_SECURE_PAYLOAD` is the largest payload that always fits.
        """
        if self.closed:
            raise RuntimeError(f"exchange {self.exchange_id} is closed")
        if vendor_id is None:  # every message of the standard protocols: no header object
            header = encode_protocol_header(
                protocol_id, opcode, self.exchange_id, self.is_initiator, reliable,
                self._pending_ack,
            )
        else:
            header = ProtocolHeader(
                protocol_id=protocol_id,
                opcode=opcode,
                exchange_id=self.exchange_id,
                initiator=self.is_initiator,
                requires_ack=reliable,
                ack_counter=self._pending_ack,
                vendor_id=vendor_id,
            ).encode()
        session = self.session
        datagram, counter = session.encode_payload(header + payload)
        if len(datagram) > MAX_MESSAGE_SIZE:
            raise MessageError(
                f"message of {len(datagram)} bytes exceeds {MAX_MESSAGE_SIZE} (payload "
                f"{len(payload)}; at most {MAX_SECURE_PAYLOAD} on a secure session)"
            )
        self._pending_ack = self._ack_deadline = None
        manager = self.manager
        manager.transmit(datagram, session.peer_addr)
        if reliable:
            now = manager.now
            at = now + backoff_interval(session.mrp_base_interval(now), 0, manager.jitter())
            self._retransmits[counter] = Retransmit(counter, datagram, 0, at)
            manager.schedule(self, at)
        return counter

    def send_status(self, report: StatusReport) -> int:
        """Send a StatusReport (Secure Channel 0x40) on this exchange, reliably."""
        return self.send(
            Protocol.SECURE_CHANNEL, SecureChannelOpcode.STATUS_REPORT, report.encode()
        )

    def set_response_timeout(self, seconds: float | None) -> None:
        """Close with :attr:`CloseReason.RESPONSE_TIMEOUT` unless a message arrives in time."""
        when = None if seconds is None else self.manager.now + seconds
        self._response_deadline = when
        self.manager.schedule(self, when)

    def close(self) -> None:
        """End the exchange. Owed acks go out now; our unacked messages keep retransmitting."""
        if self.closed:
            return
        self.closed = True
        self._response_deadline = None
        self.flush_ack()
        self.manager.release_if_done(self)

    def flush_ack(self) -> None:
        """Send the owed acknowledgement now as a standalone ack (4.12.5.3)."""
        if self._pending_ack is not None:
            counter = self._pending_ack
            self._pending_ack = self._ack_deadline = None
            self.manager.send_standalone_ack(self.session, self.exchange_id, self.is_initiator,
                                             counter)

    # -- MRP bookkeeping, driven by the manager -------------------------------------------------

    def _owe_ack(self, counter: int, now: float) -> None:
        """Owe the peer an ack; its timer is filed by :meth:`ExchangeManager.dispatched`."""
        if self._pending_ack is not None and self._pending_ack != counter:
            self.flush_ack()  # one pending ack per exchange: the older one goes standalone
        self._pending_ack = counter
        self._ack_deadline = now + MRP_STANDALONE_ACK_TIMEOUT

    def _deadline(self) -> float | None:
        # Per message on the hot path: no list, no min() over a generator.
        when = self._ack_deadline
        response = self._response_deadline
        if response is not None and (when is None or response < when):
            when = response
        for entry in self._retransmits.values():
            if when is None or entry.next_at < when:
                when = entry.next_at
        return when

    def _fire(self, now: float) -> CloseReason | None:
        """Run due timers; returns a close reason if the exchange failed."""
        if self._ack_deadline is not None and now >= self._ack_deadline:
            self.flush_ack()
        for entry in list(self._retransmits.values()):
            if now < entry.next_at:
                continue
            if entry.send_count + 1 >= MRP_MAX_TRANSMISSIONS:
                log.debug(
                    "event=mrp_give_up exchange=%d counter=%d session=%r",
                    self.exchange_id, entry.counter, self.session,
                )
                self._retransmits.clear()
                return CloseReason.ACK_TIMEOUT
            entry.send_count += 1
            base = self.session.mrp_base_interval(now)
            entry.next_at = now + backoff_interval(base, entry.send_count, self.manager.jitter())
            log.debug(
                "event=mrp_retransmit exchange=%d counter=%d send_count=%d",
                self.exchange_id, entry.counter, entry.send_count,
            )
            self.manager.transmit(entry.datagram, self.session.peer_addr)
        if self._response_deadline is not None and now >= self._response_deadline:
            self._response_deadline = None
            return CloseReason.RESPONSE_TIMEOUT
        return None

    def __repr__(self) -> str:
        role = "i" if self.is_initiator else "r"
        return f"<Exchange {self.exchange_id}{role} {self.session!r}>"


ExchangeKey = tuple[object, int, bool]

#: Ours (no spec value; connectedhomeip pools 16 exchanges per node on small devices): the
#: exchanges one peer's session may hold open on our side at once. Beyond it a new exchange is
#: dropped unacknowledged (the peer retransmits, by when one may have ended), so a peer cannot
#: make us hold unbounded state (timed windows, unacknowledged reports) on one session.
MAX_RESPONDER_EXCHANGES = 16


class ExchangeManager:
    """All exchanges of a node: routing by (session, exchange id, role), ids, MRP timers."""

    def __init__(
        self,
        node: Node,
        transmit: Transmit,
        jitter: Jitter | None = None,
        randbits: Callable[[int], int] = secrets.randbits,
        max_per_session: int = MAX_RESPONDER_EXCHANGES,
    ) -> None:
        self.node = node
        self.transmit = transmit
        self.jitter: Jitter = jitter if jitter is not None else random.random
        self.now = 0.0
        self._exchanges: dict[ExchangeKey, Exchange] = {}
        self._next_id = randbits(16)
        # Timer heap of (when, seq, exchange); entries go stale when an exchange's deadline
        # moves and are dropped or re-filed lazily, so a timer costs O(log n), not a scan.
        self._timers: list[tuple[float, int, Exchange]] = []
        self._seq = itertools.count()
        self.max_per_session = max_per_session
        self._responders: dict[object, int] = {}  # session key -> live responder exchanges

    def __len__(self) -> int:
        return len(self._exchanges)

    def exchanges(self) -> list[Exchange]:
        """A snapshot of the live exchanges."""
        return list(self._exchanges.values())

    def new_exchange(self, session: Session, delegate: ExchangeDelegate | None) -> Exchange:
        """Open an exchange as initiator on ``session``."""
        for _ in range(0x10000):
            exchange_id = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFF
            key = (session.key, exchange_id, True)
            if key not in self._exchanges:
                break
        else:  # pragma: no cover - 65536 live exchanges on one session
            raise RuntimeError("no free exchange id")
        exchange = Exchange(self, session, exchange_id, is_initiator=True)
        exchange.delegate = delegate
        self._exchanges[key] = exchange
        return exchange

    def receive(
        self, message: Message, duplicate: bool, accept_new: Callable[[Message], bool]
    ) -> Exchange | None:
        """MRP processing of a received message (4.12.5); returns the exchange to deliver to.

        Handles piggybacked acks, owed acks and duplicates. A new exchange is created only for
        an initiator message that ``accept_new`` wants (the node's dispatch table). The caller
        delivers the message to the exchange returned, then calls :meth:`dispatched`.
        """
        proto = message.protocol
        key = (message.session.key, proto.exchange_id, not proto.initiator)
        exchange = self._exchanges.get(key)
        if exchange is not None:
            if proto.ack_counter is not None:
                exchange._retransmits.pop(proto.ack_counter, None)  # acknowledged: stop resending
            if exchange.closed:
                self.release_if_done(exchange)
        if duplicate:
            # 4.12.5.2.2: ack a duplicate at once, never process it again.
            if proto.requires_ack:
                self.send_standalone_ack(
                    message.session, proto.exchange_id, not proto.initiator,
                    message.header.message_counter,
                )
            return None
        is_ack_only = (
            proto.opcode == _STANDALONE_ACK
            and proto.protocol_id == _SECURE_CHANNEL
            and proto.vendor_id is None
        )
        if exchange is None or exchange.closed:
            if not is_ack_only and proto.initiator and exchange is None and accept_new(message):
                skey = message.session.key
                if self._responders.get(skey, 0) >= self.max_per_session:
                    log.debug("event=drop reason=exchange_limit session=%r", message.session)
                    return None
                self._responders[skey] = self._responders.get(skey, 0) + 1
                exchange = Exchange(self, message.session, proto.exchange_id, is_initiator=False)
                self._exchanges[key] = exchange
            else:
                if proto.requires_ack:
                    self.send_standalone_ack(
                        message.session, proto.exchange_id, not proto.initiator,
                        message.header.message_counter,
                    )
                return None
        if proto.requires_ack:
            exchange._owe_ack(message.header.message_counter, self.now)
        if is_ack_only:
            self.dispatched(exchange)
            return None
        exchange._response_deadline = None
        return exchange

    def dispatched(self, exchange: Exchange) -> None:
        """File the standalone-ack timer of an ack still owed after the message was handled.

        Most handlers answer at once and the ack rides on the answer, so filing the timer
        only now saves a heap entry (and its removal) per message.
        """
        if exchange._pending_ack is not None:
            self.schedule(exchange, exchange._ack_deadline)

    def send_standalone_ack(
        self, session: Session, exchange_id: int, is_initiator: bool, counter: int
    ) -> None:
        """A standalone acknowledgement (Secure Channel 0x10), never itself reliable."""
        header = encode_protocol_header(
            Protocol.SECURE_CHANNEL, SecureChannelOpcode.STANDALONE_ACK, exchange_id,
            is_initiator, False, counter,
        )
        datagram, _ = session.encode_payload(header)
        self.transmit(datagram, session.peer_addr)

    def release_if_done(self, exchange: Exchange) -> None:
        """Forget a closed exchange once nothing of it is left to retransmit or ack."""
        if exchange.closed and not exchange._retransmits and exchange._pending_ack is None:
            key = (exchange.session.key, exchange.exchange_id, exchange.is_initiator)
            if self._exchanges.get(key) is exchange:
                del self._exchanges[key]
                exchange._live = False
                if not exchange.is_initiator:
                    skey = exchange.session.key
                    left = self._responders.pop(skey) - 1
                    if left:
                        self._responders[skey] = left

    def schedule(self, exchange: Exchange, armed: float | None = None) -> None:
        """File the exchange's current deadline (call when it may have moved earlier).

        An exchange already filed at or before that time is not filed again: that entry
        re-files the exchange when it comes up. So the heap holds about one entry per
        exchange, however many messages re-arm its timers (a BDX transfer re-arms its idle
        timeout on every block). ``armed`` is the time of the one timer just set, if that is
        all that changed: filed at or before it, the exchange needs no look at its other timers
        (the entry filed is never later than the deadline, so it stays valid).
        """
        filed = exchange._filed_at
        if armed is not None and filed is not None and filed <= armed:
            return
        when = exchange._deadline()
        if when is None or not exchange._live:
            return
        if filed is not None and filed <= when:
            return
        exchange._filed_at = when
        heapq.heappush(self._timers, (when, next(self._seq), exchange))
        if len(self._timers) > 4 * len(self._exchanges) + 64:
            self._compact()

    def _compact(self) -> None:
        """Rebuild the heap with one entry per live exchange that has a deadline.

        Stale entries otherwise stay until their time comes: with long timers (a 5-minute
        idle timeout re-armed on every message) that is memory growing with the message rate.
        Amortised O(1) per push: it runs when the heap is 4x the live exchanges.
        """
        timers = []
        for exchange in self._exchanges.values():
            when = exchange._deadline()
            exchange._filed_at = when
            if when is not None:
                timers.append((when, next(self._seq), exchange))
        heapq.heapify(timers)
        self._timers = timers

    def next_deadline(self) -> float | None:
        """The earliest MRP or response timer of any exchange."""
        while self._timers:  # not a local: schedule() may rebuild the heap
            when, _, exchange = self._timers[0]
            current = exchange._deadline() if exchange._live else None
            if current == when:
                return when
            heapq.heappop(self._timers)
            if exchange._filed_at == when:
                exchange._filed_at = None
            if current is not None:  # the deadline moved: file it again
                self.schedule(exchange)
        return None

    def handle_timer(self, now: float) -> list[tuple[Exchange, CloseReason]]:
        """Run due timers; returns the exchanges that failed (already closed)."""
        self.now = now
        due: dict[int, Exchange] = {}
        while self._timers and self._timers[0][0] <= now:
            when, _, exchange = heapq.heappop(self._timers)
            if exchange._filed_at is not None and exchange._filed_at <= when:
                exchange._filed_at = None
            if exchange._live:
                due[id(exchange)] = exchange
        failed: list[tuple[Exchange, CloseReason]] = []
        for exchange in due.values():
            deadline = exchange._deadline()
            if deadline is not None and deadline <= now:
                reason = exchange._fire(now)
                if reason is not None:
                    exchange.flush_ack()
                    self._abort(exchange)
                    if not exchange.closed:
                        failed.append((exchange, reason))
                    exchange.closed = True
                self.release_if_done(exchange)
            self.schedule(exchange)
        return failed

    def close_session(self, session: Session) -> list[Exchange]:
        """Drop every exchange of ``session``; returns those that were still open."""
        dropped = []
        for exchange in list(self._exchanges.values()):
            if exchange.session is session:
                if not exchange.closed:
                    dropped.append(exchange)
                exchange.closed = True
                self._abort(exchange)
                self.release_if_done(exchange)
        return dropped

    @staticmethod
    def _abort(exchange: Exchange) -> None:
        exchange._retransmits.clear()
        exchange._pending_ack = exchange._ack_deadline = exchange._response_deadline = None
