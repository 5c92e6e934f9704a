"""The exchange timer heap stays bounded when timers are re-armed on every message."""

from __future__ import annotations

from msg_pair import CLIENT_ADDR, SERVER_ADDR, Recorder, deliver, make_node, secure_pair

from matter_ota.messaging.exchange import CloseReason, Exchange, Message
from matter_ota.messaging.session import SECURE_SESSIONS
from matter_ota.messaging.status import Protocol

IM = Protocol.INTERACTION_MODEL


def test_rearmed_long_timeouts_do_not_pile_up() -> None:
    client, server = make_node(), make_node()
    c_session, _ = secure_pair(client, server)

    def reply(exchange: Exchange, message: Message) -> None:
        exchange.send(IM, 0x05, b"r")
        exchange.set_response_timeout(300.0)  # re-armed per message, like BDX's idle timeout

    def opened(exchange: Exchange, message: Message) -> None:
        exchange.delegate = Recorder(reply=reply)
        reply(exchange, message)

    server.register(IM, 0x02, opened, SECURE_SESSIONS)
    rec = Recorder(reply=lambda ex, _m: ex.send(IM, 0x02, b"q"))
    ex = client.new_exchange(c_session, rec, 0.0)
    ex.send(IM, 0x02, b"q")
    now = 0.0
    for _ in range(5000):
        now += 0.01  # time moves: every message files a deadline 300 s out
        deliver(client, server, now, CLIENT_ADDR)
        server.next_deadline()
        deliver(server, client, now, SERVER_ADDR)
        client.next_deadline()
    assert len(rec.messages) >= 4999
    assert len(server.exchanges._timers) < 100 and len(client.exchanges._timers) < 100
    # The response timeout still fires on time once the client goes quiet.
    rec.reply = None
    deliver(client, server, now, CLIENT_ADDR)
    deliver(server, client, now, SERVER_ADDR)
    client.handle_timer(now + 0.3)  # its standalone ack for our last reply
    deliver(client, server, now + 0.3, CLIENT_ADDR)
    (server_ex,) = [e for e in server.exchanges.exchanges() if not e.is_initiator]
    recorder = server_ex.delegate
    assert isinstance(recorder, Recorder)
    assert server.next_deadline() == now + 300.0
    server.handle_timer(now + 299.9)
    assert recorder.closed == []
    server.handle_timer(now + 300.0)
    assert recorder.closed == [CloseReason.RESPONSE_TIMEOUT]
