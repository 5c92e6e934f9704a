"""``bench.py image``: `matter-ota image verify` of a large image against `sha256sum`.

A random payload of ``--size-mib`` MiB (default 512) is wrapped into an image in a temporary
directory (deleted afterwards). Then, alternately and ``--repeat`` times, both commands run as
subprocesses on the same file, page cache warm for both; the best wall time of each counts.
The baseline is coreutils ``sha256sum`` hashing the same file, so the ratio is our verify
speed over its speed (goal: >= 0.9). Peak memory of verify is read inside its process
(``VmHWM`` from /proc, and ``ru_maxrss``; goal: < 40 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from matter_ota import ota_image

DAEMON = Path(__file__).resolve().parent.parent / "daemon"

# Runs in the measured subprocess: the real CLI, then its own peak memory on stderr.
_VERIFY_CHILD = """
import json, re, resource, sys, time

def status(key):
    try:
        text = open("/proc/self/status").read()
    except OSError:
        return None
    return int(re.search(key + r":\\s+(\\d+) kB", text).group(1))

from matter_ota.cli import build_parser, main
build_parser(["image", "verify"])  # imports what main() imports for this command
imported = status("VmHWM")  # the CLI's imports alone
start = time.perf_counter()
code = main(["image", "verify", sys.argv[1]])
seconds = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"code": code, "seconds": seconds, "vmhwm_kib": status("VmHWM"),
                  "maxrss_kib": rss, "imports_kib": imported}), file=sys.stderr)
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("image", help="image verify vs sha256sum on a large image; peak RSS")
    p.add_argument("--size-mib", type=int, default=512, help="payload size (default 512 MiB)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each command (best counts)")
    p.add_argument("--dir", type=Path, default=None, help="where to write the temporary image")
    p.set_defaults(func=run)


def _write_payload(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)  # random once, varied per MiB: cheap to write, not compressible
    with open(path, "wb") as f:
        for i in range(size >> 20):
            f.write(i.to_bytes(8, "little") + block[8:])


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, str, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - start, done.stdout, done.stderr


def run(args: argparse.Namespace) -> int:
    sha256sum = shutil.which("sha256sum")
    if sha256sum is None:
        print("bench image: sha256sum (coreutils) not found", file=sys.stderr)
        return 1
    size = args.size_mib << 20
    env = {**os.environ, "PYTHONPATH": str(DAEMON)}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-image-") as tmp:
        payload, image = Path(tmp) / "payload.bin", Path(tmp) / "image.ota"
        _write_payload(payload, size)
        start = time.perf_counter()
        header = ota_image.create_image(
            payload,
            image,
            vendor_id=0xFFF1,
            product_id=0x8000,
            software_version=2,
            software_version_string="2.0",
        )
        create_seconds = time.perf_counter() - start
        payload.unlink()

        ours: list[float] = []
        inside: list[float] = []
        theirs: list[float] = []
        memory: dict[str, int | None] = {}
        for _ in range(args.repeat):
            seconds, out, _ = _timed([sha256sum, str(image)])
            theirs.append(seconds)
            assert out.split()[0] and len(out.split()[0]) == 64
            seconds, out, err = _timed([sys.executable, "-c", _VERIFY_CHILD, str(image)], env)
            report = json.loads(err.strip().splitlines()[-1])
            assert report["code"] == 0 and "valid" in out, (out, err)
            ours.append(seconds)
            inside.append(report["seconds"])
            memory = {k: report[k] for k in ("vmhwm_kib", "maxrss_kib", "imports_kib")}

    mib = header.total_size / (1 << 20)
    best_ours, best_theirs, best_inside = min(ours), min(theirs), min(inside)
    print(f"image verify, {args.size_mib} MiB payload, best of {args.repeat} (page cache warm)")
    print(f"{'measurement':48} {'seconds':>8} {'MiB/s':>8} {'vs sha256sum':>13}")
    rows = [
        ("sha256sum FILE (baseline)", best_theirs),
        ("matter-ota image verify FILE (process)", best_ours),
        ("  main(['image', 'verify', FILE]) after imports", best_inside),
        ("matter-ota image create (payload -> image)", create_seconds),
    ]
    for name, seconds in rows:
        print(f"{name:48} {seconds:8.3f} {mib / seconds:8.0f} {best_theirs / seconds:13.2f}")
    hwm, rss, imports = (memory.get(k) for k in ("vmhwm_kib", "maxrss_kib", "imports_kib"))
    print(f"peak memory of the verify process: VmHWM {hwm} KiB, ru_maxrss {rss} KiB (goal < 40 MB)")
    print(f"  of which the CLI's imports before verify: VmHWM {imports} KiB")
    print(f"speed ratio verify/sha256sum: {best_theirs / best_ours:.2f} (goal >= 0.9)")
    return 0
