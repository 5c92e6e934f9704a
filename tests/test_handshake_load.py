"""Handshakes under load, in memory with stepped time: a fleet starting CASE at once against one
responder whose unsecured-session pool is smaller than the fleet (BUSY with a minimum wait, the
initiators come back; no handshake in progress is ever dropped), and initiators that fail in
bounded time when the responder vanishes or forgets them mid-handshake."""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from msg_pair import CLIENT_ADDR, SERVER_ADDR, deliver, drain_events, make_node

from matter_ota.fabrics import CertificateAuthority, FabricInfo, FabricTable
from matter_ota.messaging.session import Address, SecureSession
from matter_ota.node import Node, SessionEstablished
from matter_ota.secure_channel.case_server import (
    MIN_BUSY_WAIT_MS,
    CaseClient,
    CaseConnection,
    CaseFailed,
    CaseServer,
)
from matter_ota.secure_channel.pase import BUSY_WAIT_MS as PASE_BUSY_WAIT_MS
from matter_ota.secure_channel.pase_node import PaseCommissioning, PaseFailed, start_pase

NOW = 1_764_000_000
SERVER_NODE = 0x0000_0000_0000_0055
FIRST_CLIENT = 0x0000_0000_0001_0000
SALT, PASSCODE = b"SPAKE2P Key Salt", 20202021


@dataclass
class Device:
    """An initiator as a device runs one: connect; on BUSY wait what it was told plus a random
    share of it (connectedhomeip's OperationalSessionSetup also spreads its retries)."""

    case: CaseClient
    fabric: FabricInfo
    rng: random.Random
    conn: CaseConnection | None = None
    retry_at: float = 0.0
    session: SecureSession | None = None
    busy: int = 0
    errors: list[str] = field(default_factory=list)

    def step(self, now: float) -> None:
        conn = self.conn
        if conn is not None and conn.done:
            self.conn = None
            if conn.session is not None:
                self.session = conn.session
                return
            wait = conn.retry_after
            if wait is None:
                self.errors.append(str(conn.error))
                wait = 1.0
            else:
                self.busy += 1
            self.retry_at = now + wait + self.rng.uniform(0, wait)
        if self.session is None and self.conn is None and now >= self.retry_at:
            self.conn = self.case.connect(self.fabric, SERVER_NODE, SERVER_ADDR, now)

    def deadline(self) -> float | None:
        return self.retry_at if self.session is None and self.conn is None else None


class Fleet:
    """One responder node and many initiator nodes on an in-memory network."""

    def __init__(self, devices: int, pool: int, max_pending: int | None) -> None:
        ca = CertificateAuthority(fabric_id=0xFAB1, now=NOW, with_icac=False)
        self.server = make_node(max_unsecured_sessions=pool, max_sessions=devices + 8)
        self.case = CaseServer(self.server, FabricTable([ca.issue(SERVER_NODE)]),
                               cert_time=lambda now: int(now), max_pending=max_pending)
        self.case.register()
        self.nodes: dict[Address, Node] = {SERVER_ADDR: self.server}
        rng = random.Random(7)
        self.devices = []
        for n in range(devices):
            node = make_node()
            self.nodes[(f"fd00::{n + 1:x}", 40000)] = node
            self.devices.append(Device(CaseClient(node, cert_time=lambda now: int(now)),
                                       ca.issue(FIRST_CLIENT + n), rng))
        self.now = float(NOW)
        self.server_events: list[object] = []
        self.max_pending_seen = 0
        self.max_pool_seen = 0

    def pump(self) -> None:
        while True:
            moved = 0
            for addr, node in self.nodes.items():
                for data, dest in node.datagrams_to_send():
                    target = self.nodes.get(dest)
                    if target is not None:
                        target.datagram_received(data, addr, self.now)
                        moved += 1
            self.max_pending_seen = max(self.max_pending_seen, self.case.pending)
            self.max_pool_seen = max(self.max_pool_seen, len(self.server._unsecured))
            self.server_events += drain_events(self.server)
            for d in self.devices:
                d.step(self.now)
            if not moved:
                return

    def run(self, limit: float) -> None:
        while not all(d.session for d in self.devices) and self.now < NOW + limit:
            self.pump()
            due = [t for n in self.nodes.values() if (t := n.next_deadline()) is not None]
            due += [t for d in self.devices if (t := d.deadline()) is not None]
            if not due:
                break
            self.now = max(self.now, min(due))
            for node in self.nodes.values():
                when = node.next_deadline()
                if when is not None and when <= self.now:
                    node.handle_timer(self.now)


@pytest.mark.parametrize("max_pending", [None, 10_000], ids=["case-bound", "pool-bound"])
def test_200_initiators_at_once_against_a_pool_of_32_all_get_a_session(
        max_pending: int | None) -> None:
    """200 devices send Sigma1 in the same instant to a responder with 32 places. Those beyond
    the bound get BUSY (from CASE's pending bound, or from the pool itself when CASE's bound is
    out of the way) and come back after the wait; every device ends with a session, and the
    responder never lost a handshake it had started (no CaseFailed, no error but BUSY)."""
    fleet = Fleet(200, pool=32, max_pending=max_pending)
    fleet.run(limit=600)
    assert all(d.session is not None for d in fleet.devices)
    assert [e for d in fleet.devices for e in d.errors] == []
    assert not [e for e in fleet.server_events if isinstance(e, CaseFailed)]
    established = [e for e in fleet.server_events if isinstance(e, SessionEstablished)]
    assert len(established) == 200
    assert fleet.max_pool_seen <= 32
    assert fleet.max_pending_seen <= (24 if max_pending is None else 32)
    busy = sum(d.busy for d in fleet.devices)
    assert busy >= 200 - 32 and busy == fleet.case.refused_busy
    # the whole fleet is through within a few BUSY waits, not handshake timeouts (30 s)
    assert fleet.now - NOW < 30


def _pair() -> tuple[CaseClient, CaseServer, FabricInfo]:
    ca = CertificateAuthority(fabric_id=0xFAB1, now=NOW, with_icac=False)
    server = CaseServer(make_node(), FabricTable([ca.issue(SERVER_NODE)]),
                        cert_time=lambda now: int(now))
    server.register()
    client = CaseClient(make_node(), cert_time=lambda now: int(now))
    return client, server, ca.issue(FIRST_CLIENT)


def _run_client(node: Node, until: float, done: object) -> float:
    """Step the client's timers alone (its peer is gone); returns the time it stopped."""
    t = float(NOW)
    while not done() and t < until:  # type: ignore[operator]
        deadline = node.next_deadline()
        if deadline is None:
            break
        t = deadline
        node.handle_timer(t)
        node.datagrams_to_send()  # into the void
    return t


def test_initiator_fails_in_bounded_time_when_the_responder_vanishes_after_sigma2() -> None:
    client, server, fabric = _pair()
    conn = client.connect(fabric, SERVER_NODE, SERVER_ADDR, float(NOW))
    deliver(client.node, server.node, float(NOW), CLIENT_ADDR)  # Sigma1
    deliver(server.node, client.node, float(NOW), SERVER_ADDR)  # Sigma2 -> Sigma3 goes out
    t = _run_client(client.node, NOW + 600, lambda: conn.done)
    assert conn.session is None and conn.error is not None
    assert "ack_timeout" in str(conn.error)  # MRP gave up on Sigma3 after 5 transmissions
    assert t - NOW < 15
    assert any(isinstance(e, CaseFailed) for e in drain_events(client.node))


def test_initiator_fails_in_bounded_time_when_the_responder_forgot_the_handshake() -> None:
    """The responder restarted after Sigma2: its new node acknowledges Sigma3 (MRP) but knows
    no handshake on that exchange, so no StatusReport ever comes. The initiator used to wait
    for ever; now its response timeout ends the handshake."""
    client, server, fabric = _pair()
    conn = client.connect(fabric, SERVER_NODE, SERVER_ADDR, float(NOW))
    deliver(client.node, server.node, float(NOW), CLIENT_ADDR)
    deliver(server.node, client.node, float(NOW), SERVER_ADDR)
    _, restarted, _ = _pair()
    deliver(client.node, restarted.node, float(NOW), CLIENT_ADDR)  # Sigma3 to the new node
    assert deliver(restarted.node, client.node, float(NOW), SERVER_ADDR) == 1  # its ack only
    t = _run_client(client.node, NOW + 600, lambda: conn.done)
    assert conn.error is not None and "response_timeout" in str(conn.error)
    assert t - NOW <= client.handshake_timeout + 1
    assert any(isinstance(e, CaseFailed) for e in drain_events(client.node))


def test_pase_initiator_fails_in_bounded_time_when_the_responder_vanishes_after_pake2() -> None:
    server, client = make_node(), make_node()
    PaseCommissioning.from_passcode(server, PASSCODE, SALT, 1000)
    start_pase(client, SERVER_ADDR, PASSCODE, float(NOW))
    for _ in range(2):  # PBKDFParamRequest, Pake1 in; PBKDFParamResponse, Pake2 out
        deliver(client, server, float(NOW), CLIENT_ADDR)
        deliver(server, client, float(NOW), SERVER_ADDR)
    failed: list[PaseFailed] = []

    def done() -> bool:
        failed.extend(e for e in drain_events(client) if isinstance(e, PaseFailed))
        return bool(failed)

    t = _run_client(client, NOW + 600, done)
    assert failed and failed[0].is_initiator and "ack_timeout" in failed[0].reason
    assert t - NOW < 15


def test_pase_gets_busy_when_every_place_of_the_pool_holds_a_handshake() -> None:
    """A pool of one place, held by a CASE handshake in progress: a commissioner's PASE is
    answered BUSY with PASE's minimum wait (not dropped, and the CASE handshake goes on)."""
    ca = CertificateAuthority(fabric_id=0xFAB1, now=NOW, with_icac=False)
    server = make_node(max_unsecured_sessions=1)
    case = CaseServer(server, FabricTable([ca.issue(SERVER_NODE)]),
                      cert_time=lambda now: int(now), max_pending=1)
    case.register()
    PaseCommissioning.from_passcode(server, PASSCODE, SALT, 1000)
    device = CaseClient(make_node(), cert_time=lambda now: int(now))
    conn = device.connect(ca.issue(FIRST_CLIENT), SERVER_NODE, SERVER_ADDR, float(NOW))
    deliver(device.node, server, float(NOW), ("fd00::9", 40000))
    held = server.datagrams_to_send()  # Sigma2, held back: the handshake is in progress
    commissioner = make_node()
    start_pase(commissioner, SERVER_ADDR, PASSCODE, float(NOW))
    deliver(commissioner, server, float(NOW), CLIENT_ADDR)
    deliver(server, commissioner, float(NOW), SERVER_ADDR)
    [refused] = [e for e in drain_events(commissioner) if isinstance(e, PaseFailed)]
    assert refused.retry_after == PASE_BUSY_WAIT_MS / 1000
    assert "BUSY" in refused.reason
    for data, _ in held:  # the CASE handshake was not disturbed
        device.node.datagram_received(data, SERVER_ADDR, float(NOW))
    while deliver(device.node, server, float(NOW), ("fd00::9", 40000)) + deliver(
            server, device.node, float(NOW), SERVER_ADDR):
        pass
    assert conn.session is not None
    # its place is free again: the commissioner's next attempt gets a PASE session
    start_pase(commissioner, SERVER_ADDR, PASSCODE, float(NOW + 5))
    while deliver(commissioner, server, float(NOW + 5), CLIENT_ADDR) + deliver(
            server, commissioner, float(NOW + 5), SERVER_ADDR):
        pass
    assert any(isinstance(e, SessionEstablished) for e in drain_events(commissioner))


def test_busy_wait_follows_the_handshake_duration_within_bounds() -> None:
    _, server, _ = _pair()
    assert server.busy_wait_ms() == MIN_BUSY_WAIT_MS
    for _ in range(40):
        server._observe(3.0)  # slow handshakes (a constrained network)
    assert 2500 < server.busy_wait_ms() <= 3000
    for _ in range(40):
        server._observe(60.0)
    assert server.busy_wait_ms() == 5000


def test_the_pool_and_the_case_bound_come_from_provider_yaml(tmp_path: Path) -> None:
    """``limits.max_handshakes`` sizes the serving node's pool; CASE leaves a quarter free;
    the default is 64; out-of-range values are refused with the line."""
    from matter_ota.commands.serve import _settings
    from matter_ota.config import ConfigError, load_provider

    path = tmp_path / "provider.yaml"
    path.write_text("limits:\n  max_handshakes: 12\n")
    args = argparse.Namespace(port=None, passcode=None, discriminator=None, state_dir=None,
                              listen=None, log_level=None, log_format=None)
    _settings(args, load_provider(path))
    node = Node(max_unsecured_sessions=args.max_handshakes)
    case = CaseServer(node, FabricTable([]), cert_time=lambda now: None)
    assert (node.max_unsecured_sessions, case.max_pending) == (12, 9)  # a quarter left free
    path.write_text("")
    assert load_provider(path).limits.max_handshakes == 64 == Node().max_unsecured_sessions
    path.write_text("limits:\n  max_handshakes: 1\n")
    with pytest.raises(ConfigError, match=r"provider.yaml:2.*max_handshakes"):
        load_provider(path)


def test_sigma1_gets_busy_while_every_secure_session_has_work_running() -> None:
    """A secure-session table of one, its session mid-exchange (a download, say): a second
    device's Sigma1 gets BUSY instead of evicting it; once that exchange ends, it gets in."""
    ca = CertificateAuthority(fabric_id=0xFAB1, now=NOW, with_icac=False)
    server = make_node(max_sessions=1)
    case = CaseServer(server, FabricTable([ca.issue(SERVER_NODE)]),
                      cert_time=lambda now: int(now))
    case.register()
    first = CaseClient(make_node(), cert_time=lambda now: int(now))
    second = CaseClient(make_node(), cert_time=lambda now: int(now))
    a, b = ("fd00::a", 40000), ("fd00::b", 40000)

    def pump(client: CaseClient, addr: Address, now: float) -> None:
        while deliver(client.node, server, now, addr) + deliver(server, client.node, now,
                                                                 SERVER_ADDR):
            pass

    conn = first.connect(ca.issue(FIRST_CLIENT), SERVER_NODE, SERVER_ADDR, float(NOW))
    pump(first, a, float(NOW))
    assert conn.session is not None
    [held] = list(server.sessions)
    work = server.new_exchange(held, None, float(NOW))  # an exchange of ours still open
    other = second.connect(ca.issue(FIRST_CLIENT + 1), SERVER_NODE, SERVER_ADDR, float(NOW))
    pump(second, b, float(NOW))
    assert other.retry_after is not None and list(server.sessions) == [held]
    work.close()
    again = second.connect(ca.issue(FIRST_CLIENT + 1), SERVER_NODE, SERVER_ADDR, float(NOW + 1))
    pump(second, b, float(NOW + 1))
    assert again.session is not None and held not in list(server.sessions)
