"""`matter-ota setup-code`: the manual pairing code and QR payload for a passcode/discriminator.

``matter-ota setup-code --passcode 20202021 --discriminator 3840`` prints what a person types
(manual code) or scans (QR payload) into a commissioner (values not given come from the
config's ``node:`` section); ``matter-ota setup-code CODE`` reads one back. `serve` logs the
same codes at start (``event=setup_codes``).
"""

from __future__ import annotations

import argparse
import json

from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._common import add_config_options, node_identity, provider_config
from matter_ota.setup_payload import (
    CommissioningFlow,
    SetupPayload,
    SetupPayloadError,
    format_manual_code,
    parse_manual_code,
    parse_qr_code,
)


def _int(text: str) -> int:
    """Decimal or 0x-prefixed hex."""
    return int(text, 0)


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """--vendor-id / --product-id / --device-name (shared by `serve` and `setup-code`); each
    overrides the config's ``node:`` value (defaults 0xFFF1 / 0x8000)."""
    parser.add_argument("--vendor-id", type=_int, default=None,
                        help="vendor id (default: the config's node.vendor_id)")
    parser.add_argument("--product-id", type=_int, default=None,
                        help="product id (default: the config's node.product_id)")
    parser.add_argument("--device-name", default=None, metavar="NAME",
                        help="DNS-SD device name, TXT DN, at most 32 bytes (default: the "
                        "config's node.device_name)")


def payload_from_args(args: argparse.Namespace, flow: CommissioningFlow =
                      CommissioningFlow.STANDARD) -> SetupPayload | None:
    """The onboarding payload of ``--passcode``/``--discriminator`` with the node's vendor and
    product id; None if either is unset."""
    if args.passcode is None or args.discriminator is None:
        return None
    identity = node_identity(args)
    try:
        return SetupPayload(passcode=args.passcode, discriminator=args.discriminator,
                            vendor_id=identity.vendor_id, product_id=identity.product_id,
                            flow=flow)
    except SetupPayloadError as exc:
        raise CliError(f"cannot build a setup code: {exc}", EXIT_USAGE) from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("setup-code", help="show the manual pairing code and QR payload")
    p.add_argument("code", nargs="?", default=None,
                   help="a manual code or MT: QR payload to decode instead")
    p.add_argument("--passcode", type=int, default=None,
                   help="setup passcode (default: the config's node.passcode)")
    p.add_argument("--discriminator", type=int, default=None,
                   help="12-bit discriminator (default: the config's node.discriminator)")
    add_config_options(p)
    add_device_options(p)
    p.add_argument("--custom-flow", action="store_true",
                   help="custom commissioning flow (21-digit manual code with vendor/product)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.code is not None:
        return _decode(args.code, args.json)
    config = provider_config(args)
    if config is not None:
        if args.passcode is None:
            args.passcode = config.node.passcode
        if args.discriminator is None:
            args.discriminator = config.node.discriminator
    if args.passcode is None or args.discriminator is None:
        raise CliError("give --passcode and --discriminator, a config with node.passcode and "
                       "node.discriminator, or a CODE to decode", EXIT_USAGE)
    flow = CommissioningFlow.CUSTOM if args.custom_flow else CommissioningFlow.STANDARD
    payload = payload_from_args(args, flow)
    assert payload is not None
    manual, qr = payload.manual_code(), payload.qr_code()
    if args.json:
        print(json.dumps({"manual_code": manual, "qr_code": qr, "passcode": payload.passcode,
                          "discriminator": payload.discriminator,
                          "vendor_id": payload.vendor_id, "product_id": payload.product_id}))
    else:
        print(f"Manual pairing code: {format_manual_code(manual)}")
        print(f"QR code payload:     {qr}")
    return 0


def _decode(code: str, as_json: bool) -> int:
    try:
        if code.upper().startswith("MT:"):
            payload = parse_qr_code(code.upper())
            fields: dict[str, object] = {
                "kind": "qr", "passcode": payload.passcode,
                "discriminator": payload.discriminator, "vendor_id": payload.vendor_id,
                "product_id": payload.product_id, "flow": payload.flow.name.lower(),
                "capabilities": int(payload.capabilities),
            }
        else:
            manual = parse_manual_code(code)
            fields = {"kind": "manual", "passcode": manual.passcode,
                      "short_discriminator": manual.short_discriminator,
                      "vendor_id": manual.vendor_id, "product_id": manual.product_id}
    except SetupPayloadError as exc:
        raise CliError(f"{code}: {exc}", EXIT_USAGE) from None
    if as_json:
        print(json.dumps(fields))
    else:
        for key, value in fields.items():
            if value is not None:
                print(f"{key:20} {value}")
    return 0
