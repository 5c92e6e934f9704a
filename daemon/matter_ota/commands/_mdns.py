"""`matter-ota serve`: mDNS (DNS-SD) advertising, a companion of the daemon's task group.

Started once the UDP socket is bound (:data:`matter_ota.commands.serve.COMPANIONS`): the
commissionable service while the commissioning window is open (no committed fabric yet) and a
passcode and discriminator are set, the operational service of every fabric of the node (stored,
``--fabric-file``, added by AddNOC; :func:`~matter_ota.commands._commission.follow_commissioning`
keeps it in step with commissioning), addresses re-read every 30 s. A failure is logged and leaves
the node serving by IP; goodbyes go out (shielded) when the daemon stops.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

import anyio

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._commission import follow_commissioning
from matter_ota.commands._common import node_identity, provider_config
from matter_ota.commands._node_state import NodeState
from matter_ota.config import NetworkConfig
from matter_ota.dnssd import Commissionable, CommissioningMode
from matter_ota.messaging.session import Address
from matter_ota.runtime.discovery import NodeDiscovery
from matter_ota.runtime.mdns import Advertiser, MdnsError, discover_interfaces

log = logging.getLogger("matter_ota.serve")

ADDRESS_CHECK_INTERVAL = 30.0  # seconds between checks of the advertised addresses
OTA_PROVIDER_DEVICE_TYPE = 0x0014  # Matter Device Library 11.x: OTA Provider


def add_mdns_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-mdns", action="store_true",
                   help="do not advertise over mDNS (DNS-SD); commissioners then need the IP")
    p.add_argument("--mdns-interface", action="append", default=None, metavar="IFACE",
                   help="advertise this interface's addresses (repeatable; default: the "
                   "config's network.interfaces, else every interface that is up, "
                   "multicast-capable and not loopback)")


def check_mdns_options(args: argparse.Namespace) -> None:
    if args.mdns_interface and not args.no_mdns:
        try:
            discover_interfaces(args.mdns_interface)
        except MdnsError as exc:
            raise CliError(f"--mdns-interface: {exc}", EXIT_USAGE) from None


def loopback_only(listen: str | None) -> bool:
    """True when ``--listen`` is a loopback address: nobody else could reach what we advertise."""
    try:
        return listen is not None and ipaddress.ip_address(listen.split("%")[0]).is_loopback
    except ValueError:
        return False


def commissionable_params(args: argparse.Namespace) -> Commissionable | None:
    """What `serve` advertises as commissionable, or None when no window is open."""
    if args.passcode is None or args.discriminator is None:
        return None
    identity = node_identity(args)
    return Commissionable(
        discriminator=args.discriminator,
        vendor_id=identity.vendor_id,
        product_id=identity.product_id,
        mode=CommissioningMode.BASIC,
        device_type=OTA_PROVIDER_DEVICE_TYPE,
        device_name=identity.device_name,
    )


async def advertise(args: argparse.Namespace, address: Address) -> None:
    """The companion: advertise until cancelled, unless mDNS is off or pointless.

    ``args.node_state`` (set by ``serve.build_node``) is the node's fabrics and window."""
    if args.no_mdns:
        log.info("event=mdns_disabled reason=no_mdns")
    elif loopback_only(args.listen):
        log.info("event=mdns_disabled reason=loopback_only")
    else:
        await _advertise(args, address[1], args.node_state)


async def _advertise(args: argparse.Namespace, port: int, state: NodeState) -> None:
    # A daemon bound to one address advertises that address only.
    only = [args.listen] if args.listen not in (None, "::", "0.0.0.0") else None
    config = provider_config(args)
    network = config.network if config is not None else NetworkConfig()
    advertiser = Advertiser(interfaces=args.mdns_interface or list(network.interfaces),
                            addresses=only, ipv4=network.ipv4)
    try:
        await advertiser.start()
        discovery = NodeDiscovery(advertiser, port)
        params = commissionable_params(args)
        if params is None or not state.window_open:
            log.info("event=mdns_commissionable_skipped reason=%s",
                     "commissioned" if not state.window_open else
                     "no_passcode" if args.passcode is None else "no_discriminator")
        else:
            await discovery.open_commissioning_window(params)
        async with anyio.create_task_group() as tg:
            # Every fabric of the node advertised, from now and as commissioning goes on.
            tg.start_soon(follow_commissioning, discovery, state)
            while True:  # addresses come and go (DHCP, SLAAC privacy addresses)
                await anyio.sleep(ADDRESS_CHECK_INTERVAL)
                await advertiser.refresh_addresses()
    except* (MdnsError, OSError) as group:  # also from inside the task group (wrapped)
        log.error("event=mdns_failed error=%s", group.exceptions[0])
    finally:
        with anyio.CancelScope(shield=True):
            await advertiser.close()
