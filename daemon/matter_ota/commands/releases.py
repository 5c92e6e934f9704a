"""`matter-ota releases`: the live releases table (people) or a JSON list (scripts)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

from matter_ota.commands._common import add_config_options
from matter_ota.commands._console import open_console, state_dir
from matter_ota.config import ReleasesConfig
from matter_ota.operations import Console
from matter_ota.policy.model import Release, Source
from matter_ota.sources.dcl_status import dcl_row_facts

COLUMNS = ("IMAGE", "CHANNEL", "PRODUCT", "VERSION", "SOURCE", "STATUS", "ROLLOUT",
           "RELEASED AT", "EDITABLE", "OFFERED", "DOWNLOADING", "APPLIED", "FAILED", "NOTE")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("releases", help="the releases table with rollout counts")
    add_config_options(p)
    p.add_argument("--json", action="store_true", help="a JSON list for scripts")
    p.set_defaults(func=run)


def iso(release: Release) -> str:
    return release.released_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rows(console: Console, config: ReleasesConfig,
         state: Path | None = None) -> list[dict[str, Any]]:
    """One object per release, in file order, with the store's outcome counts. DCL rows
    carry what the daemon last learnt from the ledger (``dcl``: the version it lists, the
    cached image, quarantined files with their reasons, whether the ledger answers)."""
    dcl_products = sorted({r.product for r in config.releases if r.source is Source.DCL})
    facts = dcl_row_facts(console.provider.dcl, state or console.provider.state_dir,
                          dcl_products) if dcl_products else {}
    out: list[dict[str, Any]] = []
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
        fact = facts.get(r.product) if r.source is Source.DCL else None
        if fact is not None:
            out[-1]["version"] = fact.version
            out[-1]["dcl"] = {
                "version_string": fact.version_string, "image": fact.image,
                "fetched_at": fact.to_json()["dcl_fetched_at"],
                "quarantined": list(fact.quarantined), "ledger": fact.ledger,
            }
    return out


def _note(row: dict[str, Any], stop_reason: str) -> str:
    dcl = row.get("dcl")
    if dcl is None:
        return stop_reason
    parts = [stop_reason] if stop_reason else []
    parts += [f"quarantined {q}" for q in dcl["quarantined"]]
    parts.append(dcl["ledger"])
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    with open_console(args) as console:
        config, warnings = console.serving()
        table = rows(console, config, state_dir(args, console.provider)) \
            if config is not None else []
        notes = {(r.channel, str(r.product)): r.stop_reason or ""
                 for r in (config.releases if config is not None else ())}
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    if not table:
        print("no releases" + ("" if config is not None else " (no valid config to show)"))
        return 0
    cells = [list(COLUMNS)]
    for row in table:
        cells.append([
            row["image"] or (row.get("dcl") or {}).get("image") or "(dcl)",
            row["channel"], row["product"],
            "-" if row["version"] is None else str(row["version"]), row["source"],
            row["status"], f"{row['rollout_percent']}%", row["released_at"],
            "yes" if row["editable"] else "no (dcl)", str(row["offered"]),
            str(row["downloading"]), str(row["applied"]), str(row["failed"]),
            _note(row, notes[(row["channel"], row["product"])]),
        ])
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return 0
