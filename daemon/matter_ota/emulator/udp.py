"""Emulated requestors over UDP against a running provider (``matter-ota serve``).

All requestors share one node and one socket (each has its own fabric identity, CASE client
and sessions); the node's events (CASE done, invoke answered, download ended) wake the
requestors, and their Busy / AwaitNextAction waits are a timer source of the node, so the
transport's one loop drives everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio

from matter_ota.emulator.requestor import Behaviour, Identity, Requestor
from matter_ota.fabrics import FabricInfo
from matter_ota.messaging.session import Address
from matter_ota.node import Node
from matter_ota.runtime.udp import UdpTransport
from matter_ota.secure_channel.case_server import CaseClient


class RequestorGroup:
    """Routes a shared node's events to its requestors and runs their waits."""

    def __init__(self, requestors: Sequence[Requestor], clock: Callable[[], float]) -> None:
        self.requestors = list(requestors)
        self.clock = clock

    def on_event(self, event: object) -> None:
        now = self.clock()
        for r in self.requestors:
            if not r.finished:
                r.handle_event(event, now)

    def next_deadline(self) -> float | None:
        deadlines = [d for r in self.requestors if (d := r.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        for r in self.requestors:
            r.advance(now)


async def run_fleet(
    provider: Address,
    provider_node_id: int,
    fabrics: Sequence[FabricInfo],
    *,
    identity: Identity | None = None,
    behaviour: Behaviour | None = None,
    host: str = "::1",
    timeout: float = 60.0,
    stagger: float = 0.0,
    progress: Callable[[list[Requestor]], None] | None = None,
) -> list[Requestor]:
    """Run one requestor per fabric identity until all finished or ``timeout`` passed."""
    clock = time.monotonic
    # every requestor may hold a session and the one its reboot left behind
    node = Node(max_sessions=3 * len(fabrics) + 8)
    requestors = [
        Requestor(node, CaseClient(node, cert_time=lambda _now: int(time.time())), fabric,
                  provider_node_id, provider, identity or Identity(), behaviour or Behaviour())
        for fabric in fabrics
    ]
    group = RequestorGroup(requestors, clock)
    node.add_timer_source(group)
    # the peer of every requestor here is the one provider: no per-source handshake quota
    transport = UdpTransport(node, host=host, port=0, clock=clock, on_event=group.on_event,
                             prioritize_sessions=False)
    async with anyio.create_task_group() as tg:
        await tg.start(transport.run)
        with anyio.move_on_after(timeout):
            for r in requestors:
                r.start(clock())
                transport.kick()
                if stagger:
                    await anyio.sleep(stagger)
            while not all(r.finished for r in requestors):
                if progress is not None:
                    progress(requestors)
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    return requestors
