"""``bench.py im``: Interaction Model round trips per second over an in-memory node pair.

Baseline, measured in the same run: the message layer alone, a request answered by a handler
that sends back the bytes of the one-attribute read's answer (both ends' AES-CCM, MRP acks,
exchange bookkeeping). The IM rows add decoding, path expansion, ACL checks, attribute reads,
TLV encoding and, for the wildcard read, chunking with its StatusResponse step.
"""

from __future__ import annotations

import argparse
from functools import partial

from benchlib import calls_per_second
from im_client import Client, path
from msg_pair import make_node, secure_pair

from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.ota_provider import NothingAvailable, QueryImage
from matter_ota.clusters.root import build_root_node
from matter_ota.im.acl import AccessControl, AccessControlEntry, AuthMode, Privilege
from matter_ota.im.messages import (
    CommandDataIB,
    CommandPathIB,
    InvokeRequest,
    Opcode,
    ReadRequest,
)
from matter_ota.im.server import InteractionServer
from matter_ota.messaging.exchange import Exchange, Message
from matter_ota.messaging.session import SECURE_SESSIONS, SessionKind
from matter_ota.messaging.status import Protocol

CLIENT_NODE = 0x1B669


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("im", help="IM read / invoke round trips per second (in memory)")
    p.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    p.add_argument("--rounds", type=int, default=5,
                   help="interleaved rounds; the best of each row counts (shared machines)")
    p.set_defaults(func=run)


_rate = partial(calls_per_second, batch=1, warmup=20)


def _im_client() -> Client:
    client, server = make_node(), make_node()
    c, s = secure_pair(client, server, kind=SessionKind.CASE, client_node_id=CLIENT_NODE)
    s.fabric_index = 1
    access = AccessControl()
    access.set_entries(1, [AccessControlEntry(1, Privilege.ADMINISTER, AuthMode.CASE,
                                              (CLIENT_NODE,))])
    info = BasicInfo(vendor_name="matter-ota", vendor_id=0xFFF1, product_name="OTA Provider",
                     product_id=0x8000, unique_id="0123456789ABCDEF0123456789ABCDEF")
    InteractionServer(server, build_root_node(info, access, NothingAvailable()), access)
    return Client(client, server, c)


def _baseline(answer: bytes) -> Client:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)

    def echo(exchange: Exchange, _message: Message) -> None:
        exchange.send(Protocol.INTERACTION_MODEL, Opcode.REPORT_DATA, answer)

    server.register(Protocol.INTERACTION_MODEL, Opcode.READ_REQUEST, echo, SECURE_SESSIONS)
    return Client(client, server, c)


def run(args: argparse.Namespace) -> int:
    im = _im_client()
    one = ReadRequest(attribute_requests=[path(0, 0x28, 2)], fabric_filtered=True).encode()
    everything = ReadRequest(attribute_requests=[path()], fabric_filtered=True).encode()
    query = QueryImage(vendor_id=0xFFF1, product_id=0x8000, software_version=1,
                       protocols_supported=[0]).to_value()
    invoke = InvokeRequest(suppress_response=False, timed_request=False, invoke_requests=[
        CommandDataIB(path=CommandPathIB(endpoint=0, cluster=0x29, command=0),
                      fields=query)]).encode()
    answer = im.send(Opcode.READ_REQUEST, one).last().payload
    base = _baseline(answer)
    rows = [
        ("message layer (baseline)", lambda: base.send(Opcode.READ_REQUEST, one) and None),
        ("read 1 attribute", lambda: im.send(Opcode.READ_REQUEST, one) and None),
        ("invoke QueryImage", lambda: im.send(Opcode.INVOKE_REQUEST, invoke) and None),
        ("wildcard read, 2 chunks", lambda: im.send(Opcode.READ_REQUEST, everything) and None),
    ]
    best = [0.0] * len(rows)
    for _ in range(args.rounds):
        for i, (_name, fn) in enumerate(rows):
            best[i] = max(best[i], _rate(fn, args.seconds))
    rates = [(name, rate) for (name, _fn), rate in zip(rows, best, strict=True)]
    baseline = rates[0][1]
    print(f"{'round trip':<28}{'per second':>12}{'vs baseline':>14}")
    for name, rate in rates:
        print(f"{name:<28}{rate:>12,.0f}{rate / baseline:>13.2f}x")
    return 0
