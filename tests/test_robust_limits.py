"""Every resource a peer can make the provider hold has a bound, and hitting it costs the
legitimate peers nothing: unsecured sessions, PASE attempts, concurrent CASE handshakes, secure
sessions (LRU), exchanges per session, BDX transfers, subscriptions."""

from __future__ import annotations

import itertools

from adversary import ATTACKER_ADDR, CLIENT_NODE, PASSCODE, Reads, World
from msg_pair import SERVER_ADDR

from matter_ota.im.acl import AccessControlEntry, AuthMode, Privilege
from matter_ota.im.messages import (
    AttributeDataIB,
    AttributePathIB,
    Opcode,
    TimedRequest,
    WriteRequest,
)
from matter_ota.im.subscriptions import STATUS_RESPONSE_TIMEOUT
from matter_ota.messaging.exchange import MAX_RESPONDER_EXCHANGES
from matter_ota.messaging.header import MessageHeader, ProtocolHeader
from matter_ota.messaging.session import SecureSession, SessionKind
from matter_ota.messaging.status import Protocol
from matter_ota.messaging.status import SecureChannelOpcode as Op
from matter_ota.node import SessionEstablished
from matter_ota.secure_channel.pase_node import start_pase

_counter = itertools.count(1000)


def unsecured(source_node_id: int, protocol: int, opcode: int, payload: bytes = b"",
              exchange_id: int = 1) -> bytes:
    """A session-establishment-style datagram from an ephemeral node id."""
    header = MessageHeader(0, next(_counter), source_node_id=source_node_id)
    proto = ProtocolHeader(protocol_id=protocol, opcode=opcode, exchange_id=exchange_id,
                           initiator=True, requires_ack=True)
    return header.encode() + proto.encode() + payload


def test_unsecured_flood_does_not_evict_a_handshake_in_progress() -> None:
    """Datagrams from thousands of fresh ephemeral node ids (garbage opcodes, other protocols,
    PBKDF requests that get BUSY) arrive between the legitimate PASE messages: the handshake
    still completes, and the unsecured session table stays bounded."""
    world = World(max_unsecured_sessions=8)
    ids = itertools.count(0x1000)

    def flood(w: World) -> None:
        for opcode, protocol in ((0x77, Protocol.SECURE_CHANNEL), (0x02, Protocol.BDX),
                                 (Op.PBKDF_PARAM_REQUEST, Protocol.SECURE_CHANNEL),
                                 (Op.CASE_SIGMA1, Protocol.SECURE_CHANNEL)):
            for _ in range(20):
                w.to_server(unsecured(next(ids), protocol, opcode, b"\x15\x18"), ATTACKER_ADDR)
        assert len(w.server._unsecured) <= 8

    world.pase_session(flood)
    world.quiesce()
    world.assert_bounded()


def timed_request(world: World, session: SecureSession, ms: int) -> Reads:
    conv = Reads()
    world.client.new_exchange(session, conv, world.now).send(
        Protocol.INTERACTION_MODEL, Opcode.TIMED_REQUEST, TimedRequest(timeout=ms).encode())
    return conv


def test_exchanges_per_session_are_bounded() -> None:
    """A CASE peer opening 40 timed windows (each holds an exchange for a minute) gets 16; its
    other session and, once the windows lapse, this one are served as before."""
    world = World()
    pase = world.pase_session()
    case = world.case_session()
    convs = [timed_request(world, case, 60_000) for _ in range(40)]
    world.pump()
    assert sum(1 for c in convs if c.reports) == MAX_RESPONDER_EXCHANGES
    assert world.server.exchanges._responders[("secure", case.peer_session_id)] == 16
    assert len(world.read(pase).reports) == 1  # another session: unaffected
    world.advance(70.0)  # the windows lapse; the refused ones were retransmitted meanwhile
    assert len(world.read(case).reports) == 1
    world.quiesce()
    world.assert_bounded()


def _with_source(data: bytes, node_id: int) -> bytes:
    header, offset = MessageHeader.decode(data)
    assert header.session_id == 0 and header.source_node_id is not None
    forged = MessageHeader(0, next(_counter), source_node_id=node_id)
    return forged.encode() + data[offset:]


def _sigma1s(world: World) -> list[bytes]:
    out = []
    for data in world.history:
        header, offset = MessageHeader.decode(data)
        if header.session_id == 0:
            proto, _ = ProtocolHeader.decode(data[offset:])
            if proto.opcode == Op.CASE_SIGMA1:
                out.append(data)
    return out


def test_replayed_sigma1_holds_at_most_one_handshake_slot() -> None:
    """A captured Sigma1 replayed under 20 fresh ephemeral node ids is one pending handshake,
    not 20: the legitimate device still gets its CASE session (no BUSY)."""
    world = World()
    world.case_session()
    (sigma1,) = _sigma1s(world)
    for n in range(20):
        world.to_server(_with_source(sigma1, 0x5000 + n), ATTACKER_ADDR)
    assert world.case.pending <= 1
    assert world.case_session() is not None  # resumption or full: either way, not BUSY
    world.quiesce()
    world.assert_bounded()


def test_wrong_passcodes_close_the_commissioning_window() -> None:
    """Spec 13.3 / 5.4.2: after 20 failed attempts PASE is refused, even with the right code."""
    world = World()
    for _ in range(20):
        start_pase(world.client, SERVER_ADDR, PASSCODE + 1, world.now)
        world.advance(2.0)
    assert world.pase.server.failures == 20 and not world.pase.server.window_open
    start_pase(world.client, SERVER_ADDR, PASSCODE, world.now)
    world.advance(2.0)
    assert not any(isinstance(e, SessionEstablished) for e in world._events(world.client))
    assert not [s for s in world.server.sessions if s.kind is SessionKind.PASE]
    world.quiesce()
    world.assert_bounded()


def test_secure_sessions_beyond_the_table_evict_the_least_recently_used() -> None:
    world = World(max_sessions=3)
    sessions = [world.case_session() for _ in range(3)]
    assert len(world.read(sessions[0]).reports) == 1  # the first is now the most recent
    newest = world.case_session()
    assert len(world.server.sessions) == 3
    live = {s.local_session_id for s in world.server.sessions}
    assert sessions[1].peer_session_id not in live  # least recently used: evicted
    assert {sessions[0].peer_session_id, newest.peer_session_id} <= live
    assert len(world.read(sessions[0]).reports) == 1
    world.quiesce()
    world.assert_bounded()


def test_an_abandoned_chunked_write_does_not_hold_its_exchange() -> None:
    """A WriteRequest announcing more chunks that never come: the exchange ends after the
    response timeout (it used to stay for the life of the session, and 16 of them now
    exhaust the session's exchanges)."""
    world = World()
    session = world.case_session()
    grant = AccessControlEntry(1, Privilege.ADMINISTER, AuthMode.CASE, (CLIENT_NODE,))
    world.acl.set_entries(1, [grant])
    request = WriteRequest(timed_request=False, more_chunked_messages=True, write_requests=[
        AttributeDataIB(path=AttributePathIB(endpoint=0, cluster=0x0028, attribute=5),
                        data="lab")])
    for _ in range(MAX_RESPONDER_EXCHANGES):
        world.client.new_exchange(session, Reads(), world.now).send(
            Protocol.INTERACTION_MODEL, Opcode.WRITE_REQUEST, request.encode())
    world.pump()
    assert len(world.server.exchanges) == MAX_RESPONDER_EXCHANGES
    world.advance(STATUS_RESPONSE_TIMEOUT + 1)
    assert len(world.server.exchanges) == 0
    assert len(world.read(session).reports) == 1
    world.quiesce()
    world.assert_bounded()
