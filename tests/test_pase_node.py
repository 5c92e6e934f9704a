"""PASE through the sans-IO node: two nodes in memory, hand-stepped time."""

from __future__ import annotations

from msg_pair import (
    CLIENT_ADDR,
    SERVER_ADDR,
    Recorder,
    deliver,
    drain_events,
    make_node,
    roundtrip,
)

from matter_ota.messaging.exchange import Exchange, Message
from matter_ota.messaging.session import SECURE_SESSIONS, SecureSession, SessionKind
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.node import Node, SessionEstablished
from matter_ota.secure_channel.pase import State
from matter_ota.secure_channel.pase_node import PaseCommissioning, PaseFailed, start_pase

SALT = b"SPAKE2P Key Salt"
PASSCODE = 20202021
VENDOR, ECHO = 0xFFF1, 0x0001  # a test vendor protocol for the echo check


def device(max_failures: int = 20) -> tuple[Node, PaseCommissioning]:
    node = make_node()
    return node, PaseCommissioning.from_passcode(node, PASSCODE, SALT, 1000,
                                                 max_failures=max_failures)


def established(node: Node) -> list[SecureSession]:
    return [e.session for e in drain_events(node) if isinstance(e, SessionEstablished)]


def test_pase_between_nodes_then_secured_echo() -> None:
    server, _ = device()
    client = make_node()
    handshake = start_pase(client, SERVER_ADDR, PASSCODE, now=0.0)
    roundtrip(client, server, 0.0)
    assert handshake.state is State.ESTABLISHED
    (c,) = established(client)
    (s,) = established(server)
    assert c.kind is s.kind is SessionKind.PASE
    assert (c.local_session_id, c.peer_session_id) == (s.peer_session_id, s.local_session_id)
    assert c.keys == s.keys

    # The session carries encrypted traffic both ways.
    def echo(exchange: Exchange, message: Message) -> None:
        exchange.send(ECHO, 2, message.payload[::-1], vendor_id=VENDOR)

    server.register(VENDOR << 16 | ECHO, 1, echo, SECURE_SESSIONS)
    recorder = Recorder()
    client.new_exchange(c, recorder, 0.1).send(ECHO, 1, b"hello", vendor_id=VENDOR)
    roundtrip(client, server, 0.1)
    assert [m.payload for m in recorder.messages] == [b"olleh"]


def test_lost_pake1_is_retransmitted() -> None:
    server, _ = device()
    client = make_node()
    start_pase(client, SERVER_ADDR, PASSCODE, now=0.0)
    deliver(client, server, 0.0, CLIENT_ADDR)  # PBKDFParamRequest
    deliver(server, client, 0.0, SERVER_ADDR)  # PBKDFParamResponse
    assert deliver(client, server, 0.0, CLIENT_ADDR, drop=lambda _d: True) == 0  # Pake1 lost
    deadline = client.next_deadline()
    assert deadline is not None
    client.handle_timer(deadline)
    roundtrip(client, server, deadline)
    assert len(established(client)) == 1 and len(established(server)) == 1


def test_wrong_passcode_fails_both_sides_and_counts() -> None:
    server, commissioning = device(max_failures=2)
    client = make_node()
    start_pase(client, SERVER_ADDR, PASSCODE + 1, now=0.0)
    roundtrip(client, server, 0.0)
    client_events = drain_events(client)
    server_events = drain_events(server)
    assert not any(isinstance(e, SessionEstablished) for e in client_events + server_events)
    assert any(isinstance(e, PaseFailed) and e.is_initiator for e in client_events)
    assert any(isinstance(e, PaseFailed) and not e.is_initiator for e in server_events)
    assert commissioning.server.failures == 1
    assert len(server.sessions) == 0

    start_pase(client, SERVER_ADDR, PASSCODE + 1, now=1.0)
    roundtrip(client, server, 1.0)
    assert not commissioning.server.window_open
    drain_events(client)
    # Window closed: even the right passcode is refused, with a StatusReport.
    start_pase(client, SERVER_ADDR, PASSCODE, now=2.0)
    roundtrip(client, server, 2.0)
    assert not established(server)
    failed = [e for e in drain_events(client) if isinstance(e, PaseFailed)]
    assert failed and "FAILURE" in failed[0].reason
    commissioning.server.open_window()
    start_pase(client, SERVER_ADDR, PASSCODE, now=3.0)
    roundtrip(client, server, 3.0)
    assert len(established(server)) == 1


def test_pbkdf_request_only_on_unsecured_sessions() -> None:
    server, _ = device()
    route = server.route(0, Op.PBKDF_PARAM_REQUEST)
    assert route is not None and route.sessions == frozenset({SessionKind.UNSECURED})
