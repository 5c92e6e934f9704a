"""matter.js from npm as an independent peer: installed once per version into `.cache/`.

    from matterjs_support import matterjs_dir, results, run_node
    prefix = matterjs_dir()                      # skips the test when node/npm are absent
    results(run_node("ota_image.cjs", prefix, "read", path))  # the harness's RESULT lines

Harness scripts live in tests/matterjs/; each takes the npm prefix as its first argument and
loads @matter/* from there. The cache (`<checkout>/.cache/matterjs-<version>/`, git-ignored, or
$MATTER_OTA_NPM_CACHE) survives between runs; concurrent installs are serialised by a lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

# Pinned: the harnesses are written against this API. 0.17.x numbers the OTA digest types as
# IANA does (0.16 swapped sha-384 and sha-512) and runs on Node 20.
MATTERJS_VERSION = "0.17.9"
PACKAGES = ("@matter/protocol", "@matter/general")

ROOT = Path(__file__).resolve().parent.parent
HARNESS_DIR = Path(__file__).resolve().parent / "matterjs"


def _cache_root() -> Path:
    override = os.environ.get("MATTER_OTA_NPM_CACHE")
    return Path(override) if override else ROOT / ".cache"


def _installed(prefix: Path) -> bool:
    for package in PACKAGES:
        manifest = prefix / "node_modules" / package / "package.json"
        if not manifest.exists() or json.loads(manifest.read_text())["version"] != MATTERJS_VERSION:
            return False
    return True


def matterjs_dir() -> Path:
    """The npm prefix holding the pinned @matter packages, installing them on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("matter.js interop needs node and npm on PATH")
    prefix = _cache_root() / f"matterjs-{MATTERJS_VERSION}"
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(prefix):
            manifest = prefix / "package.json"
            if not manifest.exists():
                manifest.write_text('{"name": "matter-ota-interop", "private": true}\n')
            specs = [f"{package}@{MATTERJS_VERSION}" for package in PACKAGES]
            result = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--save-exact", *specs],
                cwd=prefix,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0 or not _installed(prefix):
                pytest.fail(f"npm install of matter.js {MATTERJS_VERSION} failed:\n{result.stderr}")
    return prefix


def results(completed: subprocess.CompletedProcess[str]) -> list[Any]:
    """The JSON values a harness printed as ``RESULT <json>`` lines (other lines are logs)."""
    tag = "RESULT "
    return [
        json.loads(line[len(tag) :])
        for line in completed.stdout.splitlines()
        if line.startswith(tag)
    ]


def run_node(
    harness: str, prefix: Path, *args: str, stdin: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run tests/matterjs/<harness> with node; raises if node itself fails."""
    node = shutil.which("node")
    assert node is not None
    return subprocess.run(
        [node, str(HARNESS_DIR / harness), str(prefix), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
