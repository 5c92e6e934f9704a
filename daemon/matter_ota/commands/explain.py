"""`matter-ota explain`: what the daemon would answer a device's QueryImage, and why.

It builds the same facts the daemon uses (config, image headers, the device ledger and
cohorts from the state store) and calls the same engine function,
:func:`matter_ota.policy.engine.decide`. ``--nodes-from FILE`` answers many devices in one
run, one JSON object per line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

from matter_ota.cli import CliError
from matter_ota.commands._common import add_config_options
from matter_ota.commands._console import open_console, state_dir, usage_error
from matter_ota.config import ReleasesConfig
from matter_ota.facts import build_state
from matter_ota.operations import Console
from matter_ota.policy.engine import decide
from matter_ota.policy.model import BDX_SYNCHRONOUS, Decision, Device, Query, ReleaseState, Source
from matter_ota.sources.dcl_decide import Decider, open_dcl_decider
from matter_ota.store import Store

_CFID = re.compile(r"^(?:0x)?([0-9A-Fa-f]{16})$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "explain", help="the decision the daemon would give a device, with its reason",
        description="Numbers take decimal or 0x-hex. --fabric is a compressed fabric id (16 "
        "hex digits), or the index or label of a fabric the provider has joined. With "
        "--nodes-from FILE, each line is a node id or a JSON object with any of fabric, node, "
        "vendor_id, product_id, version, hardware_version (the options give the defaults); "
        "the answers are JSON lines.",
    )
    add_config_options(p)
    p.add_argument("--fabric", required=True, metavar="F")
    p.add_argument("--node", type=_typed("node"), metavar="N", help="operational node id")
    p.add_argument("--vendor-id", type=_typed("vendor_id"), metavar="V")
    p.add_argument("--product-id", type=_typed("product_id"), metavar="P")
    p.add_argument("--version", type=_typed("version"), metavar="S",
                   help="software version it runs")
    p.add_argument("--hardware-version", type=_typed("hardware_version"), metavar="H")
    p.add_argument("--json", action="store_true", help="a JSON object per device")
    p.add_argument("--nodes-from", type=Path, metavar="FILE", help="many devices ('-': stdin)")
    p.set_defaults(func=run)


# Field widths (Matter Core 11.20.6.5.1 QueryImage: vendor/product id uint16, software
# version uint32, hardware version uint16; operational node ids are 64-bit, 2.5.5).
_BITS = {"node": 64, "vendor_id": 16, "product_id": 16, "version": 32, "hardware_version": 16}


def _number(text: str, bits: int = 64) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (decimal or 0x-hex)") \
            from None
    return _in_range(value, bits, text)


def _in_range(value: int, bits: int, shown: object) -> int:
    if not 0 <= value < 1 << bits:
        raise argparse.ArgumentTypeError(f"{shown!r} is not a {bits}-bit unsigned number")
    return value


def _typed(key: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        return _number(text, _BITS[key])

    parse.__name__ = key.replace("_", " ")  # argparse names the type in its message
    return parse


def resolve_fabric(text: str, store: Store) -> int:
    """A compressed fabric id from its 16 hex digits, or a known fabric's index or label."""
    match = _CFID.match(text.strip())
    if match:
        return int(match.group(1), 16)
    fabrics = store.fabrics()
    for f in fabrics:
        if (text.isdigit() and int(text) == f.fabric_index) or text == f.label:
            return int(f.compressed_fabric_id, 16)
    known = ", ".join(f"{f.fabric_index} ({f.label or 'no label'})" for f in fabrics)
    raise usage_error(
        f"--fabric {text!r} is neither a compressed fabric id (16 hex digits) nor a fabric "
        f"the provider has joined" + (f" ({known})" if known else " (it has joined none yet)")
    )


Ledger = dict[tuple[int, int], int]


def ledger(store: Store) -> Ledger:
    """The hardware version the ledger knows per (compressed fabric id, node id), read once."""
    return {(int(cfid, 16), node): hw for (cfid, node), hw in store.hardware_versions().items()}


def answer(state: ReleaseState, known: Ledger, fabric: int, fields: dict[str, Any],
           now: float, decide_fn: Decider = decide) -> Decision:
    """decide() for one device; a hardware version not given comes from the ledger."""
    node = fields["node"]
    hardware = fields.get("hardware_version")
    if hardware is None:
        hardware = known.get((fabric, node))
    device = Device(fabric=fabric, node=node, vendor_id=fields["vendor_id"],
                    product_id=fields["product_id"], current_version=fields["version"],
                    hardware_version=hardware)
    query = Query(vendor_id=fields["vendor_id"], product_id=fields["product_id"],
                  software_version=fields["version"], protocols_supported=(BDX_SYNCHRONOUS,),
                  hardware_version=hardware)
    return decide_fn(device, query, state, now)


@contextmanager
def _decider(console: Console, args: argparse.Namespace,
             releases: ReleasesConfig) -> Iterator[Decider]:
    """The engine's decide; for DCL releases one that consults the ledger (fetching and
    verifying an image that is not cached), as the daemon will once it has the image."""
    if not any(r.source is Source.DCL for r in releases.releases):
        yield decide
        return
    with open_dcl_decider(console.provider.dcl, state_dir(args, console.provider)) as fn:
        yield fn


def as_json(node: int, decision: Decision) -> dict[str, Any]:
    return {"node": node, "status": decision.status.label, "version": decision.version,
            "reason": decision.reason}


_FIELDS = ("fabric", "node", "vendor_id", "product_id", "version", "hardware_version")
_REQUIRED = ("node", "vendor_id", "product_id", "version")


def _lines(path: Path, defaults: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stream: IO[str] = sys.stdin if str(path) == "-" else path.open(encoding="utf-8")
    try:
        for number, line in enumerate(stream, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = dict(defaults)
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise CliError(f"{path}:{number}: not JSON: {exc.msg}") from None
                unknown = set(obj) - set(_FIELDS)
                if unknown:
                    raise CliError(f"{path}:{number}: unknown keys {sorted(unknown)}; "
                                   f"known: {', '.join(_FIELDS)}")
                for key, value in obj.items():
                    fields[key] = _field(value, path, number, key)
            else:
                fields["node"] = _field(text, path, number, "node")
            missing = [k for k in _REQUIRED if fields.get(k) is None]
            if missing:
                raise CliError(f"{path}:{number}: no {', '.join(missing)} (give them on the "
                               "line or as options)")
            yield fields
    finally:
        if stream is not sys.stdin:
            stream.close()


def _field(value: object, path: Path, number: int, key: str) -> Any:
    if key == "fabric":
        return str(value)
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return _in_range(value, _BITS[key], value)
        if isinstance(value, str):
            return _number(value, _BITS[key])
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"{path}:{number}: {key}: {exc}") from None
    raise CliError(f"{path}:{number}: {key} must be a number, not {value!r}")


def run(args: argparse.Namespace) -> int:
    defaults = {"node": args.node, "vendor_id": args.vendor_id, "product_id": args.product_id,
                "version": args.version, "hardware_version": args.hardware_version}
    if args.nodes_from is None:
        missing = [f"--{k.replace('_', '-')}" for k in _REQUIRED if defaults[k] is None]
        if missing:
            raise usage_error(f"explain needs {', '.join(missing)} (or --nodes-from FILE)")
    now = time.time()
    with open_console(args) as console, ExitStack() as stack:
        releases, warnings = console.serving()
        for w in warnings:
            print(f"warning: {w}", file=sys.stderr)
        if releases is None:
            raise CliError(f"no valid {console.releases_path.name} to explain from")
        state = build_state(console.provider, releases, console.store)
        fabric = resolve_fabric(args.fabric, console.store)
        known = ledger(console.store)
        decider = stack.enter_context(_decider(console, args, releases))
        if args.nodes_from is None:
            decision = answer(state, known, fabric, defaults, now, decider)
            if args.json:
                print(json.dumps(as_json(args.node, decision)))
            else:
                version = f" version {decision.version}" if decision.version is not None else ""
                channel = f" (channel {decision.channel})" if decision.channel else ""
                print(f"node 0x{args.node:X} on fabric {fabric:016X}{channel}: "
                      f"{decision.status.label}{version}: {decision.reason}")
            return 0
        fabrics: dict[str, int] = {}
        batch: list[str] = []
        try:
            for fields in _lines(args.nodes_from, defaults):
                text: str | None = fields.get("fabric")
                f = fabric
                if text is not None:
                    if text not in fabrics:
                        fabrics[text] = resolve_fabric(text, console.store)
                    f = fabrics[text]
                decision = answer(state, known, f, fields, now, decider)
                batch.append(json.dumps(as_json(fields["node"], decision)))
                if len(batch) >= _BATCH:  # stream, but not one write per device
                    sys.stdout.write("\n".join(batch) + "\n")
                    batch.clear()
        except OSError as exc:
            raise CliError(f"{args.nodes_from}: {exc.strerror}") from None
        if batch:
            sys.stdout.write("\n".join(batch) + "\n")
    return 0


_BATCH = 512
