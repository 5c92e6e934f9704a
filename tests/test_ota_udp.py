"""The daemon as people run it: ``matter-ota serve`` in a temporary directory on [::1], a fleet
of emulated requestors (our CASE initiator, IM invoke, BDX receiver) over UDP on loopback, and
the daemon's own store afterwards (``scripts/fleet.py udp``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def fleet(*args: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "fleet.py"), *args],
                         capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_fleet_over_udp_against_the_daemon() -> None:
    out = fleet("udp", "--devices", "12", "--timeout", "120")
    assert out["results"] == {"updated": 12}, out
    assert out["daemon_outcomes"] == {"offered": 0, "downloading": 0, "applied": 12,
                                      "failed": 0}
    assert out["daemon_transfers"] == {"completed": 12}


def test_fleet_in_memory_at_ten_percent() -> None:
    out = fleet("memory", "--devices", "100", "--percent", "10", "--second-round")
    assert 9 <= int(str(out["offered"])) <= 11, out
    assert out["updated"] == out["offered"]
