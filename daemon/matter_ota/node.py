"""The sans-IO Matter node: sessions, exchanges and one dispatch table.

Driven like aioquic's connection::

    node.datagram_received(data, addr, now)   # a UDP datagram arrived
    node.handle_timer(now)                    # the time from next_deadline() came
    node.datagrams_to_send()                  # -> [(bytes, addr)] to put on the wire
    node.next_deadline()                      # -> when to call handle_timer next, or None
    node.next_event()                         # -> SessionEstablished / SessionClosed / ...

Protocols plug in through :meth:`Node.register`: ``(protocol id, opcode) -> (handler, session
kinds)``. A handler is called with ``(exchange, message)`` for the message that opens an exchange;
to receive the rest of a multi-message conversation it sets ``exchange.delegate``. A handler or
delegate raising :class:`~matter_ota.messaging.status.StatusError` makes the node send that
StatusReport on the exchange and close it, here and nowhere else. A malformed, unauthenticated,
duplicate or unroutable datagram is dropped with a debug log line; nothing a peer sends raises out
of :meth:`Node.datagram_received`.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from matter_ota.messaging.counters import MessageCounter
from matter_ota.messaging.errors import MessageError
from matter_ota.messaging.exchange import (
    MAX_RESPONDER_EXCHANGES,
    CloseReason,
    Exchange,
    ExchangeDelegate,
    ExchangeManager,
    Message,
)
from matter_ota.messaging.header import MessageHeader, ProtocolHeader, SessionType
from matter_ota.messaging.mrp import Jitter
from matter_ota.messaging.session import (
    SECURE_SESSIONS,
    Address,
    SecureSession,
    Session,
    SessionKind,
    SessionTable,
    UnsecuredSession,
)
from matter_ota.messaging.status import (
    GeneralCode,
    Protocol,
    SecureChannelCode,
    SecureChannelOpcode,
    StatusError,
    StatusReport,
)

log = logging.getLogger("matter_ota.node")

#: Ours (connectedhomeip's CHIP_CONFIG_UNAUTHENTICATED_CONNECTION_POOL_SIZE is 4 on a device):
#: PASE / CASE handshakes a provider holds at once; ``limits.max_handshakes`` in provider.yaml.
DEFAULT_UNSECURED_SESSIONS = 64

_UNICAST = SessionType.UNICAST  # a module global: ``Enum.MEMBER`` is a descriptor call on 3.11

Handler = Callable[[Exchange, Message], None]
"""Called with the exchange a message opened and that message."""


class TimerSource(TypingProtocol):
    """Protocol code with timers of its own (IM subscriptions): the node runs them."""

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Route:
    """One dispatch table entry."""

    handler: Handler
    sessions: frozenset[SessionKind]


@dataclass(frozen=True, slots=True)
class SessionEstablished:
    """A PASE or CASE session was added to the node."""

    session: SecureSession


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """A secure session was removed: ``reason`` is ``evicted``, ``peer_closed`` or ``local``."""

    session: SecureSession
    reason: str


@dataclass(frozen=True, slots=True)
class ExchangeFailed:
    """An exchange ended without its protocol finishing (MRP gave up, response timeout)."""

    exchange: Exchange
    reason: CloseReason


def _fmt(addr: Address | None) -> str:
    return "-" if addr is None else f"[{addr[0]}]:{addr[1]}"


class Node:
    """A Matter node's message layer, without I/O. See the module docstring."""

    def __init__(
        self,
        *,
        max_sessions: int = 64,
        max_unsecured_sessions: int = DEFAULT_UNSECURED_SESSIONS,
        max_exchanges_per_session: int = MAX_RESPONDER_EXCHANGES,
        jitter: Jitter | None = None,
        randbits: Callable[[int], int] = secrets.randbits,
    ) -> None:
        self.sessions = SessionTable(max_sessions, randbits)
        self.exchanges = ExchangeManager(self, self._queue, jitter, randbits,
                                         max_exchanges_per_session)
        self.max_unsecured_sessions = max_unsecured_sessions
        self._randbits = randbits
        self._unsecured: OrderedDict[object, UnsecuredSession] = OrderedDict()
        self._global_counter = MessageCounter(wraps=True)  # 4.6.1.1, one per node
        self._routes: dict[tuple[int, int], Route] = {}
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: deque[object] = deque()
        self._timer_sources: list[TimerSource] = []
        self.now = 0.0
        self.register(
            Protocol.SECURE_CHANNEL,
            SecureChannelOpcode.STATUS_REPORT,
            self._on_unsolicited_status,
            SECURE_SESSIONS,
        )

    # -- dispatch table ------------------------------------------------------------------------

    def register(
        self,
        protocol_id: int,
        opcode: int,
        handler: Handler,
        sessions: Iterable[SessionKind],
        *,
        replace: bool = False,
    ) -> None:
        """Route exchanges opened by ``(protocol_id, opcode)`` on ``sessions`` to ``handler``.

        ``protocol_id`` is the 32-bit ``vendor << 16 | protocol`` id.
        """
        key = (int(protocol_id), int(opcode))
        if key in self._routes and not replace:
            raise ValueError(f"protocol 0x{key[0]:08x} opcode 0x{key[1]:02x} already registered")
        self._routes[key] = Route(handler, frozenset(sessions))

    def route(self, protocol_id: int, opcode: int) -> Route | None:
        """The dispatch entry for a message, if any."""
        return self._routes.get((protocol_id, opcode))

    # -- sans-IO entry points ------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address, now: float) -> None:
        """Process one datagram from ``addr``. Never raises for anything the peer sent."""
        self.now = self.exchanges.now = now
        try:
            message, duplicate = self._decode(data, addr, now)
        except MessageError as exc:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("event=drop peer=%s size=%d reason=%s", _fmt(addr), len(data), exc)
            return
        exchange = self.exchanges.receive(message, duplicate, self._accepts)
        if duplicate and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "event=duplicate peer=%s counter=%d", _fmt(addr), message.header.message_counter
            )
        if exchange is None:
            return
        delegate = exchange.delegate
        if delegate is not None:
            self._run(exchange, message, delegate.on_message)
        else:
            route = self._routes.get((message.protocol_id, message.protocol.opcode))
            if route is None:  # an exchange with neither delegate nor handler left
                exchange.close()
                return
            self._run(exchange, message, route.handler)
            if exchange.delegate is None:
                exchange.close()  # a one-shot handler is done with its exchange
        self.exchanges.dispatched(exchange)

    def handle_timer(self, now: float) -> None:
        """Run the timers due at ``now`` (retransmissions, acks, timeouts)."""
        self._set_now(now)
        for exchange, reason in self.exchanges.handle_timer(now):
            log.info(
                "event=exchange_failed exchange=%d reason=%s peer=%s",
                exchange.exchange_id, reason.value, _fmt(exchange.session.peer_addr),
            )
            self._events.append(ExchangeFailed(exchange, reason))
            if exchange.delegate is not None:
                try:
                    exchange.delegate.on_close(exchange, reason)
                except Exception:
                    log.exception("event=delegate_error exchange=%d", exchange.exchange_id)
        for source in self._timer_sources:
            deadline = source.next_deadline()
            if deadline is not None and deadline <= now:
                try:
                    source.handle_timer(now)
                except Exception:
                    log.exception("event=timer_error source=%s", type(source).__name__)

    def add_timer_source(self, source: TimerSource) -> None:
        """Have :meth:`next_deadline` / :meth:`handle_timer` include ``source``'s timers."""
        self._timer_sources.append(source)

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """The datagrams queued since the last call, oldest first."""
        out, self._outbox = self._outbox, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must run next (same clock as ``now``), or None."""
        deadline = self.exchanges.next_deadline()  # asked after every datagram: no lists
        for source in self._timer_sources:
            when = source.next_deadline()
            if when is not None and (deadline is None or when < deadline):
                deadline = when
        return deadline

    def next_event(self) -> object | None:
        """The oldest undelivered event, or None."""
        return self._events.popleft() if self._events else None

    def emit(self, event: object) -> None:
        """Queue an event for the runtime (protocol handlers report their outcomes here)."""
        self._events.append(event)

    # -- sessions and exchanges for protocol code ----------------------------------------------

    def open_unsecured_session(self, addr: Address, now: float) -> UnsecuredSession:
        """An initiator's unsecured session to ``addr`` with a fresh ephemeral node id."""
        self._set_now(now)
        # 4.13.2.1: a random operational-range node id identifies us for this session only.
        node_id = self._randbits(63) | 1
        session = UnsecuredSession(
            ephemeral_node_id=node_id,
            is_initiator=True,
            counter=self._global_counter,
            peer_addr=addr,
            now=now,
        )
        if not self._remember_unsecured(session):
            # Our own handshakes are bounded by whoever starts them: the pool grows for them.
            session.pooled = True
            self._unsecured[session.key] = session
        return session

    def new_exchange(
        self, session: Session, delegate: ExchangeDelegate | None, now: float
    ) -> Exchange:
        """Open an exchange as initiator; ``delegate`` receives the responses."""
        self._set_now(now)
        return self.exchanges.new_exchange(session, delegate)

    def add_secure_session(self, session: SecureSession) -> None:
        """Install an established session (PASE/CASE call this); evicts the LRU if full.

        The least recently used session with no open exchange goes first (as in the unsecured
        pool); only when every one has an exchange open, the least recently used.
        """
        in_use: Callable[[SecureSession], bool] | None = None
        if len(self.sessions) >= self.sessions.max_sessions:
            busy = {e.session.key for e in self.exchanges.exchanges() if not e.closed}
            in_use = lambda s: s.key in busy  # noqa: E731
        for old in self.sessions.add(session, in_use):
            self._forget(old, "evicted")
        log.info(
            "event=session_established kind=%s local_id=%d peer_id=%d node=0x%016X peer=%s",
            session.kind.value, session.local_session_id, session.peer_session_id,
            session.peer_node_id, _fmt(session.peer_addr),
        )
        self._events.append(SessionEstablished(session))

    def secure_room(self, needed: int) -> bool:
        """True if ``needed`` more secure sessions fit without evicting one with an exchange
        open (free places plus sessions with nothing running)."""
        free = self.sessions.max_sessions - len(self.sessions)
        if free >= needed:
            return True
        busy = {e.session.key for e in self.exchanges.exchanges() if not e.closed}
        idle = sum(1 for s in self.sessions if s.key not in busy)
        return free + idle >= needed

    def remove_session(self, session: SecureSession, reason: str = "local") -> None:
        """Remove a secure session and everything running on it."""
        if self.sessions.remove(session):
            self._forget(session, reason)

    def close_session(self, session: SecureSession, now: float) -> None:
        """Tell the peer we close ``session`` (CloseSession status, 4.11.1.4), then remove it."""
        self._set_now(now)
        exchange = self.exchanges.new_exchange(session, None)
        report = StatusReport(
            GeneralCode.SUCCESS, Protocol.SECURE_CHANNEL, SecureChannelCode.CLOSE_SESSION
        )
        exchange.send(
            Protocol.SECURE_CHANNEL,
            SecureChannelOpcode.STATUS_REPORT,
            report.encode(),
            reliable=False,
        )
        self.remove_session(session, "local")

    # -- internals -----------------------------------------------------------------------------

    def _set_now(self, now: float) -> None:
        self.now = now
        self.exchanges.now = now

    def _queue(self, datagram: bytes, addr: Address | None) -> None:
        if addr is None:
            log.debug("event=drop_outgoing reason=no_peer_address")
            return
        self._outbox.append((datagram, addr))

    def _decode(self, data: bytes, addr: Address, now: float) -> tuple[Message, bool]:
        header, offset = MessageHeader.decode(data)
        if header.session_type != _UNICAST:
            raise MessageError("group messages are not supported")
        if header.privacy:  # 4.9: the rest of the header is obfuscated; we do not support it
            raise MessageError("privacy-obfuscated messages are not supported")
        session: Session
        if header.session_id == 0:
            proto, body = ProtocolHeader.decode(data[offset:])
            payload = bytes(data[offset + body :])
            session = self._unsecured_for(header, proto, addr, now)
            duplicate = not session.reception.accept(header.message_counter)
        else:
            secure = self.sessions.get(header.session_id)
            if secure is None:
                raise MessageError(f"unknown session id {header.session_id}")
            plain = secure.decrypt(header, data, offset)
            proto, body = ProtocolHeader.decode(plain)
            payload = plain[body:]
            duplicate = not secure.reception.accept(header.message_counter)
            if not duplicate:
                self.sessions.touch(secure)
            session = secure
        if not duplicate:  # a replay from elsewhere must not redirect our replies
            session.mark_peer_activity(now, addr)
        return Message(session, header, proto, payload, addr, now), duplicate

    def _unsecured_for(
        self, header: MessageHeader, proto: ProtocolHeader, addr: Address, now: float
    ) -> UnsecuredSession:
        if header.source_node_id is not None:
            # A peer initiating session establishment with its ephemeral node id.
            key = ("unsecured", False, header.source_node_id)
            found = self._unsecured.get(key)
            if found is None:
                found = UnsecuredSession(
                    ephemeral_node_id=header.source_node_id,
                    is_initiator=False,
                    counter=self._global_counter,
                    peer_addr=addr,
                    now=now,
                )
                # Only a message that may open a handshake earns a place in the table: garbage
                # from fresh node ids must not push out the peers mid-handshake.
                route = self.route(proto.full_protocol_id, proto.opcode)
                opens = route is not None and SessionKind.UNSECURED in route.sessions
                if proto.initiator and opens:
                    self._remember_unsecured(found)
            else:
                self._unsecured.move_to_end(key)
            return found
        if header.dest_node_id is not None:
            found = self._unsecured.get(("unsecured", True, header.dest_node_id))
            if found is not None:
                return found
        raise MessageError("unsecured message for no known session")

    def _remember_unsecured(self, session: UnsecuredSession) -> bool:
        """Give ``session`` a place in the pool; False when every place holds a handshake.

        Like connectedhomeip's UnauthenticatedSessionTable: a full pool evicts its least recently
        used session with no open exchange (a finished or refused handshake), never one
        mid-handshake. When none is idle the session stays out of the pool (``pooled`` False):
        the handler of its first message answers BUSY (4.11.1.4) instead of the message being
        dropped unanswered.
        """
        if len(self._unsecured) >= self.max_unsecured_sessions:
            live = self.exchanges.exchanges()
            busy = {e.session.key for e in live if not e.closed}
            # First a session with nothing left at all, then one whose last message (SUCCESS,
            # BUSY, a failure report) still awaits its ack.
            closing = {e.session.key for e in live if e.closed}
            victim = next((k for k in self._unsecured if k not in busy and k not in closing),
                          None)
            if victim is None:
                victim = next((k for k in self._unsecured if k not in busy), None)
            if victim is None:
                session.pooled = False
                log.debug("event=unsecured_pool_full size=%d peer=%s",
                         len(self._unsecured), _fmt(session.peer_addr))
                return False
            # Its closing message, if any, keeps retransmitting outside the pool: the exchange
            # holds the session, and the peer's ack finds it by the session's key (a lost final
            # SUCCESS report would otherwise leave the initiator waiting out its timeout).
            del self._unsecured[victim]
        self._unsecured[session.key] = session
        return True

    def _accepts(self, message: Message) -> bool:
        route = self._routes.get((message.protocol_id, message.protocol.opcode))
        if route is None:
            log.debug(
                "event=drop reason=no_handler protocol=0x%08x opcode=0x%02x peer=%s",
                message.protocol_id, message.opcode, _fmt(message.addr),
            )
            return False
        if message.session.kind not in route.sessions:
            log.debug(
                "event=drop reason=session_kind kind=%s protocol=0x%08x opcode=0x%02x peer=%s",
                message.session.kind.value, message.protocol_id, message.opcode,
                _fmt(message.addr),
            )
            return False
        return True

    def _run(
        self, exchange: Exchange, message: Message, fn: Callable[[Exchange, Message], None]
    ) -> None:
        """Call protocol code; the one place where StatusError becomes a StatusReport."""
        try:
            fn(exchange, message)
        except StatusError as err:
            log.info(
                "event=status_sent status=%s exchange=%d peer=%s reason=%s",
                err.report.describe(), exchange.exchange_id, _fmt(message.addr), err.reason or "-",
            )
            if not exchange.closed:
                exchange.send_status(err.report)
                exchange.delegate = None
                exchange.close()
        except Exception:
            log.exception(
                "event=handler_error exchange=%d protocol=0x%08x opcode=0x%02x",
                exchange.exchange_id, message.protocol_id, message.opcode,
            )
            exchange.delegate = None
            exchange.close()

    def _on_unsolicited_status(self, exchange: Exchange, message: Message) -> None:
        try:
            report = StatusReport.decode(message.payload)
        except MessageError:
            return
        session = message.session
        if (
            report.protocol_id == Protocol.SECURE_CHANNEL
            and report.protocol_code == SecureChannelCode.CLOSE_SESSION
            and isinstance(session, SecureSession)
        ):
            exchange.close()
            self.remove_session(session, "peer_closed")

    def _forget(self, session: SecureSession, reason: str) -> None:
        log.info(
            "event=session_closed kind=%s local_id=%d node=0x%016X reason=%s",
            session.kind.value, session.local_session_id, session.peer_node_id, reason,
        )
        self._notify_dropped(self.exchanges.close_session(session))
        self._events.append(SessionClosed(session, reason))

    def _notify_dropped(self, exchanges: list[Exchange]) -> None:
        for exchange in exchanges:
            if exchange.delegate is not None:
                try:
                    exchange.delegate.on_close(exchange, CloseReason.SESSION_CLOSED)
                except Exception:
                    log.exception("event=delegate_error exchange=%d", exchange.exchange_id)
