#!/usr/bin/env python3
"""Benchmarks: ``scripts/bench.py <name> [options]``.

Each benchmark is a module ``scripts/bench_<name>.py`` exposing ``register(subparsers)``
(adding its sub-command with ``set_defaults(func=...)``); they are discovered, so adding one
touches no shared file. Figures are reported against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    sys.path[:0] = [str(HERE), str(HERE.parent / "daemon"), str(HERE.parent / "tests")]
    parser = argparse.ArgumentParser(prog="bench.py", description=__doc__)
    sub = parser.add_subparsers(dest="bench", metavar="NAME", required=True)
    for path in sorted(HERE.glob("bench_*.py")):
        importlib.import_module(path.stem).register(sub)
    args = parser.parse_args(argv)
    result: int | None = args.func(args)
    return result or 0


if __name__ == "__main__":
    sys.exit(main())
