"""`matter-ota serve`: run the provider daemon (the Matter node on UDP)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
from collections.abc import Callable
from pathlib import Path

import anyio

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._case import install_case
from matter_ota.commands._commission import follow_commissioning, install_commissioning
from matter_ota.commands._common import add_config_options, node_identity, provider_config
from matter_ota.commands._im import install_im
from matter_ota.commands._node_state import NodeState, node_state
from matter_ota.commands._pase import install_pase
from matter_ota.commands.setup_code import add_device_options, payload_from_args
from matter_ota.config import NetworkConfig
from matter_ota.dnssd import Commissionable, CommissioningMode
from matter_ota.node import Node
from matter_ota.runtime.discovery import NodeDiscovery
from matter_ota.runtime.mdns import Advertiser, MdnsError, discover_interfaces
from matter_ota.runtime.udp import DEFAULT_PORT, UdpTransport

log = logging.getLogger("matter_ota.serve")

ADDRESS_CHECK_INTERVAL = 30.0  # seconds between checks of the advertised addresses
OTA_PROVIDER_DEVICE_TYPE = 0x0014  # Matter Device Library 11.x: OTA Provider

# Protocol modules (PASE, CASE, IM, BDX) add themselves here: each is called once with the node
# and the parsed arguments, and registers its handlers in the node's dispatch table.
INSTALLERS: list[Callable[[Node, argparse.Namespace], None]] = [
    install_pase,
    install_case,
    install_im,
    install_commissioning,
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the OTA provider daemon")
    add_config_options(p)
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"UDP port (default {DEFAULT_PORT})"
    )
    p.add_argument(
        "--listen",
        default=None,
        metavar="ADDR",
        help="address to bind (default: all, IPv6 dual-stack, IPv4 if no IPv6)",
    )
    p.add_argument("--passcode", type=int, default=None, help="setup passcode for commissioning")
    p.add_argument("--discriminator", type=int, default=None, help="12-bit discriminator")
    p.add_argument(
        "--fabric-file",
        action="append",
        metavar="FILE",
        help="a fabric to answer CASE for (JSON from FabricInfo.to_dict; repeatable)",
    )
    p.add_argument("--attestation-dir", type=Path, default=None, metavar="DIR",
                   help="DAC/PAI/CD files (default STATE_DIR/attestation; see dev-credentials)")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")
    add_device_options(p)
    p.add_argument("--no-mdns", action="store_true",
                   help="do not advertise over mDNS (DNS-SD); commissioners then need the IP")
    p.add_argument("--mdns-interface", action="append", default=None, metavar="IFACE",
                   help="advertise this interface's addresses (repeatable; default: the "
                   "config's network.interfaces, else every interface that is up, "
                   "multicast-capable and not loopback)")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 0xFFFF:
        raise CliError(f"--port {args.port} is not a UDP port (0-65535)", EXIT_USAGE)
    if args.discriminator is not None and not 0 <= args.discriminator <= 0xFFF:
        raise CliError(
            f"--discriminator {args.discriminator} is not a 12-bit value (0-4095)", EXIT_USAGE
        )
    # 5.1.7.1: a passcode is 1..99999998 (the list of trivial values is checked by PASE).
    if args.passcode is not None and not 1 <= args.passcode <= 99_999_998:
        raise CliError(f"--passcode {args.passcode} is outside 1-99999998", EXIT_USAGE)
    if args.mdns_interface and not args.no_mdns:
        try:
            discover_interfaces(args.mdns_interface)
        except MdnsError as exc:
            raise CliError(f"--mdns-interface: {exc}", EXIT_USAGE) from None


def build_node(args: argparse.Namespace) -> Node:
    """The node with every installed protocol registered."""
    node = Node()
    for install in INSTALLERS:
        install(node, args)
    return node


def run(args: argparse.Namespace) -> int:
    _check(args)
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        raise CliError(f"--log-level {args.log_level} is not a log level", EXIT_USAGE)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    node = build_node(args)
    payload = payload_from_args(args)
    if payload is not None:
        # The codes a person types or scans into a commissioner (5.1.3, 5.1.4).
        log.info("event=setup_codes manual=%s qr=%s", payload.manual_code(), payload.qr_code())
    log.info(
        "event=start component=serve port=%d listen=%s passcode=%s discriminator=%s "
        "protocols=%d",
        args.port, args.listen or "any", "set" if args.passcode is not None else "unset",
        args.discriminator if args.discriminator is not None else "unset", len(INSTALLERS),
    )
    transport = UdpTransport(node, host=args.listen, port=args.port,
                             on_event=getattr(args, "on_event", None))
    try:
        transport.open()
    except OSError as exc:
        raise CliError(f"cannot serve on UDP port {args.port}: {exc.strerror or exc}") from exc
    anyio.run(_serve, transport, args)
    log.info("event=stop component=serve")
    return 0


def _loopback_only(listen: str | None) -> bool:
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


async def _advertise(args: argparse.Namespace, port: int, state: NodeState) -> None:
    """Advertise until cancelled; goodbyes go out (shielded) on the way down.

    A failure here is logged and leaves the node serving by IP.
    """
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
            # Every fabric of the node (stored, --fabric-file, added by AddNOC) advertised.
            tg.start_soon(follow_commissioning, discovery, state)
            while True:  # addresses come and go (DHCP, SLAAC privacy addresses)
                await anyio.sleep(ADDRESS_CHECK_INTERVAL)
                await advertiser.refresh_addresses()
    except (MdnsError, OSError) as exc:
        log.error("event=mdns_failed error=%s", exc)
    finally:
        with anyio.CancelScope(shield=True):
            await advertiser.close()


async def _serve(transport: UdpTransport, args: argparse.Namespace) -> None:
    async with anyio.create_task_group() as tg:
        _host, port = await tg.start(transport.run)
        if args.no_mdns:
            log.info("event=mdns_disabled reason=no_mdns")
        elif _loopback_only(args.listen):
            log.info("event=mdns_disabled reason=loopback_only")
        else:
            tg.start_soon(_advertise, args, port, node_state(transport.node, args))
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("event=signal signal=%s", signal.Signals(signum).name)
                break
        tg.cancel_scope.cancel()
