"""BDX on the node: the provider's dispatch entry, exchange delegates and transfer events.

:class:`BdxServer` registers ReceiveInit (BDX 0x04) in the node's dispatch table for the
session kinds given (CASE only by default: OTA requestors reach the provider over CASE; tests
may add PASE explicitly). A ReceiveInit opens a transfer in the :class:`~.transfers.TransferTable`
on that exchange; the rest of the transfer arrives through the exchange delegate. A SendInit is
refused with TRANSFER_METHOD_NOT_SUPPORTED: the provider never receives files.

Errors: a refused ReceiveInit or a bad message raises :class:`~.messages.BdxError` and the
node sends the StatusReport (general FAILURE, protocol BDX) and closes the exchange. A peer's
StatusReport, the idle timeout (the exchange's response timeout, reset by every message), an
MRP give-up or the session going away end the transfer without a reply. Transfer events
(:class:`~.sender.TransferStarted` ...) go to :meth:`Node.emit`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable

from matter_ota.bdx.messages import BdxError, Opcode, StatusCode, status_report
from matter_ota.bdx.sender import (
    FailReason,
    Lookup,
    Send,
    SenderConfig,
    SenderTransfer,
)
from matter_ota.bdx.transfers import TransferTable
from matter_ota.messaging.errors import MessageError
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import SecureSession, Session, SessionKind
from matter_ota.messaging.status import Protocol, StatusReport
from matter_ota.node import Node

log = logging.getLogger("matter_ota.bdx")

#: Where the provider serves BDX in production: CASE sessions only.
PRODUCTION_SESSIONS = frozenset({SessionKind.CASE})


def device_key(session: Session) -> Hashable:
    """Who a transfer belongs to: (fabric index, node id) on CASE; the session on PASE."""
    if isinstance(session, SecureSession) and session.kind is SessionKind.CASE:
        return ("case", session.fabric_index, session.peer_node_id)
    if isinstance(session, SecureSession):
        return ("pase", session.local_session_id)
    return ("unsecured", session.key)


def send_all(exchange: Exchange, messages: Iterable[Send]) -> None:
    for m in messages:
        exchange.send(Protocol.BDX, m.opcode, m.payload)


class BdxServer:
    """The provider's BDX responder on a :class:`~matter_ota.node.Node`."""

    def __init__(
        self,
        node: Node,
        lookup: Lookup,
        config: SenderConfig | None = None,
        *,
        sessions: Iterable[SessionKind] = PRODUCTION_SESSIONS,
    ) -> None:
        self.node = node
        self.table = TransferTable(lookup, config)
        self.sessions = frozenset(sessions)
        if SessionKind.UNSECURED in self.sessions:
            raise ValueError("BDX never runs on unsecured sessions")
        self._exchanges: dict[int, Exchange] = {}
        node.register(Protocol.BDX, Opcode.RECEIVE_INIT, self._on_receive_init, self.sessions)
        node.register(Protocol.BDX, Opcode.SEND_INIT, self._on_send_init, self.sessions)

    @property
    def config(self) -> SenderConfig:
        return self.table.config

    def _on_send_init(self, exchange: Exchange, message: Message) -> None:
        raise BdxError(StatusCode.TRANSFER_METHOD_NOT_SUPPORTED, "the provider only sends")

    def _on_receive_init(self, exchange: Exchange, message: Message) -> None:
        now = message.received_at
        try:
            transfer, accept, old = self.table.open(
                device_key(message.session), message.payload, now
            )
        finally:
            self._forward_events()
        if old is not None:
            self._release(old)  # its device started over: nobody listens on the old exchange
        self._exchanges[transfer.transfer_id] = exchange
        exchange.delegate = _TransferDelegate(self, transfer)
        try:
            exchange.send(Protocol.BDX, Opcode.RECEIVE_ACCEPT, accept.encode())
            send_all(exchange, self.table.start(transfer, now))
        except (BdxError, MessageError) as err:
            self._abort(transfer, err, now)
            raise
        finally:
            self._forward_events()
        exchange.set_response_timeout(self.config.idle_timeout)

    # -- called by the delegates ---------------------------------------------------------------

    def _on_message(self, transfer: SenderTransfer, exchange: Exchange, message: Message) -> None:
        now = message.received_at
        if message.is_status_report():
            try:
                report = StatusReport.decode(message.payload)
                detail = report.describe()
                status = _bdx_status(report)
            except MessageError as exc:
                detail, status = f"malformed StatusReport: {exc}", None
            self.table.fail(transfer, FailReason.PEER_STATUS, detail, now, status)
            self._release(transfer)
            self._forward_events()
            return
        if message.protocol_id != Protocol.BDX:
            err = BdxError(StatusCode.UNEXPECTED_MESSAGE, f"protocol 0x{message.protocol_id:08x}")
            self._abort(transfer, err, now)
            raise err
        try:
            send_all(exchange, self.table.receive(transfer, message.opcode, message.payload, now))
        except BdxError:
            self._detach(transfer)  # the node sends the StatusReport and closes the exchange
            raise
        except MessageError as err:
            self._abort(transfer, err, now)
            raise BdxError(StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR, str(err)) from err
        finally:
            self._forward_events()
        if transfer.finished:
            self._release(transfer)
        else:
            exchange.set_response_timeout(self.config.idle_timeout)

    def _on_close(self, transfer: SenderTransfer, reason: CloseReason) -> None:
        now = self.node.now
        why = {
            CloseReason.RESPONSE_TIMEOUT: FailReason.IDLE_TIMEOUT,
            CloseReason.ACK_TIMEOUT: FailReason.ACK_TIMEOUT,
            CloseReason.SESSION_CLOSED: FailReason.SESSION_CLOSED,
        }.get(reason, FailReason.PROTOCOL_ERROR)
        self.table.fail(transfer, why, f"exchange {reason.value}", now)
        self._exchanges.pop(transfer.transfer_id, None)
        self._forward_events()

    # -- internals -----------------------------------------------------------------------------

    def _abort(self, transfer: SenderTransfer, err: Exception, now: float) -> None:
        status = err.code if isinstance(err, BdxError) else StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR
        self.table.fail(transfer, FailReason.PROTOCOL_ERROR, str(err), now, status)
        self._detach(transfer)  # the node sends the StatusReport and closes the exchange

    def _detach(self, transfer: SenderTransfer) -> Exchange | None:
        """Forget ``transfer``'s exchange and stop delegating it; returns the exchange."""
        exchange = self._exchanges.pop(transfer.transfer_id, None)
        if exchange is not None:
            exchange.delegate = None
        return exchange

    def _release(self, transfer: SenderTransfer, tell: StatusCode | None = None) -> None:
        """Detach ``transfer`` and close its exchange, first sending ``tell`` if given."""
        exchange = self._detach(transfer)
        if exchange is None or exchange.closed:
            return
        if tell is not None:
            exchange.send_status(status_report(tell))
        exchange.close()

    def _forward_events(self) -> None:
        while (event := self.table.next_event()) is not None:
            self.node.emit(event)

    def shutdown(self, now: float) -> None:
        """Fail every transfer and tell its device (the daemon is stopping)."""
        for transfer in self.table.transfers():
            self.table.fail(transfer, FailReason.SHUTDOWN, "provider shutting down", now)
            self._release(transfer, tell=StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR)
        self._forward_events()


def _bdx_status(report: StatusReport) -> StatusCode | None:
    if report.protocol_id != Protocol.BDX:
        return None
    try:
        return StatusCode(report.protocol_code)
    except ValueError:
        return None


class _TransferDelegate(ExchangeDelegate):
    def __init__(self, server: BdxServer, transfer: SenderTransfer) -> None:
        self.server = server
        self.transfer = transfer

    def on_message(self, exchange: Exchange, message: Message) -> None:
        self.server._on_message(self.transfer, exchange, message)

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self.server._on_close(self.transfer, reason)
