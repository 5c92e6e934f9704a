"""``scripts/bench.py store``: state store write rates, ledger (NORMAL) vs durable (FULL).

A ledger write is one ``record_query`` (a short ``BEGIN IMMEDIATE`` transaction, as the
daemon makes per QueryImage), committed with ``synchronous=NORMAL``: safe against a crash of
the process, not fsynced. A durable write is one ``audit`` row (release transitions,
fabrics), fsynced (``synchronous=FULL``). Baseline, in the same run on the same disk: the
ledger write as shipped. The third row is what an fsync per ledger write would cost.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("store", help="state store writes per second (ledger vs durable)")
    p.add_argument("--writes", type=int, default=300)
    p.set_defaults(func=run)


def _rate(state: Path, writes: int, kind: str) -> float:
    from matter_ota.store import Store

    with Store.open(state) as store:
        def query(i: int) -> None:
            store.record_query(
                compressed_fabric_id="2906C908D115D362", node_id=i, vendor_id=0xFFF1,
                product_id=0x8001, software_version=1, hardware_version=None,
                channel="production", result="NotAvailable", now=float(i))

        def audit(i: int) -> None:
            store.audit(actor="bench", action="tick", now=float(i))

        write: Callable[[int], None] = audit if kind == "durable" else query
        if kind == "ledger-full":
            store._conn.execute("PRAGMA synchronous = FULL")
        start = time.perf_counter()
        for i in range(writes):
            write(i)
        return writes / (time.perf_counter() - start)


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-store-", dir=Path.cwd()) as tmp:
        rates = {kind: _rate(Path(tmp) / kind, args.writes, kind)
                 for kind in ("ledger", "durable", "ledger-full")}
    base = rates["ledger"]
    rows = (("baseline: ledger write (record_query, NORMAL)", "ledger"),
            ("durable write (audit row, FULL)", "durable"),
            ("ledger write if it were FULL", "ledger-full"))
    print(f"{'measure':<48} {'writes/s':>9} {'ratio':>7}")
    for label, kind in rows:
        print(f"{label:<48} {rates[kind]:>9.0f} {rates[kind] / base:>7.2f}")
    return 0
