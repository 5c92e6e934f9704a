"""The UDP transport on loopback, with a real socket client (IPv6 and IPv4)."""

from __future__ import annotations

import itertools
import socket
import time

import anyio
import pytest
from msg_pair import Recorder, make_node, secure_pair

from matter_ota.messaging.exchange import Exchange, Message
from matter_ota.messaging.header import MessageHeader
from matter_ota.messaging.session import SECURE_SESSIONS
from matter_ota.messaging.status import Protocol
from matter_ota.node import Node
from matter_ota.runtime.udp import UdpTransport

IM = Protocol.INTERACTION_MODEL


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _echo(exchange: Exchange, message: Message) -> None:
    exchange.send(IM, 0x05, b"echo:" + message.payload)


def _server_and_client() -> tuple[Node, Node]:
    client, server = make_node(), make_node()
    secure_pair(client, server)
    server.register(IM, 0x02, _echo, SECURE_SESSIONS)
    return client, server


async def _ask(
    client: Node, family: int, target: tuple[str, int], payload: bytes, recorder: Recorder
) -> None:
    """Send one request from the in-memory client node through a real socket; await reply."""
    [session] = list(client.sessions)
    session.peer_addr = target
    client.new_exchange(session, recorder, time.monotonic()).send(IM, 0x02, payload)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0))
        for data, addr in client.datagrams_to_send():
            sock.sendto(data, addr)
        with anyio.fail_after(5):
            while not recorder.messages:
                await anyio.wait_readable(sock)
                data, addr = sock.recvfrom(2048)
                client.datagram_received(data, (addr[0], addr[1]), time.monotonic())
        for data, addr in client.datagrams_to_send():  # our ack, if any
            sock.sendto(data, addr)


async def _run_roundtrip(host: str | None, family: int, target_host: str) -> UdpTransport:
    client, server = _server_and_client()
    transport = UdpTransport(server, host=host, port=0)
    async with anyio.create_task_group() as tg:
        bound = await tg.start(transport.run)
        target = (target_host, bound[1])
        # Garbage first: dropped, and the loop lives on.
        with socket.socket(family, socket.SOCK_DGRAM) as junk:
            for blob in (b"", b"\x00", b"\xff" * 50, MessageHeader(1, 5).encode() + b"x" * 40):
                junk.sendto(blob, target)
        for i in range(3):
            recorder = Recorder()
            await _ask(client, family, target, b"%d" % i, recorder)
            assert [m.payload for m in recorder.messages] == [b"echo:%d" % i]
        tg.cancel_scope.cancel()
    return transport


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback on this machine")
def test_udp_ipv6_loopback_roundtrip() -> None:
    transport = anyio.run(_run_roundtrip, "::1", socket.AF_INET6, "::1")
    assert transport.stats.errors == 0
    assert transport.stats.received >= 7 and transport.stats.sent >= 3


def test_udp_ipv4_loopback_roundtrip() -> None:
    transport = anyio.run(_run_roundtrip, "127.0.0.1", socket.AF_INET, "127.0.0.1")
    assert transport.stats.errors == 0


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 on this machine")
def test_udp_dual_stack_serves_ipv4_and_ipv6() -> None:
    anyio.run(_run_roundtrip, None, socket.AF_INET, "127.0.0.1")
    anyio.run(_run_roundtrip, None, socket.AF_INET6, "::1")


def test_retransmission_timer_fires_through_the_transport() -> None:
    """The transport re-arms its timer from next_deadline(): a server-initiated reliable
    message to a silent peer goes out MRP_MAX_TRANSMISSIONS times."""

    async def main() -> list[float]:
        client, server = make_node(), make_node()
        _, s = secure_pair(client, server)
        transport = UdpTransport(server, host="127.0.0.1", port=0)
        times: list[float] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
            silent.bind(("127.0.0.1", 0))
            silent.setblocking(False)
            async with anyio.create_task_group() as tg:
                await tg.start(transport.run)
                s.peer_addr = ("127.0.0.1", silent.getsockname()[1])
                s.last_peer_activity = time.monotonic()  # active peer: 330 ms first backoff
                recorder = Recorder()
                server.new_exchange(s, recorder, time.monotonic()).send(IM, 0x05, b"r")
                transport.kick()
                with anyio.fail_after(10):
                    while not recorder.closed:
                        with anyio.move_on_after(0.05):
                            await anyio.wait_readable(silent)
                            silent.recvfrom(2048)
                            times.append(time.monotonic())
                tg.cancel_scope.cancel()
        return times

    times = anyio.run(main)
    assert len(times) == 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Jitter pinned at 0: 330, 330, 528, 845 ms (scheduling slack allowed).
    for gap, expected in zip(gaps, [0.33, 0.33, 0.528, 0.8448], strict=True):
        assert expected - 0.01 <= gap <= expected + 0.1



def test_serve_command_starts_logs_and_stops_on_sigterm(tmp_path: object) -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root / "daemon"))
    code = "import sys; from matter_ota.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--listen", "127.0.0.1", "--port", str(port),
         "--passcode", "20202021", "--discriminator", "3840", "--log-level", "DEBUG",
         "--no-mdns"],
        env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 15
        lines: list[str] = []
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "event=listening" in line:
                break
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"\x00garbage", ("127.0.0.1", port))
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=15)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines) + out
    assert proc.returncode == 0, text
    assert "event=start component=serve" in text and "event=listening" in text
    assert "event=drop" in text and "event=stop component=serve" in text


def test_serve_command_refuses_bad_flags() -> None:
    from matter_ota.cli import main

    assert main(["serve", "--port", "70000"]) == 2
    assert main(["serve", "--discriminator", "5000"]) == 2
    assert main(["serve", "--passcode", "0"]) == 2


def _flood_latency(prioritize: bool) -> tuple[float, int]:
    """40 slow handshakes (10 ms of blocking work each, like a PASE step) arrive together with
    one request on an established session: how long does the established peer wait, and how
    many handshake steps ran before its answer?"""
    from matter_ota.messaging.header import ProtocolHeader
    from matter_ota.messaging.session import SessionKind
    from matter_ota.messaging.status import SecureChannelOpcode

    handshakes: list[float] = []

    def slow_handshake(exchange: Exchange, message: Message) -> None:
        time.sleep(0.010)
        handshakes.append(time.monotonic())

    async def main() -> tuple[float, int]:
        client, server = _server_and_client()
        server.register(Protocol.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST,
                        slow_handshake, {SessionKind.UNSECURED})
        transport = UdpTransport(server, host="127.0.0.1", port=0,
                                 prioritize_sessions=prioritize)
        async with anyio.create_task_group() as tg:
            _, port = await tg.start(transport.run)
            [session] = list(client.sessions)
            session.peer_addr = ("127.0.0.1", port)
            recorder = Recorder()
            client.new_exchange(session, recorder, time.monotonic()).send(IM, 0x02, b"now")
            [(request, _)] = client.datagrams_to_send()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.setblocking(False)
                for i in range(40):
                    hello = MessageHeader(0, 100 + i, source_node_id=1000 + i).encode()
                    proto = ProtocolHeader(0, SecureChannelOpcode.PBKDF_PARAM_REQUEST, i,
                                           initiator=True)
                    sock.sendto(hello + proto.encode() + b"x" * 30, ("127.0.0.1", port))
                sent = time.monotonic()
                sock.sendto(request, ("127.0.0.1", port))
                with anyio.fail_after(10):
                    while not recorder.messages:
                        await anyio.wait_readable(sock)
                        data, addr = sock.recvfrom(2048)
                        client.datagram_received(data, (addr[0], addr[1]), time.monotonic())
                latency = time.monotonic() - sent
                before = sum(1 for t in handshakes if t <= sent + latency)
            tg.cancel_scope.cancel()
        return latency, before

    return anyio.run(main)


def test_established_sessions_overtake_a_handshake_flood() -> None:
    latency, handshakes_before = _flood_latency(prioritize=True)
    fifo_latency, fifo_before = _flood_latency(prioritize=False)
    print(f"\nsession request behind 40 handshakes: {latency * 1000:.0f} ms "
          f"({handshakes_before} handshake steps first); FIFO: {fifo_latency * 1000:.0f} ms "
          f"({fifo_before} first)")
    assert handshakes_before <= 3 and latency < 0.15
    assert fifo_before >= 30 and fifo_latency > 0.3


def test_peer_address_keeps_ipv6_scope() -> None:
    from matter_ota.runtime.udp import _peer

    assert _peer(("fe80::1", 5540, 0, 3)) == ("fe80::1%3", 5540)
    assert _peer(("::ffff:127.0.0.1", 5540, 0, 0)) == ("::ffff:127.0.0.1", 5540)
    assert _peer(("127.0.0.1", 5540)) == ("127.0.0.1", 5540)


def test_port_in_use_is_an_operator_error(capsys: pytest.CaptureFixture[str]) -> None:
    from matter_ota.cli import main

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert main(["serve", "--listen", "127.0.0.1", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert f"cannot serve on UDP port {port}" in err and "Traceback" not in err


def test_default_socket_serves_ipv4_with_ipv6_disabled() -> None:
    """In a network namespace with IPv6 disabled by sysctl, the default socket still takes
    IPv4 datagrams (kernels without IPv6 at all make it fall back to an IPv4 socket)."""
    import os
    import shutil
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and ip(8) for a network namespace")
    name = f"msgv4-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "sysctl", "-qw",
                        "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                        "net.ipv6.conf.lo.disable_ipv6=1"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        code = (
            "import socket, select\n"
            "from matter_ota.runtime.udp import open_socket\n"
            "s = open_socket(None, 0)\n"
            "c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "c.sendto(b'hi', ('127.0.0.1', s.getsockname()[1]))\n"
            "select.select([s], [], [], 5)\n"
            "print(s.recvfrom(16)[0].decode())\n"
        )
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["ip", "netns", "exec", name, sys.executable, "-c", code],
                             env=dict(os.environ, PYTHONPATH=str(root / "daemon")),
                             capture_output=True, text=True, timeout=60)
        assert out.stdout.split() == ["hi"], out.stderr
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
