"""Memory: a 256 MiB image crosses an in-memory node pair without RSS growing with its size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_256_mib_transfer_in_constant_memory(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent / "daemon"), str(HERE)])
    out = subprocess.run(
        [sys.executable, str(HERE / "bdx_memory_main.py"), str(tmp_path), "256"],
        capture_output=True, text=True, timeout=600, check=True, env=env,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["bytes"] == result["file_bytes"] > 256 << 20
    assert result["payload_size"] == 256 << 20 and result["digest_ok"]
    growth_mib = (result["rss_after_kib"] - result["rss_before_kib"]) / 1024
    # Proportional growth would be >= 256 MiB; allow a few MiB of allocator noise.
    assert growth_mib < 16, result
