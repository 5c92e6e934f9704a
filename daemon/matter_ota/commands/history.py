"""`matter-ota history`: the audit log of every release transition."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from matter_ota.commands._common import add_config_options
from matter_ota.commands._console import channel_arg, open_console


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("history", help="the audit log: when, who, what, before -> after")
    add_config_options(p)
    p.add_argument("--channel", type=channel_arg, metavar="C", help="only this channel")
    p.add_argument("--limit", type=_positive, metavar="N", help="only the newest N entries")
    p.add_argument("--json", action="store_true", help="JSON lines for scripts")
    p.set_defaults(func=run)


def _positive(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 up, not {text!r}")
    return int(text)


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def diff(before: Any, after: Any) -> str:
    """``key: old -> new`` for each changed field (the whole row when one side is empty)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        side = after if isinstance(after, dict) else before
        if not isinstance(side, dict):
            return ""
        arrow = "(new) -> " if before is None else "-> (removed) "
        return arrow + ", ".join(f"{k}={v}" for k, v in side.items())
    parts = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        if old != new:
            parts.append(f"{key}: {'-' if old is None else old} -> {'-' if new is None else new}")
    return "; ".join(parts) or "(no change)"


def run(args: argparse.Namespace) -> int:
    with open_console(args) as console:
        entries = console.store.history(channel=args.channel, limit=args.limit)
    for e in entries:
        if args.json:
            print(json.dumps({"at": when(e.at), "actor": e.actor, "action": e.action,
                              "channel": e.channel, "product": e.product,
                              "before": e.before, "after": e.after, "reason": e.reason}))
        else:
            where = f"{e.channel}/{e.product}" if e.product else e.channel
            reason = f" ({e.reason})" if e.reason else ""
            print(f"{when(e.at)}  {e.actor:<12} {e.action:<20} {where:<22} "
                  f"{diff(e.before, e.after)}{reason}")
    if not entries and not args.json:
        print("no release transitions recorded yet")
    return 0
