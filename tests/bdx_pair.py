"""A provider node serving BDX and any number of requestor nodes, in memory, time by hand.

Importable by tests and scripts (``scripts/bench.py bdx``, the memory subprocess)::

    net = BdxNet(lookup)                 # the provider, CASE only
    dev = net.add_device()               # a requestor node with its own CASE session
    dl = dev.download(b"fw", sink)       # ReceiveInit
    net.run()                            # move datagrams until everybody is quiet
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from matter_ota.bdx.client import Download, start_download
from matter_ota.bdx.receiver import ReceiverTransfer, Sink
from matter_ota.bdx.sender import Lookup, SenderConfig
from matter_ota.bdx.server import BdxServer
from matter_ota.messaging.crypto import SessionKeys
from matter_ota.messaging.session import Address, SecureSession, SessionKind
from matter_ota.node import Node

PROVIDER_ADDR: Address = ("fd00::1", 5540)
PROVIDER_NODE_ID = 0x0000_0000_0000_0F01
FABRIC_INDEX = 1

Drop = Callable[[bytes], bool]


def _keys(n: int) -> SessionKeys:
    return SessionKeys(i2r_key=bytes([n % 256]) * 16, r2i_key=bytes([(n + 1) % 256]) * 16,
                       attestation_challenge=bytes(16))


def _node() -> Node:
    return Node(jitter=lambda: 0.0, max_sessions=4096)


@dataclass
class Device:
    """One requestor: its node, address and CASE session to the provider."""

    net: BdxNet
    node: Node
    addr: Address
    node_id: int
    session: SecureSession
    events: list[object] = field(default_factory=list)

    def download(self, designator: bytes, sink: Sink, **kw: object) -> Download:
        rx = ReceiverTransfer(designator, sink, **kw)  # type: ignore[arg-type]
        return start_download(self.node, self.session, rx, self.net.now)

    def drain(self) -> list[object]:
        while (e := self.node.next_event()) is not None:
            self.events.append(e)
        return self.events


class BdxNet:
    """The provider and its devices; datagrams move only when :meth:`run` / :meth:`step` say."""

    def __init__(self, lookup: Lookup, config: SenderConfig | None = None, *,
                 kind: SessionKind = SessionKind.CASE,
                 sessions: Iterable[SessionKind] = (SessionKind.CASE,)) -> None:
        self.now = 0.0
        self.kind = kind
        self.provider = _node()
        self.server = BdxServer(self.provider, lookup, config, sessions=sessions)
        self.devices: list[Device] = []
        self.by_addr: dict[Address, Device] = {}
        self.provider_events: list[object] = []

    def add_device(self) -> Device:
        n = len(self.devices) + 1
        node = _node()
        addr: Address = (f"fd00::{n + 1:x}", 40000 + n)
        node_id = 0x1000 + n
        keys = _keys(n)
        c_id, s_id = node.sessions.allocate_id(), self.provider.sessions.allocate_id()
        device_session = SecureSession.from_keys(
            keys, kind=self.kind, local_session_id=c_id, peer_session_id=s_id,
            is_initiator=True, now=self.now, local_node_id=node_id,
            peer_node_id=PROVIDER_NODE_ID, fabric_index=FABRIC_INDEX, peer_addr=PROVIDER_ADDR)
        provider_session = SecureSession.from_keys(
            keys, kind=self.kind, local_session_id=s_id, peer_session_id=c_id,
            is_initiator=False, now=self.now, local_node_id=PROVIDER_NODE_ID,
            peer_node_id=node_id, fabric_index=FABRIC_INDEX, peer_addr=addr)
        node.add_secure_session(device_session)
        self.provider.add_secure_session(provider_session)
        node.next_event()
        self.provider.next_event()
        device = Device(self, node, addr, node_id, device_session)
        self.devices.append(device)
        self.by_addr[addr] = device
        return device

    def step(self, drop: Drop | None = None) -> int:
        """Deliver everything queued once, both ways; returns how many datagrams moved."""
        moved = 0
        for device in self.devices:
            for data, _ in device.node.datagrams_to_send():
                moved += 1
                if drop is None or not drop(data):
                    self.provider.datagram_received(data, device.addr, self.now)
        for data, addr in self.provider.datagrams_to_send():
            moved += 1
            device = self.by_addr.get(addr)
            if device is not None and (drop is None or not drop(data)):
                device.node.datagram_received(data, PROVIDER_ADDR, self.now)
        return moved

    def run(self, drop: Drop | None = None, max_rounds: int = 10_000_000) -> None:
        """Deliver until quiet (no timers are run).

        Like the UDP runtime, asks every node for its next deadline after each round, which
        is also when a node prunes its timer heap.
        """
        for _ in range(max_rounds):
            moved = self.step(drop)
            self.provider.next_deadline()
            for device in self.devices:
                device.node.next_deadline()
            if not moved:
                break
        self.drain()

    def advance(self, seconds: float, drop: Drop | None = None) -> None:
        """Move time forward to each due timer in turn, delivering as we go."""
        target = self.now + seconds
        while True:
            self.run(drop)
            nodes = [self.provider, *(d.node for d in self.devices)]
            due = [t for n in nodes if (t := n.next_deadline()) is not None and t <= target]
            if not due:
                break
            self.now = max(self.now, min(due))
            for n in nodes:
                deadline = n.next_deadline()
                if deadline is not None and deadline <= self.now:
                    n.handle_timer(self.now)
        self.now = target
        self.run(drop)

    def drain(self) -> None:
        while (e := self.provider.next_event()) is not None:
            self.provider_events.append(e)
        for d in self.devices:
            d.drain()
