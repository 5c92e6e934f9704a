"""PASE on the node: dispatch entries, exchange delegates and the resulting secure sessions.

Device side: :class:`PaseCommissioning` registers PBKDFParamRequest (0x20) on unsecured
sessions, drives a :class:`~.pase.PaseServer` from the messages of that exchange and installs the
PASE session in the node's session table when Pake3 verifies. Commissioner side:
:func:`start_pase` opens an unsecured session and runs a :class:`~.pase.PaseInitiator`.

Failures: a step that fails raises :class:`~.pase.PaseError` (a StatusError), which the node
turns into the StatusReport; a failure StatusReport from the peer ends the handshake without
an answer; a message the handshake does not expect is dropped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from matter_ota.crypto import spake2p
from matter_ota.messaging.errors import MessageError
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import (
    DEFAULT_PARAMETERS,
    Address,
    SecureSession,
    SessionKind,
    SessionParameters,
    UnsecuredSession,
)
from matter_ota.messaging.status import GeneralCode, Protocol, SecureChannelCode, StatusReport
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.node import Node
from matter_ota.secure_channel.common import busy_wait, send_all
from matter_ota.secure_channel.pase import (
    BUSY_WAIT_MS,
    DEFAULT_HANDSHAKE_TIMEOUT,
    DEFAULT_MAX_FAILURES,
    PaseError,
    PaseInitiator,
    PaseResult,
    PaseServer,
    PeerReportedFailure,
    UnexpectedMessage,
)
from matter_ota.secure_channel.pase_messages import PBKDFParameters

log = logging.getLogger("matter_ota.pase")

#: How long we wait for the peer's next PASE message (connectedhomeip: kSpake2p_Response_Timeout).
RESPONSE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class PaseFailed:
    """Node event: a PASE handshake ended without a session."""

    peer: Address | None
    reason: str
    is_initiator: bool
    retry_after: float | None = None
    """Seconds the responder asked us to wait when it refused with BUSY (4.11.1.4)."""


def _install(exchange: Exchange, message: Message, result: PaseResult) -> SecureSession:
    session = SecureSession.from_keys(
        result.keys, kind=SessionKind.PASE, local_session_id=result.local_session_id,
        peer_session_id=result.peer_session_id, is_initiator=result.is_initiator,
        now=message.received_at, peer_params=result.peer_params, peer_addr=message.addr)
    exchange.node.add_secure_session(session)
    return session


class PaseCommissioning(ExchangeDelegate):
    """Accepts PASE from commissioners with one passcode verifier (the commissioning window)."""

    def __init__(self, node: Node, verifier: spake2p.PaseVerifier, salt: bytes, iterations: int,
                 *, local_params: SessionParameters = DEFAULT_PARAMETERS,
                 max_failures: int = DEFAULT_MAX_FAILURES,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT) -> None:
        self.node = node
        self.server = PaseServer(
            verifier, salt, iterations, node.sessions.allocate_id, node.sessions.release_id,
            local_params=local_params, max_failures=max_failures,
            handshake_timeout=handshake_timeout)
        node.register(Protocol.SECURE_CHANNEL, Op.PBKDF_PARAM_REQUEST, self._on_request,
                      {SessionKind.UNSECURED})

    @classmethod
    def from_passcode(cls, node: Node, passcode: int, salt: bytes, iterations: int, *,
                      max_failures: int = DEFAULT_MAX_FAILURES) -> PaseCommissioning:
        """Derive the verifier now; the passcode itself is not kept."""
        verifier = spake2p.PaseVerifier.from_passcode(passcode, salt, iterations)
        return cls(node, verifier, salt, iterations, max_failures=max_failures)

    def _on_request(self, exchange: Exchange, message: Message) -> None:
        session = exchange.session
        if isinstance(session, UnsecuredSession) and not session.pooled:
            # Every place of the node's handshake pool is taken: come back later.
            self._failed(message.addr, "handshake pool full")
            raise PaseError("handshake pool full", SecureChannelCode.BUSY, GeneralCode.BUSY,
                            BUSY_WAIT_MS.to_bytes(2, "little"))
        exchange.delegate = self
        self.on_message(exchange, message)

    def on_message(self, exchange: Exchange, message: Message) -> None:
        peer = message.addr
        if message.is_status_report():
            exchange.delegate = None
            exchange.close()
            try:
                self.server.receive_status(exchange, StatusReport.decode(message.payload))
            except (PeerReportedFailure, UnexpectedMessage, MessageError) as e:
                self._failed(peer, str(e))
            return
        try:
            out, result = self.server.receive(exchange, message.opcode, message.payload,
                                              message.received_at)
        except UnexpectedMessage as e:
            log.debug("event=pase_drop peer=[%s]:%d reason=%s", *peer, e)
            return
        except PaseError as e:
            self._failed(peer, e.reason)
            raise
        if result is None:
            # 4.12.8: the initiator's announced MRP intervals apply from now on.
            params = self.server.peer_params(exchange)
            if params is not None:
                message.session.peer_params = params
            send_all(exchange, out)
            exchange.set_response_timeout(RESPONSE_TIMEOUT)
            return
        send_all(exchange, out)
        exchange.delegate = None
        exchange.close()
        session = _install(exchange, message, result)
        log.info("event=pase_established peer=[%s]:%d local_id=%d",
                 *peer, session.local_session_id)

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self.server.exchange_closed(exchange)
        self._failed(exchange.session.peer_addr, f"exchange {reason.value}")

    def _failed(self, peer: Address | None, reason: str) -> None:
        log.info("event=pase_failed peer=%s reason=%s failures=%d window_open=%s",
                 peer, reason, self.server.failures, self.server.window_open)
        self.node.emit(PaseFailed(peer, reason, is_initiator=False))


class _InitiatorDelegate(ExchangeDelegate):
    def __init__(self, handshake: PaseInitiator) -> None:
        self.handshake = handshake

    def on_message(self, exchange: Exchange, message: Message) -> None:
        node = exchange.node
        if message.is_status_report():
            exchange.delegate = None
            exchange.close()
            try:
                result = self.handshake.receive_status(StatusReport.decode(message.payload))
            except (PaseError, MessageError) as e:
                node.sessions.release_id(self.handshake.local_session_id)
                wait = busy_wait(e.report) if isinstance(e, PeerReportedFailure) else None
                node.emit(PaseFailed(message.addr, str(e), is_initiator=True, retry_after=wait))
                return
            _install(exchange, message, result)
            return
        try:
            out = self.handshake.receive(message.opcode, message.payload)
        except UnexpectedMessage:
            return
        except PaseError as e:
            node.sessions.release_id(self.handshake.local_session_id)
            node.emit(PaseFailed(message.addr, e.reason, is_initiator=True))
            raise
        send_all(exchange, out)
        exchange.set_response_timeout(RESPONSE_TIMEOUT)

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self.handshake.fail()
        exchange.node.sessions.release_id(self.handshake.local_session_id)
        exchange.node.emit(PaseFailed(exchange.session.peer_addr, f"exchange {reason.value}",
                                      is_initiator=True))


def start_pase(node: Node, addr: Address, passcode: int, now: float, *,
               pbkdf: PBKDFParameters | None = None) -> PaseInitiator:
    """Open PASE to ``addr``; the outcome is a SessionEstablished or PaseFailed node event."""
    session = node.open_unsecured_session(addr, now)
    handshake = PaseInitiator(passcode, node.sessions.allocate_id(), pbkdf=pbkdf)
    exchange = node.new_exchange(session, _InitiatorDelegate(handshake), now)
    first = handshake.start()
    exchange.send(first.protocol_id, first.opcode, first.payload)
    exchange.set_response_timeout(RESPONSE_TIMEOUT)
    return handshake
