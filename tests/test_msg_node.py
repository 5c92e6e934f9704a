"""The sans-IO node: MRP schedule, acks, duplicates, loss, reordering, dispatch, sessions."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msg_pair import (
    CLIENT_ADDR,
    SERVER_ADDR,
    Recorder,
    deliver,
    drain_events,
    make_node,
    roundtrip,
    secure_pair,
)

from matter_ota.messaging.exchange import CloseReason, Exchange, Message
from matter_ota.messaging.header import MessageHeader, ProtocolHeader, SessionType
from matter_ota.messaging.mrp import backoff_interval, max_retransmission_time
from matter_ota.messaging.session import ANY_SESSION, SECURE_SESSIONS, SessionKind
from matter_ota.messaging.status import (
    GeneralCode,
    Protocol,
    SecureChannelCode,
    SecureChannelOpcode,
    StatusError,
    StatusReport,
)
from matter_ota.node import ExchangeFailed, Node, SessionClosed, SessionEstablished

IM = Protocol.INTERACTION_MODEL
READ, REPORT = 0x02, 0x05


def echo(exchange: Exchange, message: Message) -> None:
    exchange.send(IM, REPORT, b"echo:" + message.payload)


def _proto(data: bytes, node: Node) -> ProtocolHeader:
    """Decrypt a datagram sent to ``node`` just to look at its protocol header."""
    header, offset = MessageHeader.decode(data)
    session = node.sessions.get(header.session_id)
    assert session is not None
    plain = session.decrypt(header, data, offset)
    return ProtocolHeader.decode(plain)[0]


# -- MRP arithmetic (4.12.2.1) ----------------------------------------------------------------


def test_backoff_formula_matches_connectedhomeip_compliance_bounds() -> None:
    # connectedhomeip TestReliableMessageProtocol theBackoffComplianceTestVector: base 300 ms.
    assert backoff_interval(0.3, 0, 0.0) == pytest.approx(0.330)
    assert backoff_interval(0.3, 0, 1.0) == pytest.approx(0.4125)
    assert backoff_interval(0.3, 1, 0.0) == pytest.approx(0.330)
    assert backoff_interval(0.3, 2, 0.0) == pytest.approx(0.528)
    assert backoff_interval(0.3, 3, 0.0) == pytest.approx(0.8448)
    assert backoff_interval(0.3, 4, 0.0) == pytest.approx(1.35168)
    worst = (0.33 * 2 + 0.528 + 0.8448 + 1.35168) * 1.25
    assert max_retransmission_time(0.3) == pytest.approx(worst)


def _retransmit_times(jitter: float, start: float) -> tuple[list[float], float, Node]:
    """Send one reliable message into the void; returns the transmission times and give-up."""
    client, server = make_node(jitter), make_node()
    client_session, _ = secure_pair(client, server, now=0.0)
    recorder = Recorder()
    exchange = client.new_exchange(client_session, recorder, start)
    exchange.send(IM, READ, b"q")
    times = [start] if client.datagrams_to_send() else []
    failed_at = None
    while (deadline := client.next_deadline()) is not None:
        client.handle_timer(deadline)
        if client.datagrams_to_send():
            times.append(deadline)
        if recorder.closed:
            failed_at = deadline
    assert recorder.closed == [CloseReason.ACK_TIMEOUT]
    assert failed_at is not None
    return times, failed_at, client


def test_retransmit_schedule_active_peer_to_the_millisecond() -> None:
    # The peer was heard at t=0 (session setup): active, SAI 300 ms, jitter pinned at 0.
    times, gave_up, client = _retransmit_times(jitter=0.0, start=1.0)
    expected = [1.0, 1.330, 1.660, 2.188, 3.0328]
    assert [round(t * 1000, 3) for t in times] == [round(t * 1000, 3) for t in expected]
    assert round(gave_up * 1000, 3) == round((3.0328 + 1.35168) * 1000, 3)
    assert len(times) == 5  # MRP_MAX_TRANSMISSIONS
    events = drain_events(client)
    failed = [e for e in events if isinstance(e, ExchangeFailed)]
    assert [e.reason for e in failed] == [CloseReason.ACK_TIMEOUT]
    assert client.next_deadline() is None and len(client.exchanges) == 0


def test_retransmit_schedule_idle_peer_with_jitter() -> None:
    # Nothing heard for 10 s (> SAT 4 s): idle, SII 500 ms; jitter pinned at 0.5 -> x1.125.
    times, gave_up, _ = _retransmit_times(jitter=0.5, start=10.0)
    step = [0.55 * 1.125, 0.55 * 1.125, 0.88 * 1.125, 1.408 * 1.125]
    expected = [10.0]
    for s in step:
        expected.append(expected[-1] + s)
    assert [round(t, 6) for t in times] == [round(t, 6) for t in expected]
    assert gave_up == pytest.approx(expected[-1] + 2.2528 * 1.125)


# -- acks --------------------------------------------------------------------------------------


def test_piggybacked_ack_and_no_retransmission() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    server.register(IM, READ, echo, SECURE_SESSIONS)
    recorder = Recorder()
    client.new_exchange(c, recorder, 0.0).send(IM, READ, b"hello")
    deliver(client, server, 0.01, CLIENT_ADDR)
    [(response, _)] = server.datagrams_to_send()
    proto = _proto(response, client)
    assert proto.ack_counter is not None and proto.requires_ack and not proto.initiator
    client.datagram_received(response, SERVER_ADDR, 0.02)
    assert [m.payload for m in recorder.messages] == [b"echo:hello"]
    # The server's exchange is closed but waits for the client's ack of its response.
    assert len(server.exchanges) == 1
    assert client.next_deadline() == pytest.approx(0.02 + 0.2)  # the ack the client owes
    client.handle_timer(0.22)
    [(ack, _)] = client.datagrams_to_send()
    assert _proto(ack, server).opcode == SecureChannelOpcode.STANDALONE_ACK
    server.datagram_received(ack, CLIENT_ADDR, 0.23)
    assert len(server.exchanges) == 0 and server.next_deadline() is None
    assert server.datagrams_to_send() == []


def test_standalone_ack_after_200_ms_when_handler_is_slow() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    pending: list[Exchange] = []

    def slow(exchange: Exchange, message: Message) -> None:
        exchange.delegate = Recorder()
        pending.append(exchange)

    server.register(IM, READ, slow, SECURE_SESSIONS)
    client.new_exchange(c, Recorder(), 1.0).send(IM, READ)
    deliver(client, server, 1.05, CLIENT_ADDR)
    assert server.datagrams_to_send() == []
    assert server.next_deadline() == pytest.approx(1.25)
    server.handle_timer(1.2499)
    assert server.datagrams_to_send() == []
    server.handle_timer(1.25)
    [(ack, _)] = server.datagrams_to_send()
    proto = _proto(ack, client)
    assert proto.opcode == SecureChannelOpcode.STANDALONE_ACK and not proto.requires_ack
    client.datagram_received(ack, SERVER_ADDR, 1.26)
    assert client.next_deadline() is None  # acked: no retransmission pending
    # The later answer carries no ack any more.
    pending[0].send(IM, REPORT, b"late")
    [(late, _)] = server.datagrams_to_send()
    assert _proto(late, client).ack_counter is None


# -- loss, duplication, reordering --------------------------------------------------------------


def echo_and_record(server: Node) -> list[bytes]:
    """Serve IM Read on secure sessions by echoing; the returned list records each payload."""
    calls: list[bytes] = []

    def handler(exchange: Exchange, message: Message) -> None:
        calls.append(message.payload)
        echo(exchange, message)

    server.register(IM, READ, handler, SECURE_SESSIONS)
    return calls


def test_lost_request_is_retransmitted_and_answered_once() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    calls = echo_and_record(server)
    recorder = Recorder()
    client.new_exchange(c, recorder, 0.0).send(IM, READ, b"x")
    client.datagrams_to_send()  # lost
    client.handle_timer(0.33)
    roundtrip(client, server, 0.34)
    assert calls == [b"x"] and [m.payload for m in recorder.messages] == [b"echo:x"]


def test_lost_response_duplicate_request_gets_ack_only() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    calls = echo_and_record(server)
    recorder = Recorder()
    client.new_exchange(c, recorder, 0.0).send(IM, READ, b"x")
    deliver(client, server, 0.0, CLIENT_ADDR)
    server.datagrams_to_send()  # the response is lost
    client.handle_timer(0.33)  # the request goes again
    deliver(client, server, 0.33, CLIENT_ADDR)
    [(ack, _)] = server.datagrams_to_send()  # duplicate: an immediate standalone ack only
    assert _proto(ack, client).opcode == SecureChannelOpcode.STANDALONE_ACK
    assert calls == [b"x"]
    client.datagram_received(ack, SERVER_ADDR, 0.34)
    # The server retransmits its response on its own schedule.
    server.handle_timer(server.next_deadline() or 0.0)
    roundtrip(client, server, 0.4)
    assert [m.payload for m in recorder.messages] == [b"echo:x"]
    assert calls == [b"x"]


def test_duplicated_datagram_is_processed_once() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    calls: list[bytes] = []
    server.register(IM, READ, lambda ex, m: calls.append(m.payload), SECURE_SESSIONS)
    client.new_exchange(c, Recorder(), 0.0).send(IM, READ, b"once", reliable=False)
    [(data, _)] = client.datagrams_to_send()
    for _ in range(3):
        server.datagram_received(data, CLIENT_ADDR, 0.0)
    assert calls == [b"once"]
    assert server.datagrams_to_send() == []  # not reliable: no ack for duplicates either


def test_reordered_messages_are_all_delivered() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    calls: list[bytes] = []
    server.register(IM, READ, lambda ex, m: calls.append(m.payload), SECURE_SESSIONS)
    for i in range(5):
        client.new_exchange(c, Recorder(), 0.0).send(IM, READ, bytes([i]), reliable=False)
    datagrams = client.datagrams_to_send()
    for data, _ in reversed(datagrams):
        server.datagram_received(data, CLIENT_ADDR, 0.0)
    for data, _ in datagrams:  # and all again: all duplicates now
        server.datagram_received(data, CLIENT_ADDR, 0.0)
    assert calls == [bytes([i]) for i in reversed(range(5))]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["drop", "dup", "ok"]), min_size=30, max_size=30))
def test_lossy_link_delivers_each_request_exactly_once(fate: list[str]) -> None:
    """Requests and responses over a link that drops and duplicates: each handled once."""
    client, server = make_node(jitter=0.3), make_node(jitter=0.7)
    c, _ = secure_pair(client, server)
    calls = echo_and_record(server)
    recorder = Recorder()
    exchange = client.new_exchange(c, recorder, 0.0)
    exchange.send(IM, READ, b"r")
    exchange.set_response_timeout(30.0)
    fates = iter(fate)
    now = 0.0

    def move(src: Node, dst: Node, addr: tuple[str, int]) -> None:
        for data, _ in src.datagrams_to_send():
            what = next(fates, "ok")
            if what != "drop":
                dst.datagram_received(data, addr, now)
            if what == "dup":
                dst.datagram_received(data, addr, now)

    for _ in range(100):
        move(client, server, CLIENT_ADDR)
        move(server, client, SERVER_ADDR)
        for node in (client, server):  # the timer heap agrees with a scan of all exchanges
            scan = [d for e in node.exchanges.exchanges() if (d := e._deadline()) is not None]
            assert node.next_deadline() == (min(scan) if scan else None)
        deadlines = [d for d in (client.next_deadline(), server.next_deadline()) if d is not None]
        if not deadlines:
            break
        now = min(deadlines)
        client.handle_timer(now)
        server.handle_timer(now)
    assert len(calls) <= 1
    if recorder.closed:
        # MRP gave up on the request, or the request got through (maybe acked) but every
        # response was lost: the client learns it from its response timeout.
        assert recorder.closed in ([CloseReason.ACK_TIMEOUT], [CloseReason.RESPONSE_TIMEOUT])
        assert recorder.messages == []
    else:
        assert calls == [b"r"] and [m.payload for m in recorder.messages] == [b"echo:r"]


# -- dispatch and errors ------------------------------------------------------------------------


def test_status_error_becomes_status_report() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)

    def refuse(exchange: Exchange, message: Message) -> None:
        raise StatusError(
            GeneralCode.FAILURE, Protocol.SECURE_CHANNEL, SecureChannelCode.INVALID_PARAMETER,
            reason="test refusal",
        )

    server.register(IM, READ, refuse, SECURE_SESSIONS)
    recorder = Recorder()
    client.new_exchange(c, recorder, 0.0).send(IM, READ)
    roundtrip(client, server, 0.0)
    [reply] = recorder.messages
    assert reply.is_status_report()
    assert StatusReport.decode(reply.payload) == StatusReport(
        GeneralCode.FAILURE, Protocol.SECURE_CHANNEL, SecureChannelCode.INVALID_PARAMETER
    )


def test_multi_message_exchange_with_delegate() -> None:
    """A five-message conversation on one exchange, like PASE."""
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server, kind=SessionKind.PASE)

    class Counter(Recorder):
        pass

    server_side = Counter(reply=lambda ex, m: ex.send(IM, m.opcode + 1, m.payload))

    def start(exchange: Exchange, message: Message) -> None:
        exchange.delegate = server_side
        server_side.on_message(exchange, message)

    server.register(IM, 0x20, start, SECURE_SESSIONS)

    def step(exchange: Exchange, message: Message) -> None:
        if message.opcode < 0x24:
            exchange.send(IM, message.opcode + 1, message.payload)
        else:
            exchange.close()

    client_side = Recorder(reply=step)
    client.new_exchange(c, client_side, 0.0).send(IM, 0x20, b"p")
    roundtrip(client, server, 0.0)
    assert [m.opcode for m in server_side.messages] == [0x20, 0x22, 0x24]
    assert [m.opcode for m in client_side.messages] == [0x21, 0x23, 0x25]
    # The client closed with the ack owed flushed; nothing left to retransmit anywhere.
    roundtrip(client, server, 0.0)
    assert client.next_deadline() is None


def test_unregistered_opcode_and_wrong_session_kind_are_dropped_with_ack() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server, kind=SessionKind.PASE)
    server.register(IM, READ, echo, {SessionKind.CASE})
    for opcode in (READ, 0x7F):
        client.new_exchange(c, Recorder(), 0.0).send(IM, opcode)
        deliver(client, server, 0.0, CLIENT_ADDR)
        [(ack, _)] = server.datagrams_to_send()
        assert _proto(ack, client).opcode == SecureChannelOpcode.STANDALONE_ACK
    assert len(server.exchanges) == 0


def test_duplicate_registration_refused() -> None:
    node = make_node()
    node.register(IM, READ, echo, ANY_SESSION)
    with pytest.raises(ValueError):
        node.register(IM, READ, echo, ANY_SESSION)
    node.register(IM, READ, echo, ANY_SESSION, replace=True)


def test_handler_bug_is_contained(caplog: pytest.LogCaptureFixture) -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)

    def broken(exchange: Exchange, message: Message) -> None:
        raise KeyError("bug")

    server.register(IM, READ, broken, SECURE_SESSIONS)
    client.new_exchange(c, Recorder(), 0.0).send(IM, READ)
    with caplog.at_level(logging.ERROR, logger="matter_ota.node"):
        deliver(client, server, 0.0, CLIENT_ADDR)
    assert "event=handler_error" in caplog.text
    [(ack, _)] = server.datagrams_to_send()  # the closed exchange still acks
    assert _proto(ack, client).opcode == SecureChannelOpcode.STANDALONE_ACK


def test_response_timeout() -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    recorder = Recorder()
    exchange = client.new_exchange(c, recorder, 0.0)
    exchange.send(IM, READ, reliable=False)
    exchange.set_response_timeout(5.0)
    assert client.next_deadline() == 5.0
    client.handle_timer(5.0)
    assert recorder.closed == [CloseReason.RESPONSE_TIMEOUT]


# -- unsecured sessions (session establishment) -------------------------------------------------


def test_unsecured_exchange_uses_ephemeral_node_id() -> None:
    client, server = make_node(), make_node()
    request = SecureChannelOpcode.PBKDF_PARAM_REQUEST
    server.register(
        Protocol.SECURE_CHANNEL, request,
        lambda ex, m: ex.send(Protocol.SECURE_CHANNEL, request + 1, m.payload[::-1]),
        {SessionKind.UNSECURED},
    )
    session = client.open_unsecured_session(SERVER_ADDR, 0.0)
    recorder = Recorder()
    client.new_exchange(session, recorder, 0.0).send(Protocol.SECURE_CHANNEL, request, b"abc")
    [(data, _)] = client.datagrams_to_send()
    header, _ = MessageHeader.decode(data)
    assert header.session_id == 0 and header.source_node_id == session.ephemeral_node_id
    server.datagram_received(data, CLIENT_ADDR, 0.0)
    [(reply, _)] = server.datagrams_to_send()
    reply_header, _ = MessageHeader.decode(reply)
    assert reply_header.dest_node_id == session.ephemeral_node_id
    assert reply_header.source_node_id is None
    client.datagram_received(reply, SERVER_ADDR, 0.0)
    assert [m.payload for m in recorder.messages] == [b"cba"]


def test_secure_only_route_refuses_unsecured_messages() -> None:
    client, server = make_node(), make_node()
    calls: list[Message] = []
    server.register(IM, READ, lambda ex, m: calls.append(m), SECURE_SESSIONS)
    session = client.open_unsecured_session(SERVER_ADDR, 0.0)
    client.new_exchange(session, Recorder(), 0.0).send(IM, READ)
    deliver(client, server, 0.0, CLIENT_ADDR)
    assert calls == []


# -- secure session table ------------------------------------------------------------------------


def test_lru_eviction_and_events() -> None:
    client, server = make_node(), make_node(max_sessions=2)
    sessions = [secure_pair(client, server, now=float(i))[1] for i in range(2)]
    server.sessions.touch(sessions[0])  # session 0 used more recently than session 1
    _, third = secure_pair(client, server, now=3.0)
    events = drain_events(server)
    closed = [e for e in events if isinstance(e, SessionClosed)]
    assert [e.session for e in closed] == [sessions[1]] and closed[0].reason == "evicted"
    assert sum(isinstance(e, SessionEstablished) for e in events) == 3
    assert server.sessions.get(sessions[1].local_session_id) is None
    assert server.sessions.get(third.local_session_id) is third


def test_close_session_reaches_peer() -> None:
    client, server = make_node(), make_node()
    c, s = secure_pair(client, server)
    drain_events(server)
    client.close_session(c, 1.0)
    deliver(client, server, 1.0, CLIENT_ADDR)
    assert server.sessions.get(s.local_session_id) is None
    assert [e.reason for e in drain_events(server) if isinstance(e, SessionClosed)] == [
        "peer_closed"
    ]


# -- robustness -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.data())
def test_garbage_never_escapes(data: bytes, draw: st.DataObject) -> None:
    client, server = make_node(), make_node()
    _, s = secure_pair(client, server)
    server.register(IM, READ, echo, ANY_SESSION)
    # Random bytes, and random bytes behind a valid header for the live session id.
    server.datagram_received(data, CLIENT_ADDR, 0.0)
    header = MessageHeader(s.local_session_id, draw.draw(st.integers(0, 2**32 - 1))).encode()
    server.datagram_received(header + data, CLIENT_ADDR, 0.0)
    unsecured = MessageHeader(0, 1, source_node_id=7).encode()
    server.datagram_received(unsecured + data, CLIENT_ADDR, 0.0)
    assert all(len(d) <= 1280 for d, _ in server.datagrams_to_send())


def test_tampered_secure_datagram_dropped(caplog: pytest.LogCaptureFixture) -> None:
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    calls: list[Message] = []
    server.register(IM, READ, lambda ex, m: calls.append(m), SECURE_SESSIONS)
    client.new_exchange(c, Recorder(), 0.0).send(IM, READ, b"payload")
    [(data, _)] = client.datagrams_to_send()
    bad = bytearray(data)
    bad[-1] ^= 0x80
    with caplog.at_level(logging.DEBUG, logger="matter_ota.node"):
        server.datagram_received(bytes(bad), CLIENT_ADDR, 0.0)
    assert calls == [] and server.datagrams_to_send() == []
    assert "event=drop" in caplog.text and "integrity" in caplog.text
    server.datagram_received(data, CLIENT_ADDR, 0.0)  # the genuine one still gets through
    assert len(calls) == 1


def test_many_concurrent_exchanges_keep_exact_timers() -> None:
    """500 exchanges in flight: every one retransmits on its own schedule, in deadline order."""
    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    recorders = []
    for i in range(500):
        recorder = Recorder()
        recorders.append(recorder)
        client.new_exchange(c, recorder, i * 0.001).send(IM, READ, b"%d" % i)
    assert len(client.datagrams_to_send()) == 500  # all lost
    assert client.next_deadline() == pytest.approx(0.330)
    client.handle_timer(0.330 + 0.0995)  # the first 100 are due (sent at 0..99 ms)
    assert len(client.datagrams_to_send()) == 100
    assert client.next_deadline() == pytest.approx(0.100 + 0.330)
    while (deadline := client.next_deadline()) is not None:
        client.handle_timer(deadline)
    assert all(r.closed == [CloseReason.ACK_TIMEOUT] for r in recorders)
    assert len(client.exchanges) == 0


# -- exchange routing ---------------------------------------------------------------------------


def test_exchange_ids_roles_and_closed_exchanges() -> None:
    # Both nodes draw exchange ids from the same start: the role keeps equal ids apart.
    client = Node(jitter=lambda: 0.0, randbits=lambda _bits: 0)
    server = Node(jitter=lambda: 0.0, randbits=lambda _bits: 0)
    c, s = secure_pair(client, server)
    server.register(IM, READ, echo, SECURE_SESSIONS)
    first = client.new_exchange(c, Recorder(), 0.0)
    second = client.new_exchange(c, Recorder(), 0.0)
    assert (first.exchange_id, second.exchange_id) == (0, 1)
    seen: list[Message] = []
    client.register(IM, READ, lambda ex, m: seen.append(m), SECURE_SESSIONS)
    reverse = server.new_exchange(s, Recorder(), 0.0)
    assert reverse.exchange_id == first.exchange_id
    reverse.send(IM, READ, b"from server")
    deliver(server, client, 0.0, SERVER_ADDR)
    assert [m.payload for m in seen] == [b"from server"]
    assert not first.closed and first.delegate is not None
    # A message for an exchange we already closed is acked, not delivered.
    recorder = Recorder()
    done = client.new_exchange(c, recorder, 0.0)
    done.send(IM, READ, b"q", reliable=False)
    done.close()
    deliver(client, server, 0.0, CLIENT_ADDR)
    deliver(server, client, 0.0, SERVER_ADDR)
    assert recorder.messages == []
    acks = [_proto(d, server) for d, _ in client.datagrams_to_send()]
    assert [a.opcode for a in acks] == [SecureChannelOpcode.STANDALONE_ACK]


@pytest.mark.parametrize(
    "header",
    [
        MessageHeader(0, 1, source_node_id=5, privacy=True),
        MessageHeader(7, 1, session_type=SessionType.GROUP, dest_group_id=1),
        MessageHeader(0, 1),  # unsecured with neither source nor destination node id
        MessageHeader(0, 1, dest_node_id=99),  # a reply to an initiator we never were
    ],
)
def test_unsupported_headers_are_dropped(header: MessageHeader) -> None:
    server = make_node()
    calls: list[Message] = []
    server.register(IM, READ, lambda ex, m: calls.append(m), ANY_SESSION)
    proto = ProtocolHeader(IM, READ, 1, initiator=True, requires_ack=True)
    data = header.encode() + proto.encode() + b"\x00" * 20
    server.datagram_received(data, CLIENT_ADDR, 0.0)
    assert calls == [] and server.datagrams_to_send() == []


def test_message_size_limit() -> None:
    from matter_ota.messaging import MessageError
    from matter_ota.messaging.header import MAX_MESSAGE_SIZE, MAX_SECURE_PAYLOAD

    client, server = make_node(), make_node()
    c, _ = secure_pair(client, server)
    exchange = client.new_exchange(c, Recorder(), 0.0)
    # Owe an ack so that the largest header shape is used.
    server.register(IM, READ, lambda ex, m: ex.send(IM, REPORT, b"x" * MAX_SECURE_PAYLOAD),
                    SECURE_SESSIONS)
    exchange.send(IM, READ)
    deliver(client, server, 0.0, CLIENT_ADDR)
    [(data, _)] = server.datagrams_to_send()
    assert len(data) == MAX_MESSAGE_SIZE == 1232
    with pytest.raises(MessageError):
        exchange.send(IM, READ, b"x" * (MAX_SECURE_PAYLOAD + 5))
    assert client.datagrams_to_send() == []
