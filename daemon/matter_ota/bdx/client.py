"""A BDX download on the node, as an OTA requestor runs it (emulator and tests).

    rx = ReceiverTransfer(b"image-1", sink)
    download = start_download(node, session, rx, now)
    ... move datagrams ...
    node.next_event()  -> DownloadCompleted(download) or DownloadFailed(download, reason)

The receiver's idle timeout is the exchange's response timeout, reset by every message.
"""

from __future__ import annotations

from dataclasses import dataclass

from matter_ota.bdx.messages import BdxError, StatusCode, status_report
from matter_ota.bdx.receiver import ReceiverState, ReceiverTransfer
from matter_ota.bdx.server import send_all
from matter_ota.messaging.errors import MessageError
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import Session
from matter_ota.messaging.status import Protocol, StatusReport
from matter_ota.node import Node

#: How long a requestor waits for the provider's next message.
RECEIVER_IDLE_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class DownloadCompleted:
    download: Download


@dataclass(frozen=True, slots=True)
class DownloadFailed:
    download: Download
    reason: str
    report: StatusReport | None = None


class Download(ExchangeDelegate):
    """One running download (the exchange delegate of the receiver)."""

    def __init__(self, receiver: ReceiverTransfer, idle_timeout: float) -> None:
        self.receiver = receiver
        self.idle_timeout = idle_timeout
        self.exchange: Exchange | None = None

    def on_message(self, exchange: Exchange, message: Message) -> None:
        node = exchange.node
        if message.is_status_report():
            exchange.delegate = None
            exchange.close()
            self.receiver.failed()
            try:
                report: StatusReport | None = StatusReport.decode(message.payload)
            except MessageError:
                report = None
            reason = report.describe() if report else "malformed StatusReport"
            node.emit(DownloadFailed(self, f"peer reported {reason}", report))
            return
        try:
            if message.protocol_id != Protocol.BDX:
                raise BdxError(StatusCode.UNEXPECTED_MESSAGE, "not a BDX message")
            out = self.receiver.receive(message.opcode, message.payload)
        except BdxError as err:
            self.receiver.failed()
            exchange.delegate = None
            node.emit(DownloadFailed(self, err.reason, status_report(err.code)))
            raise  # the node sends our StatusReport and closes the exchange
        send_all(exchange, out)
        if self.receiver.state is ReceiverState.DONE:
            exchange.delegate = None
            exchange.close()  # BlockAckEOF keeps retransmitting until acknowledged
            node.emit(DownloadCompleted(self))
        else:
            exchange.set_response_timeout(self.idle_timeout)

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self.receiver.failed()
        exchange.node.emit(DownloadFailed(self, f"exchange {reason.value}"))

    def abort(self, now: float) -> None:
        """Give up: tell the sender (TRANSFER_FAILED_UNKNOWN_ERROR) and close."""
        exchange = self.exchange
        if exchange is None or exchange.closed:
            return
        exchange.manager.now = now
        exchange.delegate = None
        self.receiver.failed()
        exchange.send_status(status_report(StatusCode.TRANSFER_FAILED_UNKNOWN_ERROR))
        exchange.close()


def start_download(
    node: Node,
    session: Session,
    receiver: ReceiverTransfer,
    now: float,
    *,
    idle_timeout: float = RECEIVER_IDLE_TIMEOUT,
) -> Download:
    """Open an exchange on ``session`` and send the ReceiveInit."""
    download = Download(receiver, idle_timeout)
    exchange = node.new_exchange(session, download, now)
    download.exchange = exchange
    first = receiver.start()
    exchange.send(Protocol.BDX, first.opcode, first.payload)
    exchange.set_response_timeout(idle_timeout)
    return download
