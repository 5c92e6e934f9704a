"""connectedhomeip's Python controller opens PASE sessions to our daemon.

The first proof that our SPAKE2+, PASE messages, message layer and MRP interoperate with the
reference implementation. Runs inside a network namespace of its own (see ``netns.py``); the
controller runs in a private root so that its hard-coded ``/data`` files stay in a temp dir.
PASE needs no attestation, so the PAA trust store may be empty when the shared test
credentials are absent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .chip_controller import run_controller
from .daemon import serve
from .netns import Namespace

pytestmark = pytest.mark.interop

PASSCODE = 20202021
DISCRIMINATOR = 3840


def daemon_args(port: int = 5540) -> tuple[str, ...]:
    return ("--passcode", str(PASSCODE), "--discriminator", str(DISCRIMINATOR),
            "--port", str(port))


@pytest.mark.parametrize("family", ["ipv6", "ipv4"])
def test_chip_controller_establishes_pase(ns: Namespace, tmp_path: Path, family: str) -> None:
    address = ns.device_v6 if family == "ipv6" else ns.device_v4
    with serve(ns, tmp_path / "daemon", *daemon_args()) as daemon:
        outcome = run_controller(ns, tmp_path / "controller", "pase", "--ip", address,
                                 "--passcode", str(PASSCODE), "--timeout", "30")
        assert outcome.ok, f"controller: {outcome.result}\n{outcome.log[-4000:]}\n" \
                           f"daemon:\n{daemon.log()}"
        assert daemon.wait_for("event=session_established kind=pase"), daemon.log()
        assert "event=pase_established" in daemon.log()


def test_chip_controller_wrong_passcode_fails(ns: Namespace, tmp_path: Path) -> None:
    with serve(ns, tmp_path / "daemon", *daemon_args()) as daemon:
        outcome = run_controller(ns, tmp_path / "controller", "pase", "--ip", ns.device_v6,
                                 "--passcode", str(PASSCODE + 1), "--timeout", "30")
        assert not outcome.ok
        # The controller fails fast on our cB (not a timeout) and says why...
        assert outcome.result["error"] == "chip", outcome.result
        assert "Failed to verify peer's MAC" in outcome.log
        # ...and tells us so with a FAILURE / INVALID_PARAMETER StatusReport (4.11.1.4).
        assert daemon.wait_for("event=pase_failed"), daemon.log()
        failed = re.search(r"event=pase_failed .*reason=peer reported (\S+)", daemon.log())
        assert failed is not None, daemon.log()
        assert failed.group(1) == "FAILURE/0x00000000/0x0002"
        assert "kind=pase" not in daemon.log()
        # The window stays open: the right passcode still works afterwards.
        outcome = run_controller(ns, tmp_path / "controller2", "pase", "--ip", ns.device_v6,
                                 "--passcode", str(PASSCODE), "--timeout", "30")
        assert outcome.ok, outcome.log[-4000:]
