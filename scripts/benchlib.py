"""What several benchmarks share (not a benchmark itself: ``bench.py`` loads ``bench_*.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable


def calls_per_second(
    fn: Callable[[], object], seconds: float, *, batch: int = 100, warmup: int = 200
) -> float:
    """How many calls of ``fn`` a second, over at least ``seconds`` of wall time.

    ``warmup`` calls first (caches, lazy imports); then the clock is read once per ``batch``
    calls, so that reading it costs little against cheap calls.
    """
    for _ in range(warmup):
        fn()
    count, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            fn()
        count += batch
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)
