"""``bench.py cohort``: how close a rollout gets to percent x fleet, hash-only vs ours.

For each fleet size and percent, over several seeds: the devices report in a random order
(the fleet grows from zero during the rollout, the hardest case for ours); each is offered
the release when it reports if it is selected then. At the end we count the selected
devices and compare with percent x N.

- hash-only (baseline, what a vendor console does): a device is in when its keyed hash
  falls under percent % of the hash space; the count is binomial.
- ours (:class:`matter_ota.policy.cohort.CohortIndex`): the count is floor(p x N + u).

Columns: mean and worst |count - p x N| in devices, the share of runs within one device,
and for ours the share of the first tenth of reporters that ended up selected (no bias
toward early reporters means about p), in two cases: the ledger knew the fleet before
the release (the usual case: devices check in daily) and the fleet grows from zero
during the rollout (a provider installed together with its fleet).
"""

from __future__ import annotations

import argparse
import random
import time

from matter_ota.policy.cohort import CohortIndex, hash_only_selected
from matter_ota.policy.model import DeviceRef


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cohort", help="cohort accuracy table: hash-only vs ours")
    p.add_argument("--seeds", type=int, default=20,
                   help="seeds per row, at least (small fleets get more: 20,000 devices a row)")
    p.add_argument("--sizes", default="20,100,1000,10000", help="fleet sizes")
    p.add_argument("--percents", default="1,10,25,50", help="rollout percents")
    p.set_defaults(func=run)


def _cell(n: int, percent: int, seeds: int, rng: random.Random) -> dict[str, float]:
    exact = percent * n / 100
    hash_err: list[float] = []
    ours_err: list[float] = []
    early_hits = early_total = known_hits = 0
    for trial in range(seeds):
        seed = rng.randbytes(16)
        fleet = [DeviceRef(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(n)]
        rng.shuffle(fleet)  # the order in which the devices report
        hash_err.append(abs(sum(hash_only_selected(seed, percent, r) for r in fleet) - exact))
        index = CohortIndex(seed, percent)
        for ref in fleet:
            index.add_known(ref)
            if index.is_selected(ref):
                index.mark_offered(ref)
        chosen = index.selected()
        ours_err.append(abs(len(chosen) - exact))
        head = fleet[: max(1, n // 10)]
        early_hits += sum(r in chosen for r in head)
        early_total += len(head)
        # The usual case: the ledger knew the fleet before the release (devices check in
        # daily); they then ask in a random order.
        known = CohortIndex(seed, percent, known=fleet)
        for ref in fleet:
            if known.is_selected(ref):
                known.mark_offered(ref)
        known_hits += sum(known.is_selected(r) for r in head)
        del trial
    return {
        "hash_mean": sum(hash_err) / seeds,
        "hash_max": max(hash_err),
        "hash_within": sum(e < 1 for e in hash_err) / seeds,
        "ours_mean": sum(ours_err) / seeds,
        "ours_max": max(ours_err),
        "ours_within": sum(e < 1 for e in ours_err) / seeds,
        "early": 100 * early_hits / early_total,
        "early_known": 100 * known_hits / early_total,
    }


def run(args: argparse.Namespace) -> int:
    sizes = [int(x) for x in args.sizes.split(",")]
    percents = [int(x) for x in args.percents.split(",")]
    rng = random.Random(2026)
    start = time.perf_counter()
    print("random arrival order, one seed per run; error = |selected - p x N| in devices")
    print()
    print("| devices | % | runs | p x N | hash-only: mean / worst error | within 1 "
          "| ours: mean / worst error | within 1 | ours: first 10 % of reporters selected, "
          "known fleet / growing fleet |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for percent in percents:
            runs = max(args.seeds, 20_000 // n)
            c = _cell(n, percent, runs, rng)
            print(f"| {n:,} | {percent} | {runs} | {percent * n / 100:g} "
                  f"| {c['hash_mean']:.2f} / {c['hash_max']:.2f} | {c['hash_within']:.0%} "
                  f"| {c['ours_mean']:.2f} / {c['ours_max']:.2f} | {c['ours_within']:.0%} "
                  f"| {c['early_known']:.1f} % / {c['early']:.1f} % |")
    print()
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0
