"""systemd/matter-ota.service passes `systemd-analyze verify` (no unknown key, no bad value)
and its offline security exposure stays low."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "matter-ota.service"
ANALYZE = shutil.which("systemd-analyze")


def _copy(tmp_path: Path) -> Path:
    # verify checks that ExecStart is executable: point it at the installed console script.
    exe = Path(sys.executable).parent / "matter-ota"
    if not exe.exists():
        pytest.skip("the matter-ota console script is not installed next to this python")
    unit = tmp_path / "matter-ota.service"
    unit.write_text(UNIT.read_text().replace("/opt/matter-ota/bin/matter-ota", str(exe)))
    return unit


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = _copy(tmp_path)
    run = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "" and run.stderr.strip() == "", (
        run.stdout + run.stderr)


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_unit_security_exposure_is_low(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = _copy(tmp_path)
    run = subprocess.run([ANALYZE, "security", "--offline=true", str(unit)],
                         capture_output=True, text=True, timeout=60)
    if "--offline" in run.stderr and "unrecognized" in run.stderr:
        pytest.skip("this systemd-analyze has no --offline")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", run.stdout + run.stderr)
    assert match is not None, run.stdout + run.stderr
    assert float(match.group(1)) <= 2.0, run.stdout


def test_unit_has_the_essentials() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "StateDirectory=matter-ota",
                 "ConfigurationDirectory=matter-ota", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK",
                 "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
                 "MemoryDenyWriteExecute=yes", "LockPersonality=yes", "RestrictNamespaces=yes",
                 "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
                 "ProtectKernelLogs=yes", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text, line
