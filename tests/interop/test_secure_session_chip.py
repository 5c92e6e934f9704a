"""The secure message path against connectedhomeip: after PASE, its controller sends an IM Read
over the PASE session.

Whatever the read's outcome (until the IM server exists our node has no handler for it), the
message layer is proven both ways: our node must decrypt the controller's AES-CCM message to
acknowledge it, and the controller must decrypt our acknowledgement (or answer) to take the
ReadRequest off its retransmission table.
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


def test_chip_controller_message_over_pase_session(ns: Namespace, tmp_path: Path) -> None:
    with serve(ns, tmp_path / "daemon", "--passcode", str(PASSCODE), "--discriminator", "3840",
               "--log-level", "DEBUG") as daemon:
        outcome = run_controller(ns, tmp_path / "controller", "pase-read", "--ip", ns.device_v6,
                                 "--passcode", str(PASSCODE), "--timeout", "30")
        log = daemon.log()
    assert outcome.ok, f"{outcome.result}\n{outcome.log[-4000:]}\ndaemon:\n{log}"
    # The controller's ReadRequest, sent on the secure (S) session...
    sent = re.search(r"<<< \[E:\d+i S:\d+ M:(\d+)\] \(S\) Msg TX .* Type 0001:02", outcome.log)
    assert sent is not None, outcome.log[-4000:]
    # ...was acknowledged by us and the controller could read our encrypted ack.
    assert f"Rxd Ack; Removing MessageCounter:{sent.group(1)} " in outcome.log, \
        f"{outcome.log[-4000:]}\ndaemon:\n{log}"
    assert re.search(r">>> \[E:\d+i S:\d+ M:\d+ \(Ack:" + sent.group(1) + r"\)\] \(S\) Msg RX",
                     outcome.log), outcome.log[-4000:]
    assert "integrity" not in log, log
