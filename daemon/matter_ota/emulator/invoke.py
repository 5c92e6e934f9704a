"""A minimal Interaction Model invoke client (10.7.9 / 10.7.10) for emulated requestors.

``invoke(node, session, path, fields, now)`` opens an exchange and sends one InvokeRequest;
the returned :class:`Invocation` is done when the InvokeResponse (or a StatusResponse, or the
exchange's end) arrived: ``fields`` holds the response command's TLV structure, ``status`` the
IM status of a status-only answer, ``error`` why it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matter_ota.im.messages import (
    CommandDataIB,
    CommandPathIB,
    IMError,
    InvokeRequest,
    InvokeResponse,
    Opcode,
    Status,
    StatusResponse,
)
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import Session
from matter_ota.messaging.status import Protocol
from matter_ota.node import Node

IM = Protocol.INTERACTION_MODEL
#: How long we wait for the InvokeResponse (connectedhomeip's default IM timeout is 30 s).
RESPONSE_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class InvocationDone:
    """Node event: an invocation got its answer (or failed); drivers wake up on it."""

    invocation: Invocation


class Invocation(ExchangeDelegate):
    """One command in flight; see the module docstring."""

    def __init__(self, path: CommandPathIB) -> None:
        self.path = path
        self.done = False
        self.fields: Any = None
        self.response_command: int | None = None
        self.status: int | None = None
        self.cluster_status: int | None = None
        self.error: str | None = None

    @property
    def ok(self) -> bool:
        return self.done and self.error is None and (
            self.fields is not None or self.status == Status.SUCCESS)

    def on_message(self, exchange: Exchange, message: Message) -> None:
        self.done = True
        exchange.delegate = None
        exchange.close()
        exchange.node.emit(InvocationDone(self))
        try:
            if message.protocol_id != IM:
                self.error = f"protocol 0x{message.protocol_id:04x} opcode {message.opcode}"
            elif message.opcode == Opcode.STATUS_RESPONSE:
                self.status = StatusResponse.decode(message.payload).status
                self.error = f"status 0x{self.status:02x}"
            elif message.opcode == Opcode.INVOKE_RESPONSE:
                self._response(InvokeResponse.decode(message.payload))
            else:
                self.error = f"unexpected IM opcode 0x{message.opcode:02x}"
        except IMError as exc:
            self.error = f"malformed answer: {exc}"

    def _response(self, response: InvokeResponse) -> None:
        if not response.invoke_responses:
            self.error = "empty InvokeResponse"
            return
        answer = response.invoke_responses[0]
        if answer.command is not None:
            self.response_command = answer.command.path.command
            self.fields = answer.command.fields
        elif answer.status is not None:
            self.status = answer.status.status.status
            self.cluster_status = answer.status.status.cluster_status
            if self.status != Status.SUCCESS:
                self.error = f"status 0x{self.status:02x}"
        else:
            self.error = "InvokeResponseIB without command or status"

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        if not self.done:
            self.done = True
            self.error = f"exchange {reason.value}"
            exchange.node.emit(InvocationDone(self))


def invoke(node: Node, session: Session, endpoint: int, cluster: int, command: int,
           fields: Any, now: float, *, timeout: float = RESPONSE_TIMEOUT) -> Invocation:
    """Send one InvokeRequest for ``cluster``/``command`` on ``endpoint``."""
    path = CommandPathIB(endpoint=endpoint, cluster=cluster, command=command)
    request = InvokeRequest(suppress_response=False, timed_request=False,
                            invoke_requests=[CommandDataIB(path=path, fields=fields)])
    invocation = Invocation(path)
    exchange = node.new_exchange(session, invocation, now)
    exchange.send(IM, Opcode.INVOKE_REQUEST, request.encode())
    exchange.set_response_timeout(timeout)
    return invocation
