"""``bench.py cohort``: how close a rollout gets to percent x fleet, and whom it favours.

For each fleet size and percent, over many seeds, the devices report in a random order and
each is offered the release when it reports if it is selected then. Three rules:

- hash only (baseline, what a vendor console does): a device is in when its keyed hash falls
  under percent % of the hash space; the count is binomial;
- exact rank: the floor(p x N + u) lowest-ranked known devices, offered devices kept;
- ours (:class:`matter_ota.policy.cohort.CohortIndex`): the same ranking, with the count
  clamped between ceil(p x N - 1) and floor(p x N + u) around what the hash alone gives.

Columns: mean and worst |selected - p x N| in devices and the share of runs within one
device; and the share of the first tenth of devices to report that ended up selected next
to the share of the others (no bias toward early reporters: the two agree), when the fleet
grows from zero during the rollout (a provider installed with its fleet) and, for ours,
when the ledger knew the fleet before the release (the usual case: devices check in daily).
"""

from __future__ import annotations

import argparse
import random
import time

from matter_ota.policy.cohort import CohortIndex, hash_only_selected
from matter_ota.policy.model import DeviceRef


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("cohort", help="cohort accuracy and early-reporter table")
    p.add_argument("--devices-per-row", type=int, default=20_000,
                   help="devices simulated per row (runs = this / fleet size, at least "
                   "--seeds); default 20000")
    p.add_argument("--seeds", type=int, default=20, help="fewest runs per row (default 20)")
    p.add_argument("--sizes", default="20,100,1000,10000", help="fleet sizes")
    p.add_argument("--percents", default="1,10,25,50", help="rollout percents")
    p.set_defaults(func=run)


def _grow(seed: bytes, percent: int, fleet: list[DeviceRef], exact: bool) -> set[DeviceRef]:
    index = CohortIndex(seed, percent, exact=exact)
    for ref in fleet:
        index.add_known(ref)
        if index.is_selected(ref):
            index.mark_offered(ref)
    return index.selected()


def _known(seed: bytes, percent: int, fleet: list[DeviceRef]) -> set[DeviceRef]:
    index = CohortIndex(seed, percent, known=fleet)
    for ref in fleet:
        if index.is_selected(ref):
            index.mark_offered(ref)
    return index.selected()


def _cell(n: int, percent: int, runs: int, rng: random.Random) -> dict[str, float]:
    exact = percent * n / 100
    errors: dict[str, list[float]] = {"hash": [], "rank": [], "ours": []}
    early = {"rank": 0, "ours": 0, "ours_known": 0}
    rest = {"rank": 0, "ours": 0, "ours_known": 0}
    head_total = rest_total = 0
    for _ in range(runs):
        seed = rng.randbytes(16)
        fleet = [DeviceRef(rng.getrandbits(64), rng.getrandbits(64)) for _ in range(n)]
        rng.shuffle(fleet)  # the order in which the devices report
        head, tail = fleet[: max(1, n // 10)], fleet[max(1, n // 10):]
        head_total += len(head)
        rest_total += len(tail)
        errors["hash"].append(abs(sum(hash_only_selected(seed, percent, r) for r in fleet)
                                  - exact))
        for name, chosen in (("rank", _grow(seed, percent, fleet, True)),
                             ("ours", _grow(seed, percent, fleet, False)),
                             ("ours_known", _known(seed, percent, fleet))):
            if name != "ours_known":
                errors[name].append(abs(len(chosen) - exact))
            early[name] += sum(r in chosen for r in head)
            rest[name] += sum(r in chosen for r in tail)
    out: dict[str, float] = {}
    for name, errs in errors.items():
        out[f"{name}_mean"] = sum(errs) / runs
        out[f"{name}_max"] = max(errs)
        out[f"{name}_within"] = sum(e <= 1 for e in errs) / runs
    for name, hits in early.items():
        out[f"{name}_early"] = 100 * hits / head_total
        out[f"{name}_rest"] = 100 * rest[name] / rest_total
    return out


def run(args: argparse.Namespace) -> int:
    sizes = [int(x) for x in args.sizes.split(",")]
    percents = [int(x) for x in args.percents.split(",")]
    rng = random.Random(2026)
    start = time.perf_counter()
    print("random report order, one seed per run; error = |selected - p x N| in devices; "
          "first / rest = share of the first tenth of reporters selected / of the others")
    print()
    print("| devices | % | runs | p x N | hash only: mean / worst error, within 1 "
          "| exact rank: mean / worst error; first / rest, growing fleet "
          "| ours: mean / worst error, within 1 | ours: first / rest, growing fleet "
          "| ours: first / rest, known fleet |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        for percent in percents:
            runs = max(args.seeds, args.devices_per_row // n)
            c = _cell(n, percent, runs, rng)
            print(f"| {n:,} | {percent} | {runs} | {percent * n / 100:g} "
                  f"| {c['hash_mean']:.2f} / {c['hash_max']:.2f}, {c['hash_within']:.0%} "
                  f"| {c['rank_mean']:.2f} / {c['rank_max']:.2f}; "
                  f"{c['rank_early']:.1f} / {c['rank_rest']:.1f} % "
                  f"| {c['ours_mean']:.2f} / {c['ours_max']:.2f}, {c['ours_within']:.0%} "
                  f"| {c['ours_early']:.1f} / {c['ours_rest']:.1f} % "
                  f"| {c['ours_known_early']:.1f} / {c['ours_known_rest']:.1f} % |")
    print()
    print(f"({time.perf_counter() - start:.1f} s)")
    return 0
