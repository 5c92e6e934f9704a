"""connectedhomeip's controller commissions our daemon on the network, for real.

Inside a network namespace: `matter-ota serve` with a development attestation identity (DAC and
PAI minted under the shared Matter test PAA, a CD signed with the test CD key); the controller
has that PAA in its trust store and verifies attestation as it would for any product. It
discovers the daemon by long discriminator, opens PASE, arms the fail-safe, reads DAC/PAI,
verifies the attestation and the CSR, installs root and NOC, finds the node by operational
discovery, connects with CASE and sends CommissioningComplete. Then, over CASE, it reads Basic
Information and our view of its fabric and invokes QueryImage: the OTA provider shares the
fabric table commissioning filled, so it offers the release of the daemon's releases.yaml with
an ImageURI naming the node id the controller gave us. The daemon restarts: the fabric comes
back from the state store, the commissioning window stays closed, and the controller (same
storage, same fabric) reconnects over CASE and is offered the image again.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from matter_ota.config import load_config
from matter_ota.crypto import attestation
from matter_ota.operations import Console
from matter_ota.ota_image import build_image
from matter_ota.provider.uri import check_image_uri
from matter_ota.setup_payload import SetupPayload
from matter_ota.store import Store

from .chip_controller import CHECKOUT, credentials_dir, run_controller
from .daemon import serve
from .netns import Namespace

pytestmark = pytest.mark.interop

PASSCODE = 20202021
DISCRIMINATOR = 3841
NODE_ID = 0x4321
VENDOR_ID, PRODUCT_ID = 0xFFF1, 0x8000


@pytest.fixture(autouse=True)
def _credentials() -> None:
    if credentials_dir() is None:
        pytest.skip("Matter test credentials (test PAA, CD key) not found")


def dev_credentials(state_dir: Path) -> None:
    creds = credentials_dir()
    assert creds is not None
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "daemon"))
    subprocess.run([sys.executable, "-m", "matter_ota.cli", "dev-credentials", "--credentials",
                    str(creds), "--state-dir", str(state_dir), "--vendor-id", hex(VENDOR_ID),
                    "--product-id", hex(PRODUCT_ID)], env=env, check=True,
                   capture_output=True)


def untrusted_identity(state_dir: Path) -> None:
    """A DAC/PAI under a PAA the controller does not trust (the CD is the real test one)."""
    creds = credentials_dir()
    assert creds is not None
    paa_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Untrusted PAA")])
    start = datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)
    paa = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(paa_key.public_key()).serial_number(1).not_valid_before(start)
           .not_valid_after(start + datetime.timedelta(days=9000))
           .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
           .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                        False), critical=True)
           .add_extension(x509.SubjectKeyIdentifier.from_public_key(paa_key.public_key()),
                          critical=False)
           .sign(paa_key, hashes.SHA256()))
    identity = attestation.mint_development_identity(
        paa_cert_pem=paa.public_bytes(serialization.Encoding.PEM),
        paa_key_pem=paa_key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()),
        cd_signer_cert_pem=(creds / "cd-signing-cert.pem").read_bytes(),
        cd_signer_key_pem=(creds / "cd-signing-key.pem").read_bytes(),
        vendor_id=VENDOR_ID, product_id=PRODUCT_ID, device_type_id=0x0014,
        now=datetime.datetime.now(datetime.UTC))
    attestation.save(identity, state_dir / "attestation")


def release_site(workdir: Path) -> Path:
    """provider.yaml with one release to 100 % of version 2 for our own product (what the
    controller's QueryImage asks about); the store is the daemon's state directory."""
    workdir.mkdir(parents=True, exist_ok=True)
    doc = {"state_dir": str(workdir / "state"), "firmware_dir": "firmware",
           "releases_file": "releases.yaml", "dcl": {"url": "https://127.0.0.1:9"}}
    (workdir / "provider.yaml").write_text(yaml.safe_dump(doc))
    (workdir / "releases.yaml").write_text("releases: []\n")
    image = workdir / "fw-2.ota"
    image.write_bytes(build_image(os.urandom(4096), vendor_id=VENDOR_ID, product_id=PRODUCT_ID,
                                  software_version=2, software_version_string="2.0"))
    config = load_config(workdir / "provider.yaml")
    with Store.open(config.provider.state_dir) as store:
        Console(config.provider, store, actor="test").release(
            channel="production", image=image, percent=100, same_set=False, product=None)
    return workdir / "provider.yaml"


def daemon_args(config: Path | None = None) -> tuple[str, ...]:
    return ("--passcode", str(PASSCODE), "--discriminator", str(DISCRIMINATOR),
            "--vendor-id", str(VENDOR_ID), "--product-id", str(PRODUCT_ID),
            "--mdns-interface", "dev0", *(("--config", str(config)) if config else ()))


def assert_offered(query: dict[str, object]) -> None:
    """UpdateAvailable for version 2, at bdx://<the node id the commissioner gave us>/..."""
    assert query["type"] == "QueryImageResponse", query
    answer = query["value"]
    assert isinstance(answer, dict)
    assert answer["status"] == 0, query  # UpdateAvailable
    assert check_image_uri(answer["imageURI"], NODE_ID) == "fw-2.ota", query
    assert answer["softwareVersion"] == 2


def test_chip_controller_commissions_the_daemon(ns: Namespace, tmp_path: Path) -> None:
    workdir = tmp_path / "daemon"
    config = release_site(workdir)
    dev_credentials(workdir / "state")
    scratch = tmp_path / "controller"
    with serve(ns, workdir, *daemon_args(config)) as daemon:
        assert daemon.wait_for("event=ota_enabled releases=1 fabrics=0"), daemon.log()
        assert daemon.wait_for("event=mdns_published"), daemon.log()
        outcome = run_controller(ns, scratch, "commission", "--passcode", str(PASSCODE),
                                 "--discriminator", str(DISCRIMINATOR), "--node-id",
                                 str(NODE_ID), timeout=150)
        (tmp_path / "controller-commission.log").write_text(outcome.log)
        # Attestation was verified by the SDK, not skipped: chain to the trusted test PAA,
        # CD signature and contents, the DAC's signature over the session's challenge.
        assert "Successfully validated 'Attestation Information'" in outcome.log
        assert "Certification type: 0 (Development and testing)" in outcome.log
        assert outcome.ok, f"{outcome.result}\n{outcome.log[-6000:]}\ndaemon:\n{daemon.log()}"
        steps = outcome.result["steps"]
        assert steps["node_id"] == NODE_ID
        log = daemon.log()
        # The whole state machine ran, and CommissioningComplete came over CASE.
        for needle in ("event=failsafe_armed", "event=noc_added", "event=mdns_operational",
                       "event=commissioning_complete", "event=commissioning_window_closed"):
            assert needle in log, needle
        cfid = steps["compressed_fabric_id"]
        assert f"cfid={cfid}" in log
        basic = steps["basic"]
        assert basic["BasicInformation.VendorID"]["value"] == VENDOR_ID
        assert basic["BasicInformation.ProductID"]["value"] == PRODUCT_ID
        creds = steps["credentials"]
        assert creds["OperationalCredentials.CommissionedFabrics"]["value"] == 1
        fabrics = creds["OperationalCredentials.Fabrics"]["value"]
        assert [(f["vendorID"], f["nodeID"], f["fabricID"]) for f in fabrics] == [
            (0xFFF1, NODE_ID, 1)]
        # AddNOC's CaseAdminSubject became the fabric's Administer entry.
        acl = steps["acl"]["AccessControl.Acl"]["value"]
        assert [(e["privilege"], e["authMode"], e["subjects"]) for e in acl] == [
            (5, 2, [112233])]
        # The provider knows the commissioned fabric (one table): the controller, a node of
        # it with Administer, is offered the release over CASE.
        assert_offered(steps["query"])
        assert f"event=query node=0x{112233:016X}" in log
        # The commissioning window closed: no _matterc record, and PASE goes unanswered.
        found = run_controller(ns, tmp_path / "discover", "discover", "--query",
                               f"LONG_DISCRIMINATOR={DISCRIMINATOR}", "--timeout", "3")
        assert found.ok and found.result["results"][0]["nodes"] == [], found.result
        late = run_controller(ns, tmp_path / "late", "pase", "--ip", ns.device_v6, "--passcode",
                              str(PASSCODE), "--timeout", "5")
        assert not late.ok and late.result.get("error") == "timeout", late.result
        assert "event=pase_refused reason=window_closed" in daemon.log()

    # Restart: the fabric is in the state store; the window stays closed.
    with serve(ns, workdir, *daemon_args(config)) as daemon:
        assert daemon.wait_for("event=mdns_operational"), daemon.log()
        assert "window=closed" in daemon.log()
        assert "event=ota_enabled releases=1 fabrics=1" in daemon.log()
        assert "reason=commissioned" in daemon.log()
        again = run_controller(ns, scratch, "--reuse-fabric", "operate", "--node-id",
                               str(NODE_ID), timeout=90)
        assert again.ok, f"{again.result}\n{again.log[-6000:]}\ndaemon:\n{daemon.log()}"
        assert again.result["steps"]["compressed_fabric_id"] == cfid
        assert again.result["steps"]["basic"]["BasicInformation.VendorID"]["value"] == VENDOR_ID
        assert_offered(again.result["steps"]["query"])
        assert "event=case_established" in daemon.log()


def test_chip_controller_commissions_with_the_manual_code(ns: Namespace, tmp_path: Path
                                                          ) -> None:
    """CommissionWithCode: the 11-digit code a person types (discovery by short
    discriminator), the same attestation and credentials, then QueryImage over CASE."""
    workdir = tmp_path / "daemon"
    dev_credentials(workdir / "state")
    code = SetupPayload(PASSCODE, DISCRIMINATOR, VENDOR_ID, PRODUCT_ID).manual_code()
    with serve(ns, workdir, *daemon_args()) as daemon:
        assert daemon.wait_for("event=mdns_published"), daemon.log()
        outcome = run_controller(ns, tmp_path / "controller", "commission", "--code", code,
                                 "--node-id", str(NODE_ID), timeout=150)
        assert outcome.ok, f"{outcome.result}\n{outcome.log[-6000:]}\ndaemon:\n{daemon.log()}"
        assert "Successfully validated 'Attestation Information'" in outcome.log
        assert outcome.result["steps"]["query"]["value"]["status"] == 2
        assert "event=commissioning_complete" in daemon.log()


def test_untrusted_attestation_is_refused(ns: Namespace, tmp_path: Path) -> None:
    """Negative control: the same daemon with a DAC under a PAA outside the controller's trust
    store is not commissioned (so attestation in the test above really was checked)."""
    workdir = tmp_path / "daemon"
    untrusted_identity(workdir / "state")
    with serve(ns, workdir, *daemon_args()) as daemon:
        assert daemon.wait_for("event=mdns_published"), daemon.log()
        outcome = run_controller(ns, tmp_path / "controller", "commission", "--passcode",
                                 str(PASSCODE), "--discriminator", str(DISCRIMINATOR),
                                 "--node-id", str(NODE_ID), "--timeout", "60", timeout=120)
        assert not outcome.ok, outcome.result
        assert "Failed in verifying 'Attestation Information'" in outcome.log, \
            outcome.log[-6000:]
        log = daemon.log()
        assert "event=failsafe_armed" in log and "event=noc_added" not in log
        assert "event=commissioning_complete" not in log
