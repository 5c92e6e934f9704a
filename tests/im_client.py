"""A minimal Interaction Model client for in-memory tests: sends requests over a node pair,
answers report chunks with StatusResponse like a real client, and collects what came back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from msg_pair import roundtrip

from matter_ota import tlv
from matter_ota.im.messages import (
    AttributePathIB,
    AttributeReportIB,
    IMError,
    Opcode,
    ReportData,
    Status,
    StatusResponse,
)
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import SecureSession
from matter_ota.messaging.status import Protocol
from matter_ota.node import Node

IM = Protocol.INTERACTION_MODEL


@dataclass
class Conversation(ExchangeDelegate):
    """Everything one exchange brought back; acknowledges report chunks unless told not to."""

    messages: list[Message] = field(default_factory=list)
    closed: list[CloseReason] = field(default_factory=list)
    answer_reports: bool = True
    answer_status: int = Status.SUCCESS
    keep_open: bool = False  # a multi-step conversation (timed, chunked write) goes on

    def on_message(self, exchange: Exchange, message: Message) -> None:
        self.messages.append(message)
        if message.protocol_id == IM and message.opcode == Opcode.REPORT_DATA:
            report = ReportData.decode(message.payload)
            if not report.suppress_response and self.answer_reports:
                exchange.send(IM, Opcode.STATUS_RESPONSE,
                              StatusResponse(status=self.answer_status).encode())
                if not report.more_chunked_messages and report.subscription_id is None:
                    exchange.close()
                return
            if report.suppress_response and not report.more_chunked_messages \
                    and not self.keep_open:
                exchange.close()  # the read is complete: acknowledge now, as a client does
                return
        if message.opcode != Opcode.REPORT_DATA and not self.keep_open:
            exchange.close()

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self.closed.append(reason)

    def opcodes(self) -> list[int]:
        return [m.opcode for m in self.messages]

    def reports(self) -> list[ReportData]:
        return [ReportData.decode(m.payload) for m in self.messages
                if m.protocol_id == IM and m.opcode == Opcode.REPORT_DATA]

    def attribute_reports(self) -> list[AttributeReportIB]:
        return [r for rd in self.reports() for r in rd.attribute_reports or ()]

    def last(self) -> Message:
        return self.messages[-1]


def values(reports: list[AttributeReportIB]) -> dict[tuple[int, int, int], Any]:
    """{(endpoint, cluster, attribute): data or ("status", code)}, lists reassembled."""
    out: dict[tuple[int, int, int], Any] = {}
    for r in reports:
        if r.attribute_data is not None:
            p = r.attribute_data.path
            key = (p.endpoint or 0, p.cluster or 0, p.attribute or 0)
            if p.list_append:
                out[key].append(r.attribute_data.data)
            else:
                out[key] = r.attribute_data.data
        elif r.attribute_status is not None:
            p = r.attribute_status.path
            key = (p.endpoint or 0, p.cluster or 0, p.attribute or 0)
            out[key] = ("status", r.attribute_status.status.status)
    return out


class Client:
    """Send IM requests from ``node`` to ``server`` on ``session`` and pump datagrams."""

    def __init__(self, node: Node, server: Node, session: SecureSession) -> None:
        self.node = node
        self.server = server
        self.session = session
        self.now = 0.0

    def send(self, opcode: int, payload: bytes, conversation: Conversation | None = None,
             *, pump: bool = True) -> Conversation:
        conv = conversation or Conversation()
        exchange = self.node.new_exchange(self.session, conv, self.now)
        exchange.send(IM, opcode, payload)
        if pump:
            self.pump()
        return conv

    def pump(self) -> None:
        roundtrip(self.node, self.server, self.now)

    def advance(self, seconds: float) -> None:
        """Step time, running both nodes' timers at each deadline on the way."""
        end = self.now + seconds
        while True:
            deadlines = [d for d in (self.node.next_deadline(), self.server.next_deadline())
                         if d is not None and d <= end]
            if not deadlines:
                break
            self.now = max(self.now, min(deadlines))
            self.server.handle_timer(self.now)
            self.node.handle_timer(self.now)
            self.pump()
        self.now = end
        self.pump()


def path(endpoint: int | None = None, cluster: int | None = None,
         attribute: int | None = None) -> AttributePathIB:
    return AttributePathIB(endpoint=endpoint, cluster=cluster, attribute=attribute)


def status_of(message: Message) -> int:
    assert message.opcode == Opcode.STATUS_RESPONSE, message.opcode
    try:
        return StatusResponse.decode(message.payload).status
    except IMError as exc:  # pragma: no cover - a failing test shows it
        raise AssertionError(exc) from exc


def raw(value: Any) -> bytes:
    return tlv.encode(value)
