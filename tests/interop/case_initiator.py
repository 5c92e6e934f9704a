"""Our CASE initiator against a real peer; run by ``test_case_chip.py`` inside the namespace.

Opens ``--attempts`` CASE sessions one after the other to ``--ip``/``--port`` (the second and
later offer resumption), and on each established session sends one reliable Interaction Model
ReadRequest: the peer's acknowledgement and answer arrive encrypted with the session keys, so a
reply proves both directions of the key derivation. Prints one ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import logging
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

from matter_ota import tlv
from matter_ota.fabrics import FabricInfo
from matter_ota.messaging.exchange import CloseReason, Exchange, ExchangeDelegate, Message
from matter_ota.messaging.session import SecureSession
from matter_ota.node import Node
from matter_ota.secure_channel.case_server import CaseClient, CaseConnection

IM_PROTOCOL, READ_REQUEST = 0x0001, 0x02


class _Replies(ExchangeDelegate):
    def __init__(self) -> None:
        self.messages: list[tuple[int, int]] = []

    def on_message(self, exchange: Exchange, message: Message) -> None:
        self.messages.append((message.protocol_id, message.opcode))
        exchange.close()

    def on_close(self, exchange: Exchange, reason: CloseReason) -> None:
        pass


def _read_request() -> bytes:
    """ReadRequestMessage for Basic Information (0x0028) DataModelRevision on endpoint 0."""
    path = tlv.TLVList([(2, tlv.uint(0)), (3, tlv.uint(0x0028)), (4, tlv.uint(0))])
    return tlv.encode({0: [path], 3: True, 0xFF: tlv.uint(12)})


class Pump:
    """Moves datagrams between a UDP socket and the sans-IO node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.bind(("::", 0))

    def run_until(self, done: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            now = time.monotonic()
            if now >= deadline:
                return False
            for data, addr in self.node.datagrams_to_send():
                self.sock.sendto(data, addr)
            nxt = self.node.next_deadline()
            wait = min(deadline, nxt if nxt is not None else deadline) - now
            readable, _, _ = select.select([self.sock], [], [], max(0.0, min(wait, 0.05)))
            now = time.monotonic()
            if readable:
                data, addr = self.sock.recvfrom(2048)
                self.node.datagram_received(data, (addr[0], addr[1]), now)
            nxt = self.node.next_deadline()
            if nxt is not None and nxt <= now:
                self.node.handle_timer(now)
        for data, addr in self.node.datagrams_to_send():
            self.sock.sendto(data, addr)
        return True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fabric", required=True)
    parser.add_argument("--peer-node-id", type=lambda s: int(s, 0), required=True)
    parser.add_argument("--ip", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--attempts", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    fabric = FabricInfo.from_dict(json.loads(Path(args.fabric).read_text()))
    node = Node()
    client = CaseClient(node, cert_time=lambda _now: int(time.time()))
    pump = Pump(node)
    attempts: list[dict[str, Any]] = []
    for _ in range(args.attempts):
        conn: CaseConnection = client.connect(
            fabric, args.peer_node_id, (args.ip, args.port), time.monotonic()
        )
        pump.run_until(lambda conn=conn: conn.done, args.timeout)
        outcome: dict[str, Any] = {
            "established": conn.session is not None,
            "resumed": conn.resumed,
            "error": None if conn.error is None else conn.error.report.describe(),
            "reason": None if conn.error is None else str(conn.error),
        }
        session: SecureSession | None = conn.session
        if session is not None:
            replies = _Replies()
            exchange = node.new_exchange(session, replies, time.monotonic())
            exchange.send(IM_PROTOCOL, READ_REQUEST, _read_request())
            exchange.set_response_timeout(args.timeout)
            pump.run_until(
                lambda ex=exchange, r=replies: not ex.awaiting_ack and bool(r.messages),
                args.timeout,
            )
            outcome["acked"] = not exchange.awaiting_ack
            outcome["replies"] = replies.messages
            node.close_session(session, time.monotonic())
            pump.run_until(lambda: True, 0.1)
        attempts.append(outcome)
    ok = all(a["established"] and a.get("replies") for a in attempts)
    print("RESULT " + json.dumps({"ok": ok, "attempts": attempts}), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
