"""A provider node and any number of emulated requestors in memory, time stepped by hand.

    fleet = Fleet(provider, fabric=FleetFabric.create(now))
    r = fleet.add_requestor(Identity(software_version=1))
    r.start(fleet.now)
    fleet.run()            # move datagrams, run timers, poll requestors until all are settled

Datagrams move only inside :meth:`Fleet.run` / :meth:`Fleet.advance`; time jumps from one
deadline to the next (MRP, BDX idle, Busy and AwaitNextAction waits, the provider's
NotifyUpdateApplied deadlines), so hours of protocol time cost milliseconds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from matter_ota.bdx.sender import SenderConfig
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.emulator.requestor import Behaviour, Identity, Requestor
from matter_ota.fabrics import CertificateAuthority, FabricInfo, FabricTable
from matter_ota.messaging.session import Address
from matter_ota.node import Node
from matter_ota.provider.core import OtaProvider
from matter_ota.provider.node import ProviderNode, drain_events, provider_node, requestor_access
from matter_ota.secure_channel.case_server import CaseClient

PROVIDER_ADDR: Address = ("fd00::1", 5540)
PROVIDER_NODE_ID = 0x0000_0000_0000_0F01
FIRST_REQUESTOR_NODE_ID = 0x0000_0000_0001_0000
ADMIN_NODE_ID = 0x0000_0000_0001_B669


@dataclass
class FleetFabric:
    """The fabric's administrator: one CA issuing the provider's and requestors' NOCs."""

    ca: CertificateAuthority
    fabric_index: int = 1

    @classmethod
    def create(cls, now: int, fabric_id: int = 0xFAB000000000001D) -> FleetFabric:
        return cls(CertificateAuthority(fabric_id=fabric_id, now=now, with_icac=False))

    def issue(self, node_id: int) -> FabricInfo:
        return self.ca.issue(node_id, fabric_index=self.fabric_index)


def default_info() -> BasicInfo:
    return BasicInfo(vendor_name="matter-ota", vendor_id=0xFFF1, product_name="OTA Provider",
                     product_id=0x8000, unique_id=secrets.token_hex(16).upper(),
                     software_version=1, software_version_string="1.0")


@dataclass
class Fleet:
    """See the module docstring. ``provider`` must have been built over ``fabrics`` that
    hold ``fabric``'s provider NOC (:meth:`Fleet.build` does both)."""

    provider: OtaProvider
    fabric: FleetFabric
    provider_fabric: FabricInfo
    bdx_config: SenderConfig | None = None
    cert_time: int | None = None
    now: float = 0.0
    requestors: list[Requestor] = field(default_factory=list)
    nodes: dict[Address, Node] = field(default_factory=dict)
    provider_events: list[object] = field(default_factory=list)
    datagrams: int = 0
    keep_events: bool = True
    on_log: Callable[[str], None] | None = None
    server: ProviderNode = field(init=False)
    _by_addr: dict[Address, Requestor] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        node = Node(jitter=lambda: 0.0, max_sessions=65535)  # the daemon's handshake pool
        cert_time = self.cert_time
        self.server = provider_node(
            node, self.provider, self.provider.fabrics, default_info(),
            cert_time=lambda _now: cert_time, bdx_config=self.bdx_config)
        self.server.access.set_entries(
            self.fabric.fabric_index,
            requestor_access(self.fabric.fabric_index, ADMIN_NODE_ID))
        self.nodes[PROVIDER_ADDR] = node

    @staticmethod
    def provider_fabrics(fabric: FleetFabric) -> tuple[FabricTable, FabricInfo]:
        """The provider's fabric table holding its NOC on ``fabric``."""
        info = fabric.issue(PROVIDER_NODE_ID)
        return FabricTable([info]), info

    @property
    def provider_node(self) -> Node:
        return self.server.node

    def add_requestor(self, identity: Identity | None = None,
                      behaviour: Behaviour | None = None, *,
                      fabric: FabricInfo | None = None) -> Requestor:
        identity = identity or Identity()
        behaviour = behaviour or Behaviour()
        n = len(self.requestors)
        node = Node(jitter=lambda: 0.0, max_sessions=8)
        addr: Address = (f"fd00::1:{n + 1:x}", 40000 + n % 20000)
        cert_time = self.cert_time
        requestor = Requestor(
            node, CaseClient(node, cert_time=lambda _now: cert_time),
            fabric or self.fabric.issue(FIRST_REQUESTOR_NODE_ID + n), PROVIDER_NODE_ID,
            PROVIDER_ADDR, identity, behaviour, self.on_log,
        )
        self.nodes[addr] = node
        self._by_addr[addr] = requestor
        self.requestors.append(requestor)
        return requestor

    # -- running ------------------------------------------------------------------------------

    def _pump(self, touched: set[Address] | None = None) -> int:
        moved = 0
        for addr, node in list(self.nodes.items()):
            for data, dest in node.datagrams_to_send():
                target = self.nodes.get(dest)
                if target is None:
                    continue
                target.datagram_received(data, addr, self.now)
                if touched is not None:
                    touched.add(dest)
                moved += 1
        self.datagrams += moved
        return moved

    def _settle(self) -> None:
        """Move datagrams and poll the requestors until nothing moves at this instant.

        Everybody is polled first (timers fired, requestors started or waits ended); after
        that only the requestors whose node received something, since nothing else changed.
        """
        polled: list[Requestor] | None = None
        while True:
            touched: set[Address] = set()
            moved = self._pump(touched)
            events = drain_events(self.provider_node, self.provider)
            if self.keep_events:
                self.provider_events.extend(events)
            if polled is None:
                polled = self.requestors
            else:
                polled = [self._by_addr[a] for a in touched if a in self._by_addr]
            for r in polled:
                r.poll(self.now)
            if not moved and not events and not self._pump(touched):
                return
            if touched:
                for a in touched:
                    if a in self._by_addr:
                        self._by_addr[a].poll(self.now)

    def next_deadline(self) -> float | None:
        deadlines = [d for node in self.nodes.values() if (d := node.next_deadline()) is not None]
        deadlines += [d for r in self.requestors if (d := r.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def _fire(self, now: float) -> None:
        self.now = max(self.now, now)
        for node in self.nodes.values():
            d = node.next_deadline()
            if d is not None and d <= self.now:
                node.handle_timer(self.now)

    def run(self, *, until: float | None = None, settled: bool = True,
            max_steps: int = 1_000_000) -> None:
        """Run until every requestor finished (``settled``) or time would pass ``until``."""
        for _ in range(max_steps):
            self._settle()
            if settled and all(r.finished for r in self.requestors):
                return
            deadline = self.next_deadline()
            if deadline is None or (until is not None and deadline > until):
                break
            self._fire(deadline)
        if until is not None:
            self._fire(until)
            self._settle()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of protocol time pass, whatever the requestors do."""
        self.run(until=self.now + seconds, settled=False)
