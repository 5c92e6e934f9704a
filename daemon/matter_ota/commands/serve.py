"""`matter-ota serve`: run the provider daemon (the Matter node on UDP).

The settings come from ``--config`` (provider.yaml, every key with a default); the flags below
override them. The daemon itself lives in :mod:`matter_ota.runtime.service`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._case import install_case
from matter_ota.commands._commission import install_commissioning
from matter_ota.commands._common import add_config_options, default_config_path
from matter_ota.commands._dcl_runtime import keep_dcl_fresh, prepare_dcl
from matter_ota.commands._im import install_im
from matter_ota.commands._mdns import add_mdns_options, advertise, check_mdns_options
from matter_ota.commands._mdns import commissionable_params as commissionable_params
from matter_ota.commands._node_state import node_state
from matter_ota.commands._ota import install_ota
from matter_ota.commands._pase import install_pase
from matter_ota.commands._ramp import advance_ramps
from matter_ota.commands.setup_code import add_device_options, payload_from_args
from matter_ota.config import ProviderConfig
from matter_ota.crypto import spake2p
from matter_ota.messaging.session import Address
from matter_ota.node import DEFAULT_UNSECURED_SESSIONS, Node
from matter_ota.runtime import logs
from matter_ota.runtime.service import (
    Daemon,
    ProviderService,
    another_daemon,
    load_provider_or_defaults,
    load_startup_config,
    startup_digest,
)
from matter_ota.runtime.udp import UdpTransport
from matter_ota.setup_payload import format_manual_code
from matter_ota.store import Store, StoreError
from matter_ota.yamlnodes import ConfigError

log = logging.getLogger("matter_ota.serve")

# Protocol modules (PASE, CASE, IM, BDX) add themselves here: each is called once with the node
# and the parsed arguments, and registers its handlers in the node's dispatch table. The
# arguments carry the effective settings (flags, else provider.yaml: port, passcode,
# discriminator, state_dir, vendor_id, product_id, device_name) and ``args.service``, the
# ProviderService whose current_state() the OTA handlers consult. They share one fabric table
# and one ACL (CASE, OTA, IM, commissioning) through :func:`_node_state.node_state`.
INSTALLERS: list[Callable[[Node, argparse.Namespace], None]] = [
    install_pase,
    install_case,
    install_ota,
    install_im,
    install_commissioning,
]

# Long-running companions (mDNS advertiser, ...): each is called with the arguments and the
# bound UDP address once the socket is bound, and runs in the daemon's task group until stop.
COMPANIONS: list[Callable[[argparse.Namespace, Address], Coroutine[Any, Any, None]]] = [
    advertise,
    keep_dcl_fresh,
    advance_ramps,
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the OTA provider daemon")
    add_config_options(p)
    p.add_argument("--port", type=int, default=None,
                   help="UDP port (default: network.port of the config, 5540)")
    p.add_argument(
        "--listen",
        default=None,
        metavar="ADDR",
        help="address to bind (default: all, IPv6 dual-stack, IPv4 if no IPv6)",
    )
    p.add_argument("--passcode", type=int, default=None,
                   help="setup passcode for commissioning (default: node.passcode)")
    p.add_argument("--discriminator", type=int, default=None,
                   help="12-bit discriminator (default: node.discriminator)")
    p.add_argument(
        "--fabric-file",
        action="append",
        metavar="FILE",
        help="a fabric to answer CASE for (JSON from FabricInfo.to_dict; repeatable)",
    )
    p.add_argument("--attestation-dir", type=Path, default=None, metavar="DIR",
                   help="DAC/PAI/CD files (default: attestation: of the config, else "
                   "STATE_DIR/attestation; see dev-credentials)")
    p.add_argument("--log-level", default=None, type=str.lower, choices=list(logs.LEVELS),
                   help="default: log.level of the config (info)")
    p.add_argument("--log-format", default=None, choices=list(logs.FORMATS),
                   help="text (key=value) or json, one line per event (default: log.format)")
    p.add_argument("--banner", action=argparse.BooleanOptionalAction, default=None,
                   help="print where the daemon listens and how to commission it on stdout "
                   "(default: when stdout is a terminal)")
    add_device_options(p)
    add_mdns_options(p)
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace, provider: ProviderConfig) -> None:
    """Fill every setting not given on the command line from provider.yaml."""
    node = provider.node
    defaults: dict[str, object] = {
        "port": provider.network.port, "passcode": node.passcode,
        "discriminator": node.discriminator, "state_dir": provider.state_dir,
        "vendor_id": node.vendor_id, "product_id": node.product_id,
        "device_name": node.device_name, "log_level": provider.log.level,
        "log_format": provider.log.format, "max_sessions": provider.limits.max_sessions,
        "max_handshakes": provider.limits.max_handshakes,
    }
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.listen is None and not provider.network.ipv4:
        args.listen = "::"  # IPv6 only (an explicit "::" binds with IPV6_V6ONLY)


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 0xFFFF:
        raise CliError(f"--port {args.port} is not a UDP port (0-65535)", EXIT_USAGE)
    if not 0 <= args.discriminator <= 0xFFF:
        raise CliError(
            f"--discriminator {args.discriminator} is not a 12-bit value (0-4095)", EXIT_USAGE
        )
    try:
        spake2p.check_passcode(args.passcode)  # 5.1.7.1
    except spake2p.InvalidPasscode as e:
        raise CliError(f"--passcode: {e}", EXIT_USAGE) from None
    check_mdns_options(args)


def build_node(args: argparse.Namespace) -> Node:
    """The node with every installed protocol registered."""
    node = Node(max_sessions=getattr(args, "max_sessions", None) or 64,
                max_unsecured_sessions=getattr(args, "max_handshakes", None)
                or DEFAULT_UNSECURED_SESSIONS)
    for install in INSTALLERS:
        install(node, args)
    # The companions (mDNS) follow commissioning: the window, the fabrics AddNOC adds.
    args.node_state = node_state(node, args)
    return node


def run(args: argparse.Namespace) -> int:
    explicit = args.config is not None
    path = Path(args.config) if explicit else default_config_path()
    try:
        provider = load_provider_or_defaults(path, explicit)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if path.exists():
        args.config = path  # the installers read the same file
    level_given = args.log_level is not None
    show_banner = args.banner if args.banner is not None else sys.stdout.isatty()
    _settings(args, provider)
    _check(args)
    try:
        store = Store.open(Path(args.state_dir))
    except StoreError as exc:
        raise CliError(str(exc)) from None
    try:
        other = another_daemon(store)
        if other is not None:
            raise CliError(f"another daemon (pid {other}) serves {args.state_dir}; stop it "
                           "first or give another --state-dir")
        logs.configure(args.log_level, args.log_format)
        if not path.exists():
            log.info("event=config_defaults reason=no_config_file path=%s", path)
        try:
            config, refused, served_text = load_startup_config(provider, store)
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        if refused is not None:
            log.warning("event=config_invalid file=%s line=%s reason=%s kept=last_valid",
                        refused.file, refused.line or "-", refused.reason)
        service = ProviderService(config, store, digest=startup_digest(config, served_text))
        service.log_level_fixed = level_given
        args.service = service
        dcl = prepare_dcl(args, provider)
        node = build_node(args)
        payload = payload_from_args(args)
        if payload is not None:
            # The codes a person types or scans into a commissioner (5.1.3, 5.1.4).
            log.info("event=setup_codes manual=%s qr=%s", payload.manual_code(),
                     payload.qr_code())
        log.info(
            "event=start component=serve config=%s state_dir=%s port=%d listen=%s "
            "passcode=set discriminator=%d protocols=%d",
            path if path.exists() else "-", args.state_dir, args.port, args.listen or "any",
            args.discriminator, len(INSTALLERS),
        )
        transport = UdpTransport(node, host=args.listen, port=args.port,
                                 on_event=getattr(args, "on_event", None))
        try:
            transport.open()
        except OSError as exc:
            raise CliError(f"cannot serve on UDP port {args.port}: {exc.strerror or exc}"
                           ) from exc
        daemon = Daemon(
            service, node, transport, config_path=path, config_explicit=explicit,
            companions=[functools.partial(c, args) for c in COMPANIONS],
            on_ready=functools.partial(banner, args) if show_banner else None,
            startup_error=refused, contexts=[dcl],
        )
        anyio.run(daemon.run)
    finally:
        store.close()
    log.info("event=stop component=serve")
    return 0


def banner(args: argparse.Namespace, address: Address, out: Any = None) -> None:
    """What a person at a terminal needs: where the daemon listens and how to commission it."""
    out = out or sys.stdout
    print(f"matter-ota: serving on UDP [{address[0]}]:{address[1]}", file=out)
    print(f"  config: {args.config or '(built-in defaults)'}; state: {args.state_dir}",
          file=out)
    state = getattr(args, "node_state", None)
    if state is not None and not state.window_open:
        print(f"  commissioned ({len(state.fabrics)} fabric(s)); the commissioning window is "
              "closed", file=out)
    else:
        print(f"  setup passcode {args.passcode:08d}, discriminator {args.discriminator}",
              file=out)
        codes = setup_codes(args)
        if codes is not None:
            print(f"  manual pairing code {codes[0]}, QR payload {codes[1]}", file=out)
    print("  Ctrl-C stops the daemon.", file=out, flush=True)


def setup_codes(args: argparse.Namespace) -> tuple[str, str] | None:
    """The manual pairing code (as people type it) and the QR payload."""
    try:
        payload = payload_from_args(args)
    except CliError:
        return None
    if payload is None:
        return None
    return format_manual_code(payload.manual_code()), payload.qr_code()
