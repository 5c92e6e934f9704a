"""In-memory pairs of nodes with hand-stepped time (aioquic ``client_and_server`` style).

Importable by other test modules (PASE, CASE, IM, BDX): ``from msg_pair import ...``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from matter_ota.messaging.crypto import SessionKeys
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import Address, SecureSession, SessionKind
from matter_ota.node import Node

CLIENT_ADDR: Address = ("fe80::1", 40000)
SERVER_ADDR: Address = ("fe80::2", 5540)

KEYS = SessionKeys(
    i2r_key=bytes(range(16)), r2i_key=bytes(range(16, 32)), attestation_challenge=bytes(16)
)


def pinned(value: float) -> Callable[[], float]:
    """A jitter source that always returns ``value``."""
    return lambda: value


def make_node(jitter: float = 0.0, **kwargs: int) -> Node:
    return Node(jitter=pinned(jitter), **kwargs)  # type: ignore[arg-type]


def secure_pair(
    client: Node,
    server: Node,
    now: float = 0.0,
    kind: SessionKind = SessionKind.CASE,
    client_node_id: int = 0x1111,
    server_node_id: int = 0x2222,
) -> tuple[SecureSession, SecureSession]:
    """Install matching secure sessions on both nodes, as PASE/CASE would."""
    c_id = client.sessions.allocate_id()
    s_id = server.sessions.allocate_id()
    c = SecureSession.from_keys(
        KEYS, kind=kind, local_session_id=c_id, peer_session_id=s_id, is_initiator=True,
        now=now, local_node_id=client_node_id, peer_node_id=server_node_id,
        peer_addr=SERVER_ADDR,
    )
    s = SecureSession.from_keys(
        KEYS, kind=kind, local_session_id=s_id, peer_session_id=c_id, is_initiator=False,
        now=now, local_node_id=server_node_id, peer_node_id=client_node_id,
        peer_addr=CLIENT_ADDR,
    )
    client.add_secure_session(c)
    server.add_secure_session(s)
    return c, s


def deliver(
    sender: Node,
    receiver: Node,
    now: float,
    sender_addr: Address,
    drop: Callable[[bytes], bool] = lambda _d: False,
) -> int:
    """Move every queued datagram of ``sender`` to ``receiver``; returns how many arrived."""
    count = 0
    for data, _addr in sender.datagrams_to_send():
        if drop(data):
            continue
        receiver.datagram_received(data, sender_addr, now)
        count += 1
    return count


def roundtrip(client: Node, server: Node, now: float) -> None:
    """Exchange datagrams until both sides are quiet."""
    while deliver(client, server, now, CLIENT_ADDR) + deliver(server, client, now, SERVER_ADDR):
        pass


@dataclass
class Recorder(ExchangeDelegate):
    """A delegate that records what arrives (and optionally answers)."""

    messages: list[Message] = field(default_factory=list)
    closed: list[CloseReason] = field(default_factory=list)
    reply: Callable[[Exchange, Message], None] | None = None

    def on_message(self, exchange: Exchange, message: Message) -> None:
        self.messages.append(message)
        if self.reply is not None:
            self.reply(exchange, message)

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        self.closed.append(reason)


def drain_events(node: Node) -> list[object]:
    events = []
    while (event := node.next_event()) is not None:
        events.append(event)
    return events
