"""The provider on a node: the OTA Provider cluster in the IM server, BDX with the provider's
lookup, the provider's deadlines as a timer source, the BDX events to its bookkeeping.

:func:`provider_node` builds the whole responder side on one :class:`~matter_ota.node.Node`
(CASE, IM with the root endpoint, BDX, provider), as the daemon runs it and the end-to-end
tests pair with emulated requestors. The node's events must reach
:meth:`OtaProvider.handle_event` (``UdpTransport(on_event=...)``; :func:`drain_events` in
tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from matter_ota.bdx.sender import SenderConfig
from matter_ota.bdx.server import PRODUCTION_SESSIONS, BdxServer
from matter_ota.clusters.basic_information import BasicInfo
from matter_ota.clusters.ota_provider import OtaProviderCluster
from matter_ota.clusters.root import build_root_node
from matter_ota.fabrics import FabricTable
from matter_ota.im.acl import AccessControl, AccessControlEntry, AuthMode, Privilege, Target
from matter_ota.im.server import InteractionServer
from matter_ota.messaging.session import SessionKind
from matter_ota.node import Node
from matter_ota.provider.core import OtaProvider
from matter_ota.secure_channel.case_server import CaseServer


def attach_bdx(node: Node, provider: OtaProvider, config: SenderConfig | None = None, *,
               sessions: Iterable[SessionKind] = PRODUCTION_SESSIONS) -> BdxServer:
    """Serve BDX on ``node`` with the provider's lookup and run the provider's timers."""
    server = BdxServer(node, None, config, sessions=sessions, device_lookup=provider.lookup)
    provider.transfers = server.table
    provider.clock = lambda: node.now
    node.add_timer_source(provider)
    return server


def requestor_access(fabric_index: int, admin_node_id: int | None = None
                     ) -> list[AccessControlEntry]:
    """The ACL an administrator writes on a provider (the connectedhomeip OTA guide): itself
    as Administer, and Operate on the OTA Provider cluster for every node of the fabric."""
    entries = []
    if admin_node_id is not None:
        entries.append(AccessControlEntry(fabric_index, Privilege.ADMINISTER, AuthMode.CASE,
                                          (admin_node_id,)))
    entries.append(AccessControlEntry(fabric_index, Privilege.OPERATE, AuthMode.CASE, (),
                                      (Target(cluster=OtaProviderCluster.ID, endpoint=0),)))
    return entries


@dataclass
class ProviderNode:
    """Everything the responder side runs on one node."""

    node: Node
    provider: OtaProvider
    case: CaseServer
    im: InteractionServer
    bdx: BdxServer
    access: AccessControl


def provider_node(
    node: Node,
    provider: OtaProvider,
    fabrics: FabricTable,
    info: BasicInfo,
    *,
    cert_time: Callable[[float], int | None],
    bdx_config: SenderConfig | None = None,
    access: AccessControl | None = None,
) -> ProviderNode:
    """CASE + IM (root endpoint with the OTA Provider cluster) + BDX + the provider."""
    case = CaseServer(node, fabrics, cert_time=cert_time)
    case.register()
    access = access if access is not None else AccessControl()
    model = build_root_node(info, access, provider)
    im = InteractionServer(node, model, access)
    bdx = attach_bdx(node, provider, bdx_config)
    return ProviderNode(node, provider, case, im, bdx, access)


def drain_events(node: Node, provider: OtaProvider) -> list[object]:
    """Hand every pending node event to the provider; returns them (tests, the fleet)."""
    events = []
    while (event := node.next_event()) is not None:
        provider.handle_event(event)
        events.append(event)
    return events
