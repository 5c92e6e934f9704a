"""``bench.py msg``: secured message encode + decode per second (1 KB payloads).

Baseline, measured in the same run: raw AES-CCM-128 encrypt + decrypt of the same payload with the
same key, nonce and header sizes (the floor cost of any Matter implementation on `cryptography`).
Then our message layer at two depths:

- ``session``: SecureSession.encode (protocol header, counter, nonce, AES-CCM) and the receive
  side (header decode, MIC check, protocol header decode, duplicate window);
- ``node``: an exchange send on one node and ``Node.datagram_received`` on the other, through
  the dispatch table to a handler (what a BDX block costs the provider, minus the BDX codec).

And the floor of any Python design: a flat hop with no layers (pack the headers, seal, unpack,
open, counter check, dict dispatch), and the cost of one Python call.

Rates are per second of the process's CPU time (``time.process_time``), best of five slices per
row: on a shared machine wall time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import os
import struct
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from matter_ota.messaging.crypto import SessionKeys
from matter_ota.messaging.exchange import Exchange, Message
from matter_ota.messaging.header import MessageHeader, ProtocolHeader
from matter_ota.messaging.session import SECURE_SESSIONS, SecureSession, SessionKind
from matter_ota.node import Node


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("msg", help="secured message encode+decode per second (1 KB payloads)")
    p.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    p.add_argument("--size", type=int, default=1024, help="payload bytes (default 1024)")
    p.set_defaults(func=run)


def _rate(fn: Callable[[], None], seconds: float) -> float:
    """Calls per CPU second: the best of five slices of ``seconds / 5``."""
    for _ in range(200):  # warm up
        fn()
    best = 0.0
    for _ in range(5):
        count, start = 0, time.process_time()
        deadline = start + seconds / 5
        while True:
            for _ in range(200):
                fn()
            count += 200
            now = time.process_time()
            if now >= deadline:
                best = max(best, count / (now - start))
                break
    return best


def run(args: argparse.Namespace) -> int:
    payload = os.urandom(args.size)
    keys = SessionKeys(os.urandom(16), os.urandom(16), os.urandom(16))

    # Baseline: the raw AEAD work of one message, both ends.
    aead = AESCCM(keys.i2r_key, tag_length=16)
    nonce, aad = os.urandom(13), os.urandom(8)
    raw_plain = b"\x05\x05\x00\x00\x01\x00" + payload

    def raw() -> None:
        aead.decrypt(nonce, aead.encrypt(nonce, raw_plain, aad), aad)

    # Session level.
    def sessions() -> tuple[SecureSession, SecureSession]:
        common = dict(kind=SessionKind.CASE, keys=keys, now=0.0)
        tx = SecureSession(local_session_id=1, peer_session_id=2, is_initiator=True,
                           local_node_id=1, peer_node_id=2, counter_start=1, **common)  # type: ignore[arg-type]
        rx = SecureSession(local_session_id=2, peer_session_id=1, is_initiator=False,
                           local_node_id=2, peer_node_id=1, **common)  # type: ignore[arg-type]
        return tx, rx

    tx, rx = sessions()
    proto = ProtocolHeader(protocol_id=2, opcode=0x11, exchange_id=7, requires_ack=True)

    def session_level() -> None:
        data, _ = tx.encode(proto, payload)
        header, offset = MessageHeader.decode(data)
        plain = rx.decrypt(header, data, offset)
        ProtocolHeader.decode(plain)
        if not rx.reception.accept(header.message_counter):
            raise AssertionError("duplicate")

    # Node level.
    client, server = Node(), Node()
    c, s = sessions()
    c.peer_addr, s.peer_addr = ("::1", 5540), ("::1", 40000)
    client.add_secure_session(c)
    server.add_secure_session(s)
    received: list[int] = []

    def handler(exchange: Exchange, message: Message) -> None:
        received.append(len(message.payload))

    server.register(2, 0x11, handler, SECURE_SESSIONS)
    exchange = client.new_exchange(c, None, 0.0)

    def node_level() -> None:
        exchange.send(2, 0x11, payload, reliable=False)
        [(data, _)] = client.datagrams_to_send()
        server.datagram_received(data, ("::1", 40000), 0.0)

    flat = _flat_hop(keys.i2r_key, payload, received)
    results = [
        ("raw AES-CCM encrypt+decrypt (baseline)", _rate(raw, args.seconds)),
        ("session encode+decode", _rate(session_level, args.seconds)),
        ("node send+receive+dispatch", _rate(node_level, args.seconds)),
        ("flat Python hop, no layers (floor)", _rate(flat, args.seconds)),
    ]
    assert received and received[-1] == args.size
    base = results[0][1]
    print(f"secured messages, {args.size}-byte payload, {args.seconds:g} s per row")
    print(f"{'measurement':42} {'msg/s':>10} {'us/msg':>8} {'vs raw':>7}")
    for name, rate in results:
        print(f"{name:42} {rate:10.0f} {1e6 / rate:8.1f} {rate / base:7.2f}")
    call_ns = 1e9 / (_rate(_chain, args.seconds) * 10)
    print(f"one Python call (a 10-deep chain / 10): {call_ns:.0f} ns")
    return 0


def _one(x: int) -> int:
    return x


def _chain() -> None:
    _one(_one(_one(_one(_one(_one(_one(_one(_one(_one(1))))))))))


def _flat_hop(key: bytes, payload: bytes, received: list[int]) -> Callable[[], None]:
    """Send + receive of one secured message with nothing but what the wire needs."""
    tx, rx = AESCCM(key, tag_length=16), AESCCM(key, tag_length=16)
    header, proto, nonce = struct.Struct("<BHBI"), struct.Struct("<BBHH"), struct.Struct("<BIQ")
    state = {"counter": 1, "max": 0}
    handlers = {(2, 0x11): received.append}

    def hop() -> None:
        counter = state["counter"]
        state["counter"] = counter + 1
        aad = header.pack(0, 2, 0, counter)
        data = aad + tx.encrypt(nonce.pack(0, counter, 1), proto.pack(1, 0x11, 7, 2) + payload, aad)
        _, _, sec, counter = header.unpack_from(data, 0)
        plain = rx.decrypt(nonce.pack(sec, counter, 1), memoryview(data)[8:], data[:8])
        _, opcode, _, protocol = proto.unpack_from(plain, 0)
        if counter > state["max"]:
            state["max"] = counter
            handlers[(protocol, opcode)](len(plain) - 6)

    return hop
