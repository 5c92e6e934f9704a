"""What ``matter-ota releases`` shows about DCL rows, read from the state dir (no network).

The daemon records the ledger's answers (``dcl/ledger.json``), how talking to the ledger went
(``dcl/status.json``), the verified images and the quarantine; this module reads them back for
another process, so the table shows the ledger's current version for a product, whether its
image is cached, every quarantined file with its reason, and whether the ledger is reachable.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matter_ota.config import DclConfig
from matter_ota.policy.model import Product
from matter_ota.sources.dcl_cache import cache_key
from matter_ota.sources.dcl_client import DclStatus, read_answers, read_status, resolve_base_url
from matter_ota.sources.dcl_decide import designator
from matter_ota.sources.dcl_ledger import ModelVersion


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class DclRowFacts:
    """The DCL side of one release row (channel, product)."""

    product: Product
    version: int | None  # the newest usable version the ledger lists (any device)
    version_string: str | None
    image: str | None  # the BDX designator when that version's image is verified on disk
    fetched_at: float | None
    quarantined: tuple[str, ...]  # "version N: reason" for this product
    ledger: str  # one line: reachable / unreachable since ... / never asked

    def to_json(self) -> dict[str, Any]:
        return {
            "product": str(self.product),
            "dcl_version": self.version,
            "dcl_version_string": self.version_string,
            "dcl_image": self.image,
            "dcl_fetched_at": _iso(self.fetched_at),
            "dcl_quarantined": list(self.quarantined),
            "dcl_ledger": self.ledger,
        }


def ledger_line(status: DclStatus | None, now: float | None = None) -> str:
    """One line on the ledger's reachability, for the table's footer and the JSON."""
    if status is None or (status.last_success is None and status.last_error is None):
        return "DCL not asked yet"
    if status.consecutive_failures == 0:
        return f"DCL reachable (last answer {_iso(status.last_success)})"
    now = time.time() if now is None else now
    retry = ""
    if status.next_retry_at is not None:
        retry = f"; next try in {max(0, int(status.next_retry_at - now))} s"
    served = (
        f"serving the answers of {_iso(status.last_success)}"
        if status.last_success is not None
        else "nothing cached"
    )
    return (
        f"DCL unreachable ({status.consecutive_failures} failures, last: {status.last_error})"
        f"{retry}; {served}"
    )


def dcl_row_facts(
    config: DclConfig, state_dir: Path, products: list[Product], now: float | None = None
) -> dict[Product, DclRowFacts]:
    """The DCL facts of ``products`` as the daemon last recorded them."""
    base_url = resolve_base_url(config.url)
    answers = read_answers(state_dir, base_url)
    line = ledger_line(read_status(state_dir, base_url), now)
    quarantine_dir = state_dir / "dcl" / "quarantine"
    facts: dict[Product, DclRowFacts] = {}
    for product in products:
        answer = answers.get((product.vendor_id, product.product_id))
        usable: list[ModelVersion] = []
        if answer is not None:
            usable = [mv for mv in answer.versions if mv.unusable_reason() is None]
        newest = max(usable, key=lambda mv: mv.software_version, default=None)
        image = None
        if (
            newest is not None
            and (state_dir / "dcl" / "images" / f"{cache_key(newest)}.json").exists()
        ):
            image = designator(newest)
        prefix = f"{product.vendor_id:04x}-{product.product_id:04x}-"
        quarantined: list[str] = []
        for record in sorted(quarantine_dir.glob(f"{prefix}*.json")):
            try:
                doc = json.loads(record.read_bytes())
                quarantined.append(f"version {doc['version']}: {doc['reason']}")
            except (OSError, ValueError, KeyError, TypeError):
                continue
        facts[product] = DclRowFacts(
            product=product,
            version=None if newest is None else newest.software_version,
            version_string=None if newest is None else newest.software_version_string,
            image=image,
            fetched_at=None if answer is None else answer.fetched_at,
            quarantined=tuple(quarantined),
            ledger=line,
        )
    return facts
