"""`matter-ota serve`: the commissioning clusters on endpoint 0 and the commissioning window.

Adds General Commissioning, Network Commissioning (Ethernet), Operational Credentials, Group
Key Management and General Diagnostics to the IM server's root endpoint, backed by one
:class:`~matter_ota.commissioning.commissionee.Commissionee` on the node's shared fabric table
and ACL. The attestation identity (DAC, PAI, CD) comes from ``--attestation-dir``, provider.yaml's
``attestation:`` files, or ``<state dir>/attestation`` (``matter-ota dev-credentials`` writes one
for development).

The commissioning window (PASE) is open while the node has no committed fabric; the
CommissioningComplete that commits one closes it: PASE requests are dropped from then on and
PASE sessions are closed.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import time
from pathlib import Path

import anyio

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.clusters.general_commissioning import GeneralCommissioningCluster
from matter_ota.clusters.general_diagnostics import (
    GeneralDiagnosticsCluster,
    InterfaceType,
    NetworkInterface,
)
from matter_ota.clusters.group_key_management import GroupKeyManagementCluster
from matter_ota.clusters.network_commissioning import NetworkCommissioningCluster
from matter_ota.clusters.operational_credentials import OperationalCredentialsCluster
from matter_ota.commands._common import provider_config
from matter_ota.commands._node_state import NodeState, node_state, state_dir
from matter_ota.commissioning.commissionee import (
    Commissionee,
    CommissioningCompleted,
    FabricAdded,
    FabricRemoved,
    FailSafeExpired,
    MemoryFabricStore,
)
from matter_ota.config import AttestationFiles
from matter_ota.crypto.attestation import AttestationError, DeviceAttestation
from matter_ota.fabrics import FabricInfo
from matter_ota.messaging.exchange import Exchange, Message
from matter_ota.messaging.session import SessionKind
from matter_ota.messaging.status import Protocol, SecureChannelOpcode
from matter_ota.node import Node
from matter_ota.runtime.discovery import NodeDiscovery
from matter_ota.runtime.mdns import MdnsError, discover_interfaces

log = logging.getLogger("matter_ota.serve")

ATTESTATION_SUBDIR = "attestation"
BOOT_COUNT_FILE = "boot-count"


def _configured_files(args: argparse.Namespace) -> AttestationFiles | None:
    """provider.yaml's ``attestation:`` files, if there is a config and it names them."""
    config = provider_config(args)
    return None if config is None else config.attestation


def _identity(args: argparse.Namespace) -> DeviceAttestation | None:
    """``--attestation-dir``, else provider.yaml's files, else ``<state dir>/attestation``."""
    explicit: Path | None = getattr(args, "attestation_dir", None)
    try:
        if explicit is None:
            files = _configured_files(args)
            if files is not None:
                return DeviceAttestation.from_files(files.dac_cert, files.dac_key,
                                                    files.pai_cert,
                                                    files.certification_declaration)
        state = state_dir(args)
        directory = explicit or (state / ATTESTATION_SUBDIR if state else None)
        if directory is None or (explicit is None and not directory.exists()):
            log.warning("event=attestation_missing dir=%s hint=run `matter-ota "
                        "dev-credentials`", directory or "-")
            return None
        return DeviceAttestation.load(directory)
    except AttestationError as exc:
        raise CliError(f"attestation identity: {exc}", EXIT_USAGE) from None


def _count_boot(directory: Path | None) -> int:
    """RebootCount (11.12.6.2): starts of the daemon on this state directory, this one
    included (0 without a state directory)."""
    if directory is None:
        return 0
    path = directory / BOOT_COUNT_FILE
    try:
        count = int(path.read_text().strip() or 0) + 1
    except FileNotFoundError:
        count = 1
    except (OSError, ValueError) as exc:
        log.warning("event=boot_count_unreadable path=%s error=%s", path, exc)
        count = 1
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{count}\n")
    except OSError as exc:
        log.warning("event=boot_count_unwritable path=%s error=%s", path, exc)
    return count


def _network_interfaces(names: list[str] | None) -> list[NetworkInterface]:
    """NetworkInterfaces (11.12.6.1) as the runtime sees them now."""
    try:
        found = discover_interfaces(names)
    except MdnsError:
        return []
    return [NetworkInterface(
        name=i.name[:32], is_operational=bool(i.ipv4 or i.ipv6),
        off_premise_services_reachable_ipv4=None, off_premise_services_reachable_ipv6=None,
        hardware_address=(i.mac or bytes(6))[:8],
        ipv4_addresses=[ipaddress.ip_address(a).packed for a in i.ipv4][:4],
        ipv6_addresses=[ipaddress.ip_address(a.split("%")[0]).packed for a in i.ipv6][:8],
        type=InterfaceType.WIFI if i.name.startswith("wl") else InterfaceType.ETHERNET,
    ) for i in found]


def close_window(node: Node, state: NodeState) -> None:
    """Stop accepting PASE (11.10.7.6 / 5.4.2.3: the window closes on commissioning)."""
    state.window_open = False
    route = node.route(Protocol.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST)
    if route is not None:
        def closed(exchange: Exchange, message: Message) -> None:
            log.info("event=pase_refused reason=window_closed peer=%s", message.addr)
            exchange.close()
        node.register(Protocol.SECURE_CHANNEL, SecureChannelOpcode.PBKDF_PARAM_REQUEST, closed,
                      route.sessions, replace=True)


def install_commissioning(node: Node, args: argparse.Namespace) -> None:
    """Serve installer: the commissioning clusters (after the IM installer)."""
    state = node_state(node, args)
    if state.model is None:
        raise CliError("commissioning needs the IM server (install order)")
    identity = _identity(args)
    commissionee = Commissionee(node, state.fabrics, state.access,
                                state.store or MemoryFabricStore(), identity,
                                cert_time=lambda _now: int(time.time()))
    # A --fabric-file fabric lives in its file: never written to the store (keys, ACL edits).
    commissionee.committed -= state.provisioned
    root = state.model.endpoints[0]
    root.add(GeneralCommissioningCluster(commissionee))
    config = provider_config(args)
    # The interfaces serve advertises on (--mdns-interface, else network.interfaces, else all).
    names: list[str] | None = getattr(args, "mdns_interface", None) or (
        list(config.network.interfaces) if config is not None else None)
    root.add(NetworkCommissioningCluster(names[0] if names else "eth0"))
    root.add(OperationalCredentialsCluster(commissionee))
    root.add(GroupKeyManagementCluster(state.fabrics))
    root.add(GeneralDiagnosticsCluster(
        reboot_count=_count_boot(state_dir(args)), started_at=time.monotonic(),
        interfaces=lambda: _network_interfaces(names),
        posix_ms=lambda _now: int(time.time() * 1000)))

    def on_event(event: object) -> None:
        if isinstance(event, CommissioningCompleted):
            close_window(node, state)
            for session in list(node.sessions):
                if session.kind is SessionKind.PASE:
                    node.remove_session(session, "commissioning_complete")
            log.info("event=commissioning_window_closed fabric=%d", event.fabric_index)

    state.listeners.append(on_event)
    # Node events reach the shared state through the transport (serve passes args.on_event).
    previous = getattr(args, "on_event", None)
    if previous is not None:
        state.listeners.append(previous)
    args.on_event = state.emit
    if not state.window_open:
        close_window(node, state)
    if identity is not None:
        vendor, product = identity.vendor_product()
        log.info("event=attestation_loaded dac_vendor=0x%04X dac_product=0x%04X",
                 vendor or 0, product or 0)
    log.info("event=commissioning_enabled fabrics=%d window=%s", len(state.fabrics),
             "open" if state.window_open else "closed")


async def follow_commissioning(discovery: NodeDiscovery, state: NodeState) -> None:
    """Keep DNS-SD in step with commissioning until cancelled: every fabric of the node is
    advertised operationally (4.3.2: as soon as AddNOC installs it, so the commissioner finds
    the node for CommissioningComplete over CASE), a removed fabric is withdrawn, and the
    commissionable record goes when the window closes."""
    send, receive = anyio.create_memory_object_stream[object](64)

    def listener(event: object) -> None:
        if isinstance(event, FabricAdded | FabricRemoved | CommissioningCompleted |
                      FailSafeExpired):
            try:
                send.send_nowait(event)
            except anyio.WouldBlock:
                log.warning("event=mdns_event_dropped type=%s", type(event).__name__)

    state.listeners.append(listener)
    try:
        for fabric in state.fabrics:
            await _advertise_fabric(discovery, fabric)
        async with receive:
            async for event in receive:
                if isinstance(event, FabricAdded):
                    await _advertise_fabric(discovery, event.fabric)
                elif isinstance(event, FabricRemoved):
                    await discovery.withdraw_fabric(event.fabric_index)
                elif isinstance(event, CommissioningCompleted):
                    await discovery.close_commissioning_window()
    finally:
        state.listeners.remove(listener)
        send.close()


async def _advertise_fabric(discovery: NodeDiscovery, fabric: FabricInfo) -> None:
    try:
        record = await discovery.advertise_fabric(fabric)
    except MdnsError as exc:
        log.error("event=mdns_operational_failed fabric=%d error=%s", fabric.fabric_index, exc)
        return
    log.info("event=mdns_operational fabric=%d instance=%s", fabric.fabric_index,
             record.instance)
