"""`matter-ota releases`: the live releases table (people) or a JSON list (scripts)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC
from typing import Any

from matter_ota.commands._common import add_config_options
from matter_ota.commands._console import open_console
from matter_ota.commands.status import daemon_note
from matter_ota.config import ReleasesConfig
from matter_ota.operations import Console
from matter_ota.policy.model import Release

COLUMNS = ("IMAGE", "CHANNEL", "PRODUCT", "VERSION", "SOURCE", "STATUS", "ROLLOUT",
           "RELEASED AT", "EDITABLE", "OFFERED", "DOWNLOADING", "APPLIED", "FAILED", "NOTE")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("releases", help="the releases table with rollout counts")
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="a JSON list for scripts")
    p.set_defaults(func=run)


def iso(release: Release) -> str:
    return release.released_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rows(console: Console, config: ReleasesConfig) -> list[dict[str, Any]]:
    """One object per release, in file order, with the store's outcome counts."""
    out = []
    for r in config.releases:
        counts = console.store.outcome_counts(
            r.channel, r.product.vendor_id, r.product.product_id, r.version,
            since=None if r.version is not None else r.released_at.timestamp(),
        )
        out.append({
            "channel": r.channel,
            "product": str(r.product),
            "image": r.image,
            "version": r.version,
            "source": r.source.value,
            "status": r.status.value,
            "rollout_percent": r.rollout_percent,
            "released_at": iso(r),
            "editable": r.editable,
            "offered": counts.offered,
            "downloading": counts.downloading,
            "applied": counts.applied,
            "failed": counts.failed,
        })
    return out


def run(args: argparse.Namespace) -> int:
    with open_console(args) as console:
        config, warnings = console.serving()
        note = daemon_note(console.store, (console.provider.path, console.releases_path),
                           time.time())
        table = rows(console, config) if config is not None else []
        notes = {(r.channel, str(r.product)): r.stop_reason or ""
                 for r in (config.releases if config is not None else ())}
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if note is not None:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    if not table:
        print("no releases" + ("" if config is not None else " (no valid config to show)"))
        return 0
    cells = [list(COLUMNS)]
    for row in table:
        cells.append([
            row["image"] or "(dcl)", row["channel"], row["product"],
            "-" if row["version"] is None else str(row["version"]), row["source"],
            row["status"], f"{row['rollout_percent']}%", row["released_at"],
            "yes" if row["editable"] else "no (dcl)", str(row["offered"]),
            str(row["downloading"]), str(row["applied"]), str(row["failed"]),
            notes[(row["channel"], row["product"])],
        ])
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0
