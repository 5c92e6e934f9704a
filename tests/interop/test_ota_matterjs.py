"""An OTA requestor we did not write downloads an image from our daemon: matter.js 0.17.9's
``OtaSoftwareUpdateRequestorServer`` (npm @matter/node) as a real device.

Inside a network namespace of the test's own: our daemon serves a release of a generated image
(advertised operationally); matter.js runs a commissionable device with the OTA Requestor
cluster; connectedhomeip's controller, on the fabric our CA issued, commissions it (NOC signed
by our CA) and sends AnnounceOTAProvider naming our daemon. matter.js then discovers us, opens
CASE, QueryImage, downloads over BDX, validates the image (header, product, digest) and asks
ApplyUpdate; its applyUpdate hook reports the file it got, which must be our image byte for byte.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matter_ota.crypto import certs
from matter_ota.fabrics import CertificateAuthority, FabricInfo, private_key_bytes

from .chip_controller import private_root_command, sdk_namespace
from .daemon import serve
from .netns import Namespace
from .test_ota_chip import _site

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
OUR_NODE, CHIP_NODE, REQUESTOR_NODE = 0x1001, 0x1B669, 0x2002
MATTERJS = "0.17.9"
PACKAGES = ("@matter/main", "@matter/node")
PASSCODE, DISCRIMINATOR, DEVICE_PORT = 20202021, 3841, 5541


def _matterjs_node_dir() -> Path:
    """An npm prefix with @matter/main + @matter/node (the device side), installed once."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("matter.js interop needs node and npm on PATH")
    root = Path(os.environ.get("MATTER_OTA_NPM_CACHE", CHECKOUT / ".cache"))
    prefix = root / f"matterjs-node-{MATTERJS}"
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifests = [prefix / "node_modules" / p / "package.json" for p in PACKAGES]
        if not all(m.exists() and json.loads(m.read_text())["version"] == MATTERJS
                   for m in manifests):
            if not (prefix / "package.json").exists():
                (prefix / "package.json").write_text('{"name": "ota-interop", "private": true}\n')
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--save-exact",
                 *(f"{p}@{MATTERJS}" for p in PACKAGES)],
                cwd=prefix, capture_output=True, text=True, timeout=600, check=False)
            if done.returncode != 0:
                pytest.fail(f"npm install of matter.js {MATTERJS} failed:\n{done.stderr}")
    return prefix


@pytest.fixture
def ns() -> Iterator[Namespace]:
    with sdk_namespace("otajs") as namespace:
        yield namespace


def _x509(fabric: FabricInfo) -> dict[str, Any]:
    form = dict(fabric.to_dict())
    for name in ("rcac", "icac", "noc"):
        value = getattr(fabric, name)
        form[name] = certs.to_x509(certs.decode(value)).hex() if value else None
    return form


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_matterjs_requestor_downloads_from_our_daemon(ns: Namespace, tmp_path: Path) -> None:
    prefix = _matterjs_node_dir()
    ca = CertificateAuthority(fabric_id=0x0F0F, now=int(time.time()) - 60, with_icac=False)
    ours = ca.issue(OUR_NODE)
    (tmp_path / "ours.json").write_text(json.dumps(ours.to_dict()))
    scratch = tmp_path / "controller"
    data = scratch / "data"
    data.mkdir(parents=True)
    (data / "fabric.json").write_text(json.dumps(_x509(ca.issue(CHIP_NODE))))
    (data / "ca.json").write_text(json.dumps({
        "fabric_id": ca.fabric_id, "now": ca.now, "ipk": ca.ipk_epoch_key.hex(),
        "root_key": private_key_bytes(ca.root_key).hex(), "rcac": ca.rcac.to_tlv().hex()}))
    config = _site(tmp_path / "site")
    image = (tmp_path / "site" / "firmware" / "fw-2.ota").read_bytes()
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "daemon"))
    stop = tmp_path / "stop-advertising"
    with serve(ns, tmp_path / "daemon", "--config", str(config), "--port", "5540",
               "--fabric-file", str(tmp_path / "ours.json")) as daemon:
        assert daemon.wait_for("event=ota_enabled releases=1 fabrics=1"), daemon.log()
        adv_log = (tmp_path / "advertise.log").open("wb")
        advertiser = subprocess.Popen(
            ns.wrap([sys.executable, str(HERE / "advertise_operational.py"),
                     "--instance", ours.operational_instance_name(),
                     "--address", ns.device_v6, "--port", "5540", "--stop-file", str(stop)]),
            stdout=adv_log, stderr=subprocess.STDOUT, env=env)
        js_log_path = tmp_path / "matterjs.log"
        js_log = js_log_path.open("wb")
        storage = tmp_path / "matterjs-storage"
        storage.mkdir()
        device = subprocess.Popen(
            ns.wrap(["node", str(CHECKOUT / "tests" / "matterjs" / "ota_requestor.cjs"),
                     str(prefix), str(storage), str(DEVICE_PORT), str(PASSCODE),
                     str(DISCRIMINATOR)]),
            stdout=js_log, stderr=subprocess.STDOUT)
        commissioner: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + 60
            while b"READY" not in js_log_path.read_bytes():
                assert time.monotonic() < deadline and device.poll() is None, \
                    js_log_path.read_text(errors="replace")[-4000:]
                time.sleep(0.1)
            command = private_root_command(
                scratch,
                sys.executable, "-X", "faulthandler", str(HERE / "ota_matterjs_commission.py"),
                "--storage", "/data/controller.json", "--fabric", "/data/fabric.json",
                "--ca", "/data/ca.json", "--device", ns.device_v6,
                "--device-port", str(DEVICE_PORT), "--passcode", str(PASSCODE),
                "--discriminator", str(DISCRIMINATOR), "--requestor-node", hex(REQUESTOR_NODE),
                "--admin-node", hex(CHIP_NODE), "--provider-node", hex(OUR_NODE),
                "--result-file", "/data/result.json",
            )  # fmt: skip
            with (scratch / "controller.log").open("wb") as log:
                commissioner = subprocess.Popen(ns.wrap(command), stdout=log,
                                                stderr=subprocess.STDOUT, cwd=CHECKOUT, env=env)
            commissioner.wait(timeout=180)

            def where() -> str:
                chip_log = (scratch / "controller.log").read_text(errors="replace")
                return (f"controller:\n{chip_log[-5000:]}"
                        f"\nmatter.js:\n{js_log_path.read_text(errors='replace')[-6000:]}"
                        f"\ndaemon:\n{daemon.log()[-4000:]}")

            assert (data / "result.json").exists(), where()
            commissioned = json.loads((data / "result.json").read_text())
            assert commissioned.get("ok"), f"{commissioned}\n{where()}"
            deadline = time.monotonic() + 120
            result: dict[str, Any] | None = None
            while result is None and time.monotonic() < deadline and device.poll() is None:
                for line in js_log_path.read_text(errors="replace").splitlines():
                    if line.startswith("RESULT "):
                        result = json.loads(line[len("RESULT "):])
                time.sleep(0.2)
            if result is None:
                for line in js_log_path.read_text(errors="replace").splitlines():
                    if line.startswith("RESULT "):
                        result = json.loads(line[len("RESULT "):])
            assert result is not None, where()
            assert "error" not in result, f"{result}\n{where()}"
            assert result["version"] == 2
            assert result["size"] == len(image)
            assert result["sha256"] == hashlib.sha256(image).hexdigest()
            assert daemon.wait_for(f"event=query node=0x{REQUESTOR_NODE:016X}"), where()
            assert daemon.wait_for("event=bdx_completed"), where()
            assert daemon.wait_for("event=apply node="), where()
        finally:
            stop.touch()
            if commissioner is not None:
                _stop(commissioner)
            _stop(device)
            try:
                advertiser.wait(timeout=15)
            except subprocess.TimeoutExpired:
                advertiser.kill()
                advertiser.wait()
            adv_log.close()
            js_log.close()
