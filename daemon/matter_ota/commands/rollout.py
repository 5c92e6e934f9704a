"""The release console's operations: `release`, `stop`, `resume`, `increase`, `source`.

Each is one validated, atomic edit of releases.yaml plus an audit row (see
:mod:`matter_ota.operations`); a running daemon applies it within two seconds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from matter_ota.cli import CliError
from matter_ota.commands._common import add_config_options
from matter_ota.commands._console import (
    channel_arg,
    open_console,
    percent_arg,
    product_arg,
    usage_error,
)
from matter_ota.operations import Change, Console
from matter_ota.policy.model import Release, Source


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "release", help="release an image to a channel (a new set of devices or the same set)",
        description="Release an OTA image file to a percentage of a channel's devices. The "
        "image is verified and copied into the firmware folder. --new-set draws a new random "
        "set of devices (a new cohort seed); --same-set keeps the current devices and percent "
        "and replaces the image. The product comes from the image header.",
    )
    _common(p, product_required=False)
    p.add_argument("--image", type=Path, required=True, metavar="FILE", help="OTA image file")
    p.add_argument("--percent", type=percent_arg, metavar="N",
                   help="rollout percent, an integer 1-100 (required for a new set)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--new-set", dest="same_set", action="store_false", default=None,
                      help="a new random set of devices (new cohort seed)")
    mode.add_argument("--same-set", dest="same_set", action="store_true",
                      help="the devices of the current release (same seed, same percent)")
    p.set_defaults(func=run_release)

    p = sub.add_parser("stop", help="stop a release: no new devices get it (INACTIVE)")
    _common(p)
    p.set_defaults(func=lambda a: _simple(a, "stop"))

    p = sub.add_parser("resume", help="resume a stopped release: the same devices, same percent")
    _common(p)
    p.set_defaults(func=lambda a: _simple(a, "resume"))

    p = sub.add_parser("increase", help="grow a release's rollout percent (never shrinks)")
    _common(p)
    p.add_argument("--percent", type=percent_arg, required=True, metavar="N",
                   help="new rollout percent, larger than now")
    p.set_defaults(func=lambda a: _simple(a, "increase"))

    p = sub.add_parser(
        "source", help="switch a channel's image source between local files and the DCL",
        description="dcl: the channel follows the CSA Distributed Compliance Ledger (its rows "
        "become read-only). local: the DCL release stops; release a local image next. Asks "
        "for confirmation on a terminal; elsewhere (scripts) --yes is required.",
    )
    _common(p)
    p.add_argument("source", choices=[s.value for s in Source], help="local or dcl")
    p.add_argument("--percent", type=percent_arg, metavar="N",
                   help="rollout percent of the DCL release (default 100)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=run_source)


def _common(p: argparse.ArgumentParser, *, product_required: bool = False) -> None:
    add_config_options(p)
    p.add_argument("--channel", type=channel_arg, required=True, metavar="C",
                   help="release channel (production, or one defined in provider.yaml)")
    p.add_argument("--product", type=product_arg, metavar="VID:PID",
                   required=product_required,
                   help="product in hex, e.g. FFF1:8001 (needed when the channel has releases "
                   "for several products)")


def describe(release: Release) -> str:
    """One line: where the release stands now."""
    what = (f"image {release.image} (version {release.version})" if release.image
            else "images from the DCL")
    line = (f"{release.key}: {release.status.value}, {release.rollout_percent} % of devices, "
            f"{what}, cohort {release.cohort_seed[:8]}")
    if release.stop_reason:
        line += f" ({release.stop_reason})"
    return line


def _report(change: Change) -> None:
    print(f"{change.action}: {describe(change.after)}")


def run_release(args: argparse.Namespace) -> int:
    with open_console(args) as console:
        change = console.release(channel=args.channel, image=args.image, percent=args.percent,
                                 same_set=args.same_set, product=args.product)
    _report(change)
    return 0


_SIMPLE: dict[str, Callable[[Console, argparse.Namespace], Change]] = {
    "stop": lambda c, a: c.stop(a.channel, a.product),
    "resume": lambda c, a: c.resume(a.channel, a.product),
    "increase": lambda c, a: c.increase(a.channel, a.percent, a.product),
}


def _simple(args: argparse.Namespace, op: str) -> int:
    with open_console(args) as console:
        change = _SIMPLE[op](console, args)
    _report(change)
    return 0


def _confirm(question: str) -> bool:
    print(f"{question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() in ("y", "yes")


def run_source(args: argparse.Namespace) -> int:
    to = Source(args.source)
    if not args.yes:
        if not sys.stdin.isatty():
            raise usage_error(
                f"switching channel {args.channel!r} to {to.value} changes what devices are "
                "offered; confirm with --yes (no terminal to ask on)"
            )
        effect = ("devices of the channel will follow the DCL's newest valid version"
                  if to is Source.DCL else "the DCL release stops; release a local image next")
        if not _confirm(f"Switch channel {args.channel!r} to {to.value}? ({effect})"):
            raise CliError("not confirmed; nothing changed")
    with open_console(args) as console:
        changes = console.switch_source(args.channel, to, args.product, args.percent)
    for change in changes:
        _report(change)
    return 0
