"""TC-SU-3.1 with a peer we did not write: connectedhomeip's controller, on a fabric our CA
issued, finds our daemon by operational discovery, opens CASE and invokes QueryImage,
ApplyUpdateRequest and NotifyUpdateApplied as an OTA requestor does. The daemon answers from
its releases.yaml (one release of a generated image to 100 %) through the policy engine.
Everything runs inside a network namespace of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from matter_ota.config import load_config
from matter_ota.operations import Console
from matter_ota.ota_image import build_image
from matter_ota.provider.uri import check_image_uri
from matter_ota.store import Store

from .chip_controller import private_root_command, sdk_namespace
from .daemon import serve
from .netns import Namespace
from .test_case_chip import CHIP_NODE, OUR_NODE, _fabrics

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
INVALID_COMMAND = 0x85


@pytest.fixture
def ns() -> Iterator[Namespace]:
    with sdk_namespace("ota") as namespace:
        yield namespace


def _site(root: Path) -> Path:
    root.mkdir(parents=True)
    doc = {"state_dir": "state", "firmware_dir": "firmware", "releases_file": "releases.yaml",
           "dcl": {"url": "https://127.0.0.1:9"}}
    (root / "provider.yaml").write_text(yaml.safe_dump(doc))
    (root / "releases.yaml").write_text("releases: []\n")
    image = root / "fw-2.ota"
    image.write_bytes(build_image(os.urandom(20_000), vendor_id=0xFFF1, product_id=0x8001,
                                  software_version=2, software_version_string="2.0"))
    config = load_config(root / "provider.yaml")
    with Store.open(config.provider.state_dir) as store:
        Console(config.provider, store, actor="test").release(
            channel="production", image=image, percent=100, same_set=False, product=None)
    return root / "provider.yaml"


def test_chip_controller_queries_our_provider_over_case(ns: Namespace, tmp_path: Path) -> None:
    ours, ours_path, x509_form = _fabrics(tmp_path)
    config = _site(tmp_path / "site")
    stop = tmp_path / "stop-advertising"
    adv_log = tmp_path / "advertise.log"
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "daemon"))
    with serve(ns, tmp_path / "daemon", "--config", str(config), "--port", "5540",
               "--fabric-file", str(ours_path)) as daemon:
        assert daemon.wait_for("event=ota_enabled releases=1 fabrics=1"), daemon.log()
        with adv_log.open("wb") as log:
            advertiser = subprocess.Popen(
                ns.wrap([sys.executable, str(HERE / "advertise_operational.py"),
                         "--instance", ours.operational_instance_name(),
                         "--address", ns.device_v6, "--port", "5540",
                         "--stop-file", str(stop)]),
                stdout=log, stderr=subprocess.STDOUT, env=env)
        scratch = tmp_path / "controller"
        data = scratch / "data"
        data.mkdir(parents=True)
        (data / "fabric.json").write_text(json.dumps(x509_form))
        command = private_root_command(
            scratch,
            sys.executable, "-X", "faulthandler", str(HERE / "ota_chip_requestor.py"),
            "--storage", "/data/controller.json", "--fabric", "/data/fabric.json",
            "--node", hex(OUR_NODE), "--result-file", "/data/result.json",
        )  # fmt: skip
        controller_log = scratch / "controller.log"
        try:
            with controller_log.open("wb") as log:
                proc = subprocess.Popen(ns.wrap(command), stdout=log, stderr=subprocess.STDOUT,
                                        cwd=CHECKOUT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            where = (f"controller:\n{controller_log.read_text(errors='replace')[-6000:]}\n"
                     f"daemon:\n{daemon.log()[-4000:]}")
            assert (data / "result.json").exists(), where
            result = json.loads((data / "result.json").read_text())
            assert "error" not in result, f"{result}\n{where}"
            query = result["query"]
            assert query["type"] == "QueryImageResponse", result
            answer = query["value"]
            assert answer["status"] == 0, result  # UpdateAvailable
            assert answer["delayedActionTime"] is None  # only with Busy
            uri = answer["imageURI"]
            # TC-SU-3.1: bdx scheme, host = our node id in 16 upper-case hex, 24+ characters
            assert check_image_uri(uri, OUR_NODE) == "fw-2.ota" and len(uri) >= 24, uri
            assert answer["softwareVersion"] == 2 and answer["softwareVersionString"] == "2.0"
            token = bytes.fromhex(answer["updateToken"])
            assert 8 <= len(token) <= 32
            assert result["apply"]["action"] == 0  # Proceed
            assert result["notify"] == "ok"
            assert result["foreign_token"] == INVALID_COMMAND
            assert daemon.wait_for(f"event=query node=0x{CHIP_NODE:016X}"), where
            assert daemon.wait_for("event=applied"), where
        finally:
            stop.touch()
            try:
                advertiser.wait(timeout=15)
            except subprocess.TimeoutExpired:
                advertiser.kill()
                advertiser.wait()

