"""``scripts/bench.py explain``: ``matter-ota explain --nodes-from`` over a large fleet.

Builds a site in a temporary directory (provider.yaml, a 10 % release of a generated image,
a state store whose ledger knows the whole fleet), writes a nodes file with every device,
and times the real command line (a fresh process, as an operator runs it). The baseline,
measured in the same run on the same site, is ``matter-ota releases --json``: the same
interpreter start, config load and store open, without the per-device work. Goal: < 2 s
wall for 10,000 devices.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CFID = "2906C908D115D362"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("explain", help="explain --nodes-from wall time over a large fleet")
    p.add_argument("--devices", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    p.set_defaults(func=run)


def _site(root: Path, devices: int) -> Path:
    from matter_ota.ota_image import build_image
    from matter_ota.store import DeviceRecord, Store

    config = root / "config"
    config.mkdir()
    provider = config / "provider.yaml"
    provider.write_text("state_dir: ../state\nfirmware_dir: ../firmware\n")
    (config / "releases.yaml").write_text("releases:\n")
    image = root / "light-2.ota"
    image.write_bytes(build_image(b"x" * 4096, vendor_id=0xFFF1, product_id=0x8001,
                                  software_version=2, software_version_string="2.0"))
    with Store.open(root / "state") as store:
        store.import_devices(
            DeviceRecord(CFID, node, 0xFFF1, 0x8001, 1, None, "production", 0.0, 0.0, "")
            for node in range(1, devices + 1))
    _cli(provider, "release", "--channel", "production", "--image", str(image),
         "--percent", "10")
    with open(root / "nodes.jsonl", "w") as f:
        for node in range(1, devices + 1):
            f.write(json.dumps({"node": node}) + "\n")
    return provider


def _cli(provider: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "matter_ota.cli", *args, "--config", str(provider)],
        env=env, capture_output=True, text=True, check=True,
    )
    return time.perf_counter() - start, done.stdout


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        root = Path(tmp)
        provider = _site(root, args.devices)
        explain = ("explain", "--fabric", CFID, "--vendor-id", "0xFFF1", "--product-id",
                   "0x8001", "--version", "1", "--nodes-from", str(root / "nodes.jsonl"))
        base, wall = [], []
        offered = 0
        for _ in range(args.runs):
            base.append(_cli(provider, "releases", "--json")[0])
            seconds, out = _cli(provider, *explain)
            wall.append(seconds)
            lines = out.splitlines()
            assert len(lines) == args.devices
            offered = sum('"UpdateAvailable"' in line for line in lines)
    b, w = statistics.median(base), statistics.median(wall)
    print(f"{'measure':<44} {'median s':>9} {'ratio':>7}")
    print(f"{'baseline: matter-ota releases --json':<44} {b:>9.3f} {1.0:>7.2f}")
    print(f"{f'explain --nodes-from, {args.devices} devices':<44} {w:>9.3f} {w / b:>7.2f}")
    per = (w - b) / args.devices * 1e6
    print(f"per device beyond the baseline: {per:.1f} us; offered {offered} of {args.devices} "
          f"(10 % release); goal < 2 s wall: {'met' if w < 2.0 else 'NOT met'}")
    return 0
