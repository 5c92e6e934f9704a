"""`matter-ota dcl`: the DCL source's state on disk, and clearing a quarantine.

``dcl status`` shows whether the ledger answers, what it listed per product, the verified
images and the quarantined downloads with their reasons (no network). ``dcl clear-quarantine``
lets the next query (or ``explain``) download and verify a quarantined entry again at once,
for an operator who knows the image host was fixed.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matter_ota.cli import CliError
from matter_ota.commands._common import add_config_options
from matter_ota.commands._console import load_provider_config, state_dir
from matter_ota.sources.dcl_cache import ImageCache
from matter_ota.sources.dcl_client import read_answers, read_status, resolve_base_url
from matter_ota.sources.dcl_status import ledger_line


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dcl", help="the DCL source: ledger status, cached images, quarantine")
    dcl_sub = p.add_subparsers(dest="dcl_command", metavar="ACTION", required=True)
    status = dcl_sub.add_parser("status", help="ledger reachability, answers, images, quarantine")
    add_config_options(status)
    status.add_argument("--json", action="store_true", help="one JSON object for scripts")
    status.set_defaults(func=run_status)
    clear = dcl_sub.add_parser(
        "clear-quarantine", help="let quarantined downloads be tried again now"
    )
    add_config_options(clear)
    clear.add_argument("keys", nargs="*", metavar="KEY", help="quarantine keys (dcl status)")
    clear.add_argument("--all", action="store_true", help="every quarantined download")
    clear.set_defaults(func=run_clear)


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _open(args: argparse.Namespace) -> tuple[str, Path, ImageCache]:
    provider = load_provider_config(args)
    base_url = resolve_base_url(provider.dcl.url)
    root = state_dir(args, provider)
    return base_url, root, ImageCache(root / "dcl", provider.dcl.cache_size)


def status_doc(args: argparse.Namespace) -> dict[str, Any]:
    base_url, root, cache = _open(args)
    status = read_status(root, base_url)
    products = []
    for (vid, pid), answer in sorted(read_answers(root, base_url).items()):
        products.append({
            "product": f"{vid:04X}:{pid:04X}",
            "fetched_at": _iso(answer.fetched_at),
            "versions": [
                {"version": mv.software_version, "usable": mv.unusable_reason() is None,
                 "why_not": mv.unusable_reason(), "min": mv.min_applicable,
                 "max": mv.max_applicable}
                for mv in answer.versions
            ],
        })
    images = []
    for meta in sorted(cache.images.glob("*.json")):
        try:
            doc = json.loads(meta.read_bytes())
        except (OSError, ValueError):
            continue
        images.append({"key": meta.stem, "version": doc.get("software_version"),
                       "bytes": doc.get("size"), "verified_at": _iso(doc.get("verified_at"))})
    return {
        "url": base_url,
        "ledger": ledger_line(status),
        "last_success": _iso(None if status is None else status.last_success),
        "last_error": None if status is None else status.last_error,
        "cache_bytes": cache.total_bytes(),
        "cache_limit": cache.max_bytes,
        "products": products,
        "images": images,
        "quarantined": [{"key": q.key, "reason": q.reason, "at": _iso(q.at), "url": q.url}
                        for q in sorted(cache.all_quarantined(), key=lambda q: q.key)],
    }


def run_status(args: argparse.Namespace) -> int:
    doc = status_doc(args)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    out = sys.stdout
    out.write(f"{doc['url']}: {doc['ledger']}\n")
    out.write(f"cache: {doc['cache_bytes']} of {doc['cache_limit']} bytes\n")
    for p in doc["products"]:
        listed = ", ".join(
            f"{v['version']}" + ("" if v["usable"] else " (unusable)") for v in p["versions"]
        ) or "no versions"
        out.write(f"product {p['product']} (asked {p['fetched_at']}): {listed}\n")
    for i in doc["images"]:
        out.write(f"image {i['key']}: version {i['version']}, {i['bytes']} bytes, verified "
                  f"{i['verified_at']}\n")
    for q in doc["quarantined"]:
        out.write(f"quarantined {q['key']} ({q['at']}): {q['reason']}\n")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    if not args.keys and not args.all:
        raise CliError("name the quarantined KEYs (see `matter-ota dcl status`) or give --all", 2)
    _, _, cache = _open(args)
    keys = [q.key for q in cache.all_quarantined()] if args.all else args.keys
    unknown = [k for k in keys if cache.quarantined(k) is None]
    if unknown:
        raise CliError(f"not quarantined: {', '.join(unknown)} (see `matter-ota dcl status`)")
    for key in keys:
        cache.clear_quarantine(key)
        print(f"cleared {key}: the next query or explain downloads and verifies it again")
    return 0
