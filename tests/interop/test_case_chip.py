"""CASE against connectedhomeip: our initiator, the SDK's CASEServer as responder.

Our CA issues both NOCs; the SDK's Python ``BareChipDeviceController`` installs its fabric and
answers CASE on its UDP port. Our initiator (``case_initiator.py``) must complete a full
handshake, then a resumed one (Sigma2_Resume), and on each session get the peer's encrypted
acknowledgement and answer to an Interaction Model request -- proof that the certificates, the
Sigma messages, every key derivation and the session keys match the reference implementation.
A Sigma1 naming a node that is not the peer must be refused with NO_SHARED_TRUST_ROOTS.
Everything runs inside a network namespace of the test's own.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matter_ota.crypto import certs
from matter_ota.fabrics import CertificateAuthority, FabricInfo

from .chip_controller import private_root_command, sdk_namespace
from .daemon import serve
from .netns import Namespace

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
OUR_NODE, CHIP_NODE = 0x0000_0000_0000_1001, 0x0000_0000_0001_B669


@pytest.fixture
def ns() -> Iterator[Namespace]:
    with sdk_namespace("case") as namespace:
        yield namespace


class ChipController:
    """The SDK controller process on our fabric; stopped (by its PID) on exit."""

    def __init__(self, ns: Namespace, scratch: Path, fabric: dict[str, Any], *extra: str) -> None:
        self.data = scratch / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "fabric.json").write_text(json.dumps(fabric))
        self.log_path = scratch / "controller.log"
        command = private_root_command(
            scratch,
            sys.executable, "-X", "faulthandler", str(HERE / "case_chip_peer.py"),
            "--storage", "/data/controller.json", "--fabric", "/data/fabric.json",
            "--port-file", "/data/port.json", "--stop-file", "/data/stop", *extra,
        )  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ns.wrap(command), stdout=log, stderr=subprocess.STDOUT, cwd=CHECKOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def port(self, timeout: float = 60.0) -> int:
        """The SDK's IPv6 UDP port, once the controller is up.

        The SDK binds its IPv6 transport first and logs ``UDP::Init bound to port=N``; its
        mDNS sockets are wildcard UDP sockets too, so /proc alone cannot tell them apart.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if (self.data / "port.json").exists():
                bound = re.findall(r"UDP::Init bound to port=(\d+)", self.log())
                ipv6 = json.loads((self.data / "port.json").read_text())["udp6"]
                assert bound and int(bound[0]) in ipv6, self.log()
                return int(bound[0])
            time.sleep(0.05)
        raise AssertionError(f"controller did not start:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        (self.data / "stop").touch()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_initiator(ns: Namespace, fabric_path: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "daemon"))
    command = [sys.executable, str(HERE / "case_initiator.py"), "--fabric", str(fabric_path),
               *args]  # fmt: skip
    proc = subprocess.run(
        ns.wrap(command), capture_output=True, text=True, timeout=120, env=env, cwd=CHECKOUT
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[len("RESULT ") :])
            result["log"] = proc.stderr[-4000:]
            return result
    raise AssertionError(f"initiator printed no result:\n{proc.stdout}\n{proc.stderr}")


def _fabrics(tmp_path: Path) -> tuple[FabricInfo, Path, dict[str, Any]]:
    """Ours (as a file for our side) and the SDK's (certificates in X.509, as it takes them)."""
    ca = CertificateAuthority(fabric_id=0x0000_0000_0000_0F0F, now=int(time.time()))
    ours = ca.issue(OUR_NODE)
    chip_fabric = ca.issue(CHIP_NODE)
    ours_path = tmp_path / "ours.json"
    ours_path.write_text(json.dumps(ours.to_dict()))
    x509_form = dict(chip_fabric.to_dict())
    for name in ("rcac", "icac", "noc"):
        tlv_form = getattr(chip_fabric, name)
        x509_form[name] = certs.to_x509(certs.decode(tlv_form)).hex() if tlv_form else None
    return ours, ours_path, x509_form


def test_case_with_connectedhomeip_responder(ns: Namespace, tmp_path: Path) -> None:
    _, ours_path, x509_form = _fabrics(tmp_path)
    responder = ChipController(ns, tmp_path / "controller", x509_form)
    try:
        port = responder.port()
        target = ("--ip", ns.controller_v6, "--port", str(port))
        result = run_initiator(ns, ours_path, "--peer-node-id", hex(CHIP_NODE), *target)
        where = f"{json.dumps(result, indent=1)}\ncontroller:\n{responder.log()[-6000:]}"
        assert result["ok"], where
        full, resumed = result["attempts"]
        assert full["established"] and not full["resumed"], where
        assert resumed["established"] and resumed["resumed"], where
        for attempt in (full, resumed):
            # acked and answered in the session's keys (IM protocol 0x0001)
            assert attempt["acked"] and attempt["replies"][0][0] == 0x0001, where

        wrong = run_initiator(
            ns, ours_path, "--peer-node-id", hex(CHIP_NODE + 1), "--attempts", "1", *target
        )
        [refused] = wrong["attempts"]
        assert not refused["established"], wrong
        assert refused["error"] == "FAILURE/0x00000000/0x0001", wrong  # NO_SHARED_TRUST_ROOTS
    finally:
        responder.stop()


def test_connectedhomeip_initiator_opens_case_to_our_daemon(ns: Namespace, tmp_path: Path) -> None:
    """The daemon's real role: a device's CASE stack finds us by operational discovery and
    connects; the second time it resumes."""
    ours, ours_path, x509_form = _fabrics(tmp_path)
    with serve(
        ns, tmp_path / "daemon", "--port", "5540", "--fabric-file", str(ours_path),
        "--mdns-interface", "dev0",
    ) as daemon:
        assert daemon.wait_for("event=case_enabled fabrics=1"), daemon.log()
        # The daemon's own DNS-SD record is what the SDK resolves (runtime/mdns.py).
        instance = ours.operational_instance_name()
        assert daemon.wait_for(f"event=mdns_published instance={instance}._matter._tcp"), \
            daemon.log()
        controller = ChipController(
            ns, tmp_path / "controller", x509_form,
            "--connect", hex(OUR_NODE), "--result-file", "/data/result.json",
        )  # fmt: skip
        try:
            controller.proc.wait(timeout=120)
            result_path = controller.data / "result.json"
            where = f"controller:\n{controller.log()[-6000:]}\ndaemon:\n{daemon.log()[-4000:]}"
            assert result_path.exists(), where
            first, second = json.loads(result_path.read_text())["attempts"]
            assert first["ok"] and second["ok"], f"{first} {second}\n{where}"
            assert daemon.wait_for("event=case_established role=responder resumed=false"), where
            assert daemon.wait_for("event=case_established role=responder resumed=true"), where
        finally:
            controller.stop()
