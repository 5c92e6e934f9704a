"""CASE on the node: the responder behind the Sigma1 dispatch entry, and the initiator's driver.

:class:`CaseServer` registers ``(secure channel, Sigma1)`` on unsecured sessions; each Sigma1
starts a :class:`~.case.CaseResponder` on its exchange, bounded by ``max_pending`` concurrent
handshakes (more get BUSY with a minimum wait, 4.11.1.4) and ``handshake_timeout``. A completed
handshake becomes a CASE :class:`~matter_ota.messaging.session.SecureSession` in the node's
session table (which evicts its least recently used session when full).

:class:`CaseClient` opens sessions: :meth:`CaseClient.connect` returns a :class:`CaseConnection`
whose ``session`` / ``error`` are set when the handshake ends; it offers resumption when the
store holds a record for the peer.

Certificates are checked against ``cert_time(now)``: it maps the node's clock to Unix seconds
(None skips the validity-period check); the runtime supplies it, protocol code reads no clock.
"""

from __future__ import annotations

import logging
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from matter_ota.fabrics import FabricInfo, FabricTable
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
from matter_ota.secure_channel.case import (
    CaseError,
    CaseHandshake,
    CaseInitiator,
    CaseResponder,
    CaseResult,
    PeerReportedFailure,
    UnexpectedMessage,
)
from matter_ota.secure_channel.case_messages import Sigma1
from matter_ota.secure_channel.common import Random, Send, busy_wait, send_all
from matter_ota.secure_channel.resumption import ResumptionStore
from matter_ota.tlv import TLVError

log = logging.getLogger("matter_ota.case")

CertTime = Callable[[float], int | None]

#: Ours: the share of the node's unsecured-session pool CASE leaves free: for a commissioner's
#: PASE, and for the sessions of refused initiators while their BUSY awaits its ack.
FREE_SHARE = 4  # a quarter
#: Ours: how many recent Sigma1 initiator randoms we remember to drop replays (an initiator draws
#: a fresh random for every Sigma1, 4.14.2.2; a replayed Sigma1 would hold a handshake slot).
RECENT_SIGMA1 = 256
DEFAULT_HANDSHAKE_TIMEOUT = 30.0  # connectedhomeip: kExpectedHighProcessingTime
#: 4.11.1.4 BUSY carries the minimum wait (ms) the initiator observes. Ours: about as long as a
#: handshake takes here (so a place has likely freed when it comes back), within these bounds;
#: connectedhomeip's single-handshake server asks 5000 ms, or its Sigma2 timeout.
MIN_BUSY_WAIT_MS = 500
MAX_BUSY_WAIT_MS = 5000


@dataclass(frozen=True, slots=True)
class CaseFailed:
    """Node event: a CASE handshake ended without a session."""

    peer_node_id: int | None
    reason: str


def install(node: Node, result: CaseResult, exchange: Exchange) -> SecureSession:
    """Turn a finished handshake into a CASE session in the node's table."""
    session = SecureSession.from_keys(
        result.keys,
        kind=SessionKind.CASE,
        local_session_id=result.local_session_id,
        peer_session_id=result.peer_session_id,
        is_initiator=result.is_initiator,
        now=exchange.now,
        local_node_id=result.local_node_id,
        peer_node_id=result.peer_node_id,
        fabric_index=result.fabric_index,
        peer_params=result.peer_params,
        peer_addr=exchange.session.peer_addr,
        peer_cats=result.peer_cats,
    )
    node.add_secure_session(session)
    return session


class _Driver(ExchangeDelegate):
    """Feeds one exchange's messages to one handshake; shared by both roles."""

    def __init__(self, node: Node, handshake: CaseHandshake, timeout: float) -> None:
        self.node = node
        self.handshake = handshake
        self.timeout = timeout
        self.session: SecureSession | None = None
        self.error: CaseError | None = None

    def on_message(self, exchange: Exchange, message: Message) -> None:
        hs = self.handshake
        try:
            if message.is_status_report():
                try:
                    report = StatusReport.decode(message.payload)
                except MessageError:
                    return
                self._status(report)
                sends: list[Send] = []
            else:
                sends = hs.receive(message.opcode, message.payload)
        except UnexpectedMessage:
            return  # stray message: dropped, the handshake goes on
        except PeerReportedFailure as e:
            self._failed(exchange, e)
            exchange.delegate = None
            exchange.close()
            return
        except CaseError as e:
            self._failed(exchange, e)
            raise  # the node sends e.report and closes the exchange
        send_all(exchange, sends)
        if sends and hs.result is None:
            # The peer's next message is due, Sigma3 or the initiator's awaited SUCCESS
            # StatusReport alike: a peer that lost the handshake must not hold us for ever.
            exchange.set_response_timeout(self.timeout)
        if hs.result is not None:
            self.session = install(self.node, hs.result, exchange)
            log.info(
                "event=case_established role=%s resumed=%s fabric=%d node=0x%016X peer=[%s]:%s",
                "initiator" if hs.result.is_initiator else "responder",
                str(hs.result.resumed).lower(),
                hs.result.fabric_index,
                hs.result.peer_node_id,
                *(exchange.session.peer_addr or ("-", "-")),
            )
            self._finished(hs.result)
            exchange.delegate = None
            exchange.close()

    def _status(self, report: StatusReport) -> None:
        raise NotImplementedError

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self._failed(exchange, CaseError(f"exchange closed: {reason.value}"))

    def _failed(self, exchange: Exchange, error: CaseError) -> None:
        if self.error is None and self.session is None:
            self.error = error
            self.handshake.fail()
            self.node.sessions.release_id(self.handshake.local_session_id)
            log.info("event=case_failed exchange=%d reason=%s", exchange.exchange_id, error)
            self.node.emit(CaseFailed(self._peer(), str(error)))
            self._cleanup()

    def _finished(self, result: CaseResult) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        pass

    def _peer(self) -> int | None:
        return None


class _ResponderDriver(_Driver):
    def __init__(self, server: CaseServer, handshake: CaseResponder, key: object,
                 started: float) -> None:
        super().__init__(server.node, handshake, server.handshake_timeout)
        self.server = server
        self.responder = handshake
        self.key = key
        self.started = started

    def _status(self, report: StatusReport) -> None:
        self.responder.receive_status(report)

    def _finished(self, result: CaseResult) -> None:
        self.server._observe(self.node.now - self.started)
        super()._finished(result)

    def _cleanup(self) -> None:
        self.server._pending.pop(self.key, None)


class CaseServer:
    """The responder side of CASE on a node. Call :meth:`register` once."""

    def __init__(
        self,
        node: Node,
        fabrics: FabricTable,
        *,
        cert_time: CertTime,
        resumptions: ResumptionStore | None = None,
        max_pending: int | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        local_params: SessionParameters = DEFAULT_PARAMETERS,
        random: Random = secrets.token_bytes,
    ) -> None:
        self.node = node
        self.fabrics = fabrics
        self.cert_time = cert_time
        self.resumptions = resumptions if resumptions is not None else ResumptionStore()
        # Every handshake holds a place of the node's unsecured pool; bounded below the pool,
        # CASE refuses with BUSY before the pool itself is full (which would refuse a PASE too).
        pool = node.max_unsecured_sessions
        default = max(1, pool - max(1, pool // FREE_SHARE))
        self.max_pending = max_pending if max_pending is not None else default
        self.handshake_timeout = handshake_timeout
        self.local_params = local_params
        self.random = random
        self._pending: dict[object, _ResponderDriver] = {}
        self._typical = MIN_BUSY_WAIT_MS / 1000  # running mean of handshake durations (s)
        self.refused_busy = 0  # Sigma1 answered BUSY since start
        self._recent: OrderedDict[bytes, None] = OrderedDict()

    def register(self) -> None:
        """Add the Sigma1 entry to the node's dispatch table."""
        self.node.register(
            Protocol.SECURE_CHANNEL, Op.CASE_SIGMA1, self._on_sigma1, {SessionKind.UNSECURED}
        )

    @property
    def pending(self) -> int:
        """Handshakes in progress."""
        return len(self._pending)

    def _on_sigma1(self, exchange: Exchange, message: Message) -> None:
        session = exchange.session
        full = isinstance(session, UnsecuredSession) and not session.pooled  # pool: all busy
        # A Sigma1 seen before is a replay, or a device's retransmission whose first copy was
        # answered on a session the pool has since let go: either way no new handshake, but an
        # answer (a silent drop would hold a real device until its handshake timeout).
        replayed = self._replayed(message.payload)
        # Every handshake ends in a secure session: with the table full of sessions that have
        # work running (downloads), a newcomer waits rather than evicting one of them.
        no_room = not self.node.secure_room(len(self._pending) + 1)
        if full or replayed or no_room or len(self._pending) >= self.max_pending:
            self.refused_busy += 1
            raise CaseError(
                "Sigma1 seen before" if replayed
                else "every secure session has work running" if no_room
                else f"{len(self._pending)} CASE handshakes in progress",
                SecureChannelCode.BUSY,
                GeneralCode.BUSY,
                self.busy_wait_ms().to_bytes(2, "little"),
            )
        local_id = self.node.sessions.allocate_id()
        handshake = CaseResponder(
            self.fabrics,
            self.resumptions,
            local_id,
            cert_time=self.cert_time(exchange.now),
            local_params=self.local_params,
            random=self.random,
        )
        try:
            sends = handshake.receive(message.opcode, message.payload)
        except CaseError as e:
            self.node.sessions.release_id(local_id)
            log.info("event=case_refused peer=%s reason=%s", message.addr, e)
            raise
        key = (exchange.session.key, exchange.exchange_id)
        driver = _ResponderDriver(self, handshake, key, exchange.now)
        self._pending[key] = driver
        exchange.delegate = driver
        send_all(exchange, sends)
        exchange.set_response_timeout(self.handshake_timeout)


    def busy_wait_ms(self) -> int:
        """The minimum wait a BUSY asks for: about one handshake's duration here."""
        wait = round(self._typical * 1000)
        return max(MIN_BUSY_WAIT_MS, min(MAX_BUSY_WAIT_MS, wait))

    def _observe(self, duration: float) -> None:
        self._typical += (duration - self._typical) / 8  # exponential mean over ~8 handshakes

    def _replayed(self, payload: bytes) -> bool:
        """True for a Sigma1 whose initiator random came recently (a malformed one is not: the
        handshake refuses it with the proper status)."""
        try:
            random = Sigma1.decode(payload).initiator_random
        except TLVError:
            return False
        if random in self._recent:
            return True
        self._recent[random] = None
        if len(self._recent) > RECENT_SIGMA1:
            self._recent.popitem(last=False)
        return False


class CaseConnection(_Driver):
    """One initiator handshake in flight; ``session`` or ``error`` is set when it ends."""

    def __init__(self, client: CaseClient, handshake: CaseInitiator) -> None:
        super().__init__(client.node, handshake, client.handshake_timeout)
        self.client = client
        self.initiator = handshake

    @property
    def done(self) -> bool:
        return self.session is not None or self.error is not None

    @property
    def resumed(self) -> bool:
        result = self.initiator.result
        return result is not None and result.resumed

    @property
    def retry_after(self) -> float | None:
        """Seconds the responder asked us to wait when it refused with BUSY (4.11.1.4)."""
        return None if self.error is None else busy_wait(self.error.report)

    def _status(self, report: StatusReport) -> None:
        self.initiator.receive_status(report)

    def _finished(self, result: CaseResult) -> None:
        self.client.resumptions.put(result.resumption)

    def _cleanup(self) -> None:
        if self.error is not None:  # whatever went wrong, the next attempt starts afresh
            rec = self.client.resumptions.for_peer(
                self.initiator.fabric.fabric_index, self.initiator.peer_node_id
            )
            if rec is not None:
                self.client.resumptions.remove(rec.resumption_id)

    def _peer(self) -> int | None:
        return self.initiator.peer_node_id


class CaseClient:
    """The initiator side of CASE on a node."""

    def __init__(
        self,
        node: Node,
        *,
        cert_time: CertTime,
        resumptions: ResumptionStore | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        local_params: SessionParameters = DEFAULT_PARAMETERS,
        random: Random = secrets.token_bytes,
    ) -> None:
        self.node = node
        self.cert_time = cert_time
        self.resumptions = resumptions if resumptions is not None else ResumptionStore()
        self.handshake_timeout = handshake_timeout
        self.local_params = local_params
        self.random = random

    def connect(
        self,
        fabric: FabricInfo,
        peer_node_id: int,
        addr: Address,
        now: float,
        *,
        resume: bool = True,
    ) -> CaseConnection:
        """Send Sigma1 to ``peer_node_id`` at ``addr``; drive the node to finish the handshake."""
        record = self.resumptions.for_peer(fabric.fabric_index, peer_node_id) if resume else None
        handshake = CaseInitiator(
            fabric,
            peer_node_id,
            self.node.sessions.allocate_id(),
            cert_time=self.cert_time(now),
            resumption=record,
            local_params=self.local_params,
            random=self.random,
        )
        connection = CaseConnection(self, handshake)
        unsecured = self.node.open_unsecured_session(addr, now)
        exchange = self.node.new_exchange(unsecured, connection, now)
        first = handshake.start()
        exchange.send(first.protocol_id, first.opcode, first.payload)
        exchange.set_response_timeout(self.handshake_timeout)
        return connection
