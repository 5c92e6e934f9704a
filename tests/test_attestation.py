"""Development attestation identity: DAC -> PAI -> test PAA, CD in CMS, DAC signatures."""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from matter_ota import tlv
from matter_ota.crypto import attestation, der
from matter_ota.crypto.certs_x509 import signature_to_der

CHECKOUT = Path(__file__).resolve().parent.parent


def credentials() -> Path:
    env = os.environ.get("MATTER_OTA_TEST_CREDENTIALS")
    path = Path(env) if env else CHECKOUT.parent / "shared" / "credentials" / "test"
    if not (path / "paa-fff1-key.pem").is_file():
        pytest.skip(f"Matter test credentials not found at {path}")
    return path


def mint(creds: Path, product_id: int = 0x8000) -> attestation.DeviceAttestation:
    return attestation.mint_development_identity(
        paa_cert_pem=(creds / "paa-fff1-cert.pem").read_bytes(),
        paa_key_pem=(creds / "paa-fff1-key.pem").read_bytes(),
        cd_signer_cert_pem=(creds / "cd-signing-cert.pem").read_bytes(),
        cd_signer_key_pem=(creds / "cd-signing-key.pem").read_bytes(),
        vendor_id=0xFFF1, product_id=product_id, device_type_id=0x0014,
        now=datetime.datetime.now(datetime.UTC))


def test_chain_verifies_up_to_the_test_paa() -> None:
    creds = credentials()
    ident = mint(creds)
    paa = x509.load_pem_x509_certificate((creds / "paa-fff1-cert.pem").read_bytes())
    pai = x509.load_der_x509_certificate(ident.pai)
    dac = x509.load_der_x509_certificate(ident.dac)
    pai.verify_directly_issued_by(paa)
    dac.verify_directly_issued_by(pai)
    assert ident.vendor_product() == (0xFFF1, 0x8000)
    assert dac.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert pai.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    assert dac.not_valid_after_utc <= pai.not_valid_after_utc <= paa.not_valid_after_utc


def test_certification_declaration_is_signed_by_the_cd_key() -> None:
    creds = credentials()
    ident = mint(creds, product_id=0x8001)
    signer = x509.load_pem_x509_certificate((creds / "cd-signing-cert.pem").read_bytes())
    content = attestation.cms_content(ident.certification_declaration)
    elements = tlv.decode(content)
    assert elements[0] == 1 and elements[1] == 0xFFF1 and elements[2] == [0x8001]
    assert elements[3] == 0x0014 and len(elements[4]) == 19 and elements[8] == 0
    # The signature is in the SignerInfo; named by the signer's subject key id.
    top = der.parse(ident.certification_declaration).children()
    signed_data = der.parse(top[1].content).children()
    signer_info = der.parse(signed_data[3].content).children()
    ski = signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert signer_info[1].tag == 0x80 and signer_info[1].content == ski
    public = signer.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signer_info[4].content, content, ec.ECDSA(hashes.SHA256()))


def test_dac_signs_raw_signatures(tmp_path: Path) -> None:
    ident = mint(credentials())
    attestation.save(ident, tmp_path / "id")
    assert (tmp_path / "id" / attestation.DAC_KEY).stat().st_mode & 0o077 == 0
    again = attestation.DeviceAttestation.load(tmp_path / "id")
    message = attestation.attestation_elements(again.certification_declaration, b"n" * 32)
    raw = again.sign(message + b"c" * 16)
    assert len(raw) == 64
    public = x509.load_der_x509_certificate(again.dac).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature_to_der(raw), message + b"c" * 16, ec.ECDSA(hashes.SHA256()))


def test_mismatched_key_is_refused() -> None:
    ident = mint(credentials())
    with pytest.raises(attestation.AttestationError):
        attestation.DeviceAttestation(dac=ident.dac, pai=ident.pai,
                                      dac_key=ec.generate_private_key(ec.SECP256R1()),
                                      certification_declaration=ident.certification_declaration)


def test_cms_content_rejects_garbage() -> None:
    for data in (b"", b"\x30\x00", b"\x30\x03\x02\x01\x03", bytes(range(40))):
        with pytest.raises(attestation.AttestationError):
            attestation.cms_content(data)


def test_dev_credentials_command(tmp_path: Path) -> None:
    creds = credentials()
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "daemon"))
    cmd = [sys.executable, "-m", "matter_ota.cli", "dev-credentials", "--credentials", str(creds),
           "--state-dir", str(tmp_path / "state")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    ident = attestation.DeviceAttestation.load(tmp_path / "state" / "attestation")
    assert ident.vendor_product() == (0xFFF1, 0x8000)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert again.returncode != 0 and "already holds" in again.stderr


@given(st.binary(max_size=300))
def test_cms_content_raises_only_its_own_error(data: bytes) -> None:
    with contextlib.suppress(attestation.AttestationError):
        attestation.cms_content(data)


def test_cms_round_trip_and_truncations() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signed = attestation.cms_sign(b"content", key, b"k" * 20)
    assert attestation.cms_content(signed) == b"content"
    for n in range(len(signed)):
        with pytest.raises(attestation.AttestationError):
            attestation.cms_content(signed[:n])
