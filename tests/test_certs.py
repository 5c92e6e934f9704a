"""Matter operational certificates: TLV <-> X.509 on certificates we did not make, generation,
CSRs, chain validation, the connectedhomeip converter as an oracle, and decoder robustness."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from matter_ota.crypto import certs, certs_x509
from matter_ota.crypto.certs import CertificateError, MatterCertificate
from matter_ota.crypto.certs_tlv import (
    MATTER_EPOCH_UNIX,
    NO_EXPIRY,
    AuthorityKeyId,
    BasicConstraints,
    ExtendedKeyUsage,
    Extension,
    FutureExtension,
    KeyUsage,
    SubjectKeyId,
)

DATA = Path(__file__).parent / "data"
NOW = 1_764_000_000  # 2025-11-24, inside every vector's validity


def _load_chip_vectors() -> dict[str, dict[str, bytes]]:
    out: dict[str, dict[str, bytes]] = {}
    for line in (DATA / "chip_cert_vectors.txt").read_text().splitlines():
        name, form, hexdata = line.split()
        out.setdefault(name, {})[form] = bytes.fromhex(hexdata)
    return out


def _load_matterjs_sets() -> dict[str, dict[str, dict[str, bytes]]]:
    out: dict[str, dict[str, dict[str, bytes]]] = {}
    for line in (DATA / "matterjs_cert_vectors.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, role, form, hexdata = line.split()
        out.setdefault(name, {}).setdefault(role, {})[form] = bytes.fromhex(hexdata)
    return out


CHIP = _load_chip_vectors()
MATTERJS = _load_matterjs_sets()


# ---- connectedhomeip CHIPCert_test_vectors.cpp: TLV and DER of the same certificates ------


@pytest.mark.parametrize("name", sorted(CHIP))
def test_chip_vectors_convert_exactly_both_ways(name: str) -> None:
    tlv_form, der_form = CHIP[name]["tlv"], CHIP[name]["der"]
    cert = MatterCertificate.from_tlv(tlv_form)
    assert cert.to_tlv() == tlv_form
    assert certs.to_x509(cert) == der_form
    assert certs.from_x509(der_form) == cert
    # an independent X.509 parser agrees on what we rebuilt
    parsed = x509.load_der_x509_certificate(certs.to_x509(cert))
    assert parsed.serial_number == int.from_bytes(cert.serial, "big")


def test_chip_vector_chains_validate() -> None:
    root = certs.decode(CHIP["Root01"]["tlv"])
    ica = certs.decode(CHIP["ICA01"]["tlv"])
    info = certs.validate_chain(certs.decode(CHIP["Node01_01"]["tlv"]), ica, root, now=NOW)
    assert (info.node_id, info.fabric_id) == (0xDEDEDEDE00010001, 0xFAB000000000001D)
    info = certs.validate_chain(certs.decode(CHIP["Node01_02"]["tlv"]), None, root, now=NOW)
    assert info.node_id == 0xDEDEDEDE00010002
    # Root03 never expires: its not-after is the X.509 99991231235959Z
    root3 = certs.decode(CHIP["Root03"]["tlv"])
    assert root3.not_after == NO_EXPIRY
    assert b"99991231235959Z" in CHIP["Root03"]["der"]
    certs.verify_signature(root3, root3.public_key)


def test_chip_error_vector_with_a_profile_tag_is_refused() -> None:
    # CHIPCert_test_vectors.cpp Node01_01_Err01: the subject key id under a common-profile tag
    good = CHIP["Node01_01"]["tlv"]
    bad = good.replace(bytes.fromhex("300414"), bytes.fromhex("50ee0414"), 1)
    with pytest.raises(CertificateError):
        MatterCertificate.from_tlv(bad)


# ---- matter.js TestCertificates.ts: the spec's and real ecosystems' certificates ----------


@pytest.mark.parametrize("name", sorted(MATTERJS))
def test_matterjs_sets_recode_and_verify(name: str) -> None:
    roles = MATTERJS[name]
    decoded = {role: MatterCertificate.from_tlv(forms["tlv"]) for role, forms in roles.items()}
    for role, forms in roles.items():
        cert = decoded[role]
        assert cert.to_tlv() == forms["tlv"], role
        if "tbs" in forms:
            assert certs_x509.tbs_der(cert) == forms["tbs"], role
        assert certs.from_x509(certs.to_x509(cert)) == cert
    info = certs.validate_chain(decoded["NOC"], decoded.get("ICAC"), decoded["ROOT"], now=None)
    assert info.fabric_id == decoded["NOC"].subject.fabric_id


def test_matterjs_spec_icac_fields() -> None:
    icac = certs.decode(MATTERJS["spec"]["ICAC"]["tlv"])
    assert icac.serial == bytes([45, 180, 68, 133, 86, 65, 174, 223])
    assert icac.issuer.rcac_id == 14612714909889200129
    assert (icac.not_before, icac.not_after) == (656087023, 1287239022)
    assert icac.subject.icac_id == 14612714909889200131
    assert icac.basic_constraints == BasicConstraints(True)
    assert icac.key_usage == 0x60


def test_cats_and_printable_strings_of_real_roots() -> None:
    google = certs.decode(MATTERJS["google"]["ROOT"]["tlv"])
    assert (0x84, "US") in google.subject.attributes  # PrintableString country
    parsed = x509.load_der_x509_certificate(certs.to_x509(google))
    assert parsed.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)[0].value == "US"
    ikea = certs.decode(MATTERJS["ikea"]["NOC"]["tlv"])
    assert ikea.subject.cats == (0x50AD0001,)


# ---- test credentials: the PAA (X.509 only; exercises the X.509 parsing paths) --------------


def _credentials() -> Path:
    env = os.environ.get("MATTER_OTA_TEST_CREDENTIALS")
    path = Path(env) if env else Path(__file__).resolve().parents[1] / "../shared/credentials/test"
    if not (path / "paa-fff1-cert.der").exists():
        pytest.skip(f"test credentials not found at {path}")
    return path


def test_paa_round_trips_through_tlv() -> None:
    der_form = (_credentials() / "paa-fff1-cert.der").read_bytes()
    cert = certs.from_x509(der_form)
    assert certs.to_x509(cert) == der_form
    assert MatterCertificate.from_tlv(cert.to_tlv()) == cert
    certs.verify_signature(cert, cert.public_key)
    parsed = x509.load_der_x509_certificate(der_form)
    cn = parsed.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert (1, cn) in cert.subject.attributes
    assert cert.not_before + MATTER_EPOCH_UNIX == int(parsed.not_valid_before_utc.timestamp())


def test_x509_outside_the_tlv_form_is_refused() -> None:
    key = certs.generate_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "x")])
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    plain = builder.sign(key, hashes.SHA256())
    cert = certs.from_x509(plain.public_bytes(Encoding.DER))  # no extensions: representable
    assert certs.to_x509(cert) == plain.public_bytes(Encoding.DER)
    with_v1 = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), False)
    non_critical_bc = with_v1.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
    with pytest.raises(CertificateError, match="TBS differs"):
        certs.from_x509(non_critical_bc)
    with pytest.raises(CertificateError):
        certs.from_x509(non_critical_bc[:-3])


# ---- generation, CSR, chain validation --------------------------------------------------------


@dataclasses.dataclass
class Fabric:
    root_key: object
    rcac: MatterCertificate
    icac_key: object
    icac: MatterCertificate
    node_key: object
    noc: MatterCertificate


def make_fabric(fabric_id: int = 0x1234, node_id: int = 0x55, cats: tuple[int, ...] = ()) -> Fabric:
    root_key = certs.generate_key()
    rcac = certs.make_rcac(root_key, rcac_id=1, now=NOW, fabric_id=fabric_id)
    icac_key = certs.generate_key()
    icac = certs.make_icac(
        certs.public_key_bytes(icac_key), issuer=rcac, issuer_key=root_key, icac_id=2, now=NOW
    )
    node_key = certs.generate_key()
    noc = certs.make_noc_from_csr(
        certs.make_csr(node_key),
        issuer=icac,
        issuer_key=icac_key,
        node_id=node_id,
        fabric_id=fabric_id,
        now=NOW,
        cats=cats,
    )
    return Fabric(root_key, rcac, icac_key, icac, node_key, noc)


def test_generated_chain_verifies_with_an_independent_x509_stack() -> None:
    f = make_fabric(cats=(0x00010001, 0x00020003))
    rcac, icac, noc = (
        x509.load_der_x509_certificate(certs.to_x509(c)) for c in (f.rcac, f.icac, f.noc)
    )
    rcac.verify_directly_issued_by(rcac)
    icac.verify_directly_issued_by(rcac)
    noc.verify_directly_issued_by(icac)
    assert noc.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    info = certs.validate_chain(f.noc, f.icac, f.rcac, now=NOW)
    assert (info.node_id, info.fabric_id, info.cats) == (0x55, 0x1234, (0x00010001, 0x00020003))
    assert info.public_key == certs.public_key_bytes(f.node_key)  # type: ignore[arg-type]
    for c in (f.rcac, f.icac, f.noc):
        assert MatterCertificate.from_tlv(c.to_tlv()) == c
        assert len(c.to_tlv()) <= 400  # spec 6.1.3: at most 400 octets in TLV


def test_csr_signature_is_checked() -> None:
    key = certs.generate_key()
    csr = certs.make_csr(key)
    assert certs.csr_public_key(csr) == certs.public_key_bytes(key)
    tampered = bytearray(csr)
    tampered[-5] ^= 0x01
    with pytest.raises(CertificateError):
        certs.csr_public_key(bytes(tampered))
    with pytest.raises(CertificateError):
        certs.csr_public_key(b"\x30\x03\x02\x01\x00")


def _resign(cert: MatterCertificate, key: object, **changes: object) -> MatterCertificate:
    return certs.sign_certificate(dataclasses.replace(cert, **changes), key)  # type: ignore[arg-type]


def test_chain_rejections() -> None:
    f = make_fabric()
    ok = certs.validate_chain(f.noc, f.icac, f.rcac, now=NOW)
    assert ok.node_id == 0x55
    cases: list[
        tuple[str, MatterCertificate, MatterCertificate | None, MatterCertificate, int]
    ] = []
    expired = _resign(f.noc, f.icac_key, not_after=NOW - MATTER_EPOCH_UNIX - 10)
    cases.append(("expired", expired, f.icac, f.rcac, NOW))
    future = _resign(f.noc, f.icac_key, not_before=NOW - MATTER_EPOCH_UNIX + 3600)
    cases.append(("not yet valid", future, f.icac, f.rcac, NOW))
    bad_sig = dataclasses.replace(f.noc, signature=bytes(64 - 1) + b"\x01")
    cases.append(("signature", bad_sig, f.icac, f.rcac, NOW))
    other = make_fabric()
    cases.append(("issuer", other.noc, f.icac, f.rcac, NOW))
    wrong_fabric_icac = _resign(
        f.icac, f.root_key, subject=certs.DistinguishedName.build(icac_id=2, fabric_id=0x999)
    )
    noc2 = _resign(f.noc, f.icac_key, issuer=wrong_fabric_icac.subject)
    cases.append(("fabric id", noc2, wrong_fabric_icac, f.rcac, NOW))
    ca_noc = _resign(f.noc, f.icac_key, extensions=(BasicConstraints(True), *f.noc.extensions[1:]))
    cases.append(("CA", ca_noc, f.icac, f.rcac, NOW))
    bad_node = _resign(
        f.noc,
        f.icac_key,
        subject=certs.DistinguishedName.build(node_id=0xFFFF_FFFF_0000_0001, fabric_id=0x1234),
    )
    cases.append(("node-id", bad_node, f.icac, f.rcac, NOW))
    for what, noc, icac, rcac, now in cases:
        with pytest.raises(CertificateError, match=what):
            certs.validate_chain(noc, icac, rcac, now=now)


def test_generation_refuses_non_operational_node_ids() -> None:
    f = make_fabric()
    with pytest.raises(CertificateError):
        certs.make_noc(
            f.noc.public_key, issuer=f.icac, issuer_key=f.icac_key, node_id=0, fabric_id=1, now=NOW
        )  # type: ignore[arg-type]


# ---- connectedhomeip's own converter as the oracle -----------------------------------------

_ORACLE = r"""
import json, sys
import chip.native
from chip.native import HandleFlags
import chip.credentials.cert as c
c.GetLibraryHandle = lambda: chip.native.GetLibraryHandle(HandleFlags(0))
for line in sys.stdin:
    req = json.loads(line)
    data = bytes.fromhex(req["data"])
    try:
        out = (c.convert_chip_cert_to_x509_cert(data) if req["to"] == "x509"
               else c.convert_x509_cert_to_chip_cert(data))
        print(json.dumps({"ok": out.hex()}), flush=True)
    except Exception as e:
        print(json.dumps({"err": str(e)}), flush=True)
"""


def _chip_convert(requests: list[tuple[str, bytes]]) -> list[bytes]:
    try:
        import chip.credentials.cert  # noqa: F401
    except Exception as e:  # the SDK's native library may not load on this machine
        pytest.skip(f"connectedhomeip bindings unavailable: {e}")
    lines = "".join(json.dumps({"to": to, "data": d.hex()}) + "\n" for to, d in requests)
    proc = subprocess.run(
        [sys.executable, "-c", _ORACLE], input=lines, capture_output=True, text=True, timeout=120
    )
    answers = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    assert len(answers) == len(requests), proc.stderr[-2000:]
    return [bytes.fromhex(a["ok"]) if "ok" in a else b"" for a in answers]


def test_connectedhomeip_converter_agrees_on_generated_certificates() -> None:
    fabrics = [
        make_fabric(cats=(0x00010001,)),
        make_fabric(fabric_id=0xFAB0_0000_0000_001D, node_id=0xDEDE),
    ]
    root_key = certs.generate_key()
    forever = certs.make_rcac(root_key, rcac_id=0xCACA, now=NOW, not_after=0)  # no expiry
    ours = [forever] + [c for f in fabrics for c in (f.rcac, f.icac, f.noc)]
    requests = [("x509", c.to_tlv()) for c in ours] + [("tlv", certs.to_x509(c)) for c in ours]
    answers = _chip_convert(requests)
    n = len(ours)
    for cert, x509_form, tlv_form in zip(ours, answers[:n], answers[n:], strict=True):
        assert x509_form == certs.to_x509(cert)
        assert tlv_form == cert.to_tlv()


def _varied_certificates(count: int, seed: int) -> list[MatterCertificate]:
    """Signed, well-formed certificates exercising the conversion rules: every DN string kind
    (UTF-8 with non-ASCII text, PrintableString, IA5 domain component), Matter ids and CATs,
    validity edges, CA and end-entity extension sets in any order, and a future extension."""
    rng = random.Random(seed)
    key = certs.generate_key()
    pub = certs.public_key_bytes(key)
    # Extension { 1.3.6.1.4.1.37244.99, extnValue OCTET STRING { NULL } }
    future = bytes.fromhex("300f06092b0601040182a27c6304020500")
    out = []
    for _ in range(count):
        is_ca = rng.random() < 0.5
        attrs: list[tuple[int, int | str]] = []
        ids = [20, 19] if is_ca else [17]
        attrs.append((rng.choice(ids), rng.randrange(1, 1 << 64)))
        if rng.random() < 0.6:
            attrs.append((21, rng.randrange(1, 1 << 64)))
        if not is_ca:
            attrs += [(22, (rng.randrange(1, 1 << 16) << 16) | 1) for _ in range(rng.randint(0, 2))]
        for _ in range(rng.randint(0, 2)):
            attrs.append(
                rng.choice(
                    [
                        (1, rng.choice(["Matter Root", "Ünïcødé ✓", "x" * 40])),
                        (0x84, "US"),
                        (0x8E, "Test CA 1"),
                        (16, "example"),
                        (7, "Org"),
                    ]
                )
            )
        rng.shuffle(attrs)
        dn = certs.DistinguishedName(tuple(attrs))
        extensions: list[Extension]
        if is_ca:
            extensions = [
                BasicConstraints(True, rng.choice([None, 0, 1])),
                KeyUsage(rng.choice([0x60, 0x61, 0x20])),
            ]
        else:
            extensions = [
                BasicConstraints(False),
                KeyUsage(rng.choice([0x01, 0x03])),
                ExtendedKeyUsage(tuple(rng.sample([1, 2], rng.randint(1, 2)))),
            ]
        extensions += [SubjectKeyId(certs.key_id(pub)), AuthorityKeyId(certs.key_id(pub))]
        if rng.random() < 0.3:
            extensions.append(FutureExtension(future))
        rng.shuffle(extensions)
        not_before = rng.choice([0, 1, 656087023, 1_600_000_000])
        # 2100-01-01: the SDK's calendar stops short of the 32-bit epoch's end (2136)
        not_after = rng.choice([NO_EXPIRY, not_before + 1, 1_600_000_000 + 10**9, 3_155_760_000])
        serial = bytes([rng.randrange(1, 0x80)]) + rng.randbytes(rng.randint(0, 19))
        cert = MatterCertificate(
            serial=serial,
            issuer=dn,
            not_before=not_before,
            not_after=not_after,
            subject=dn,
            public_key=pub,
            extensions=tuple(extensions),
        )
        out.append(certs.sign_certificate(cert, key))
    return out


def test_connectedhomeip_converter_agrees_on_varied_certificates() -> None:
    ours = _varied_certificates(60, seed=20261129)
    requests = [("x509", c.to_tlv()) for c in ours] + [("tlv", certs.to_x509(c)) for c in ours]
    answers = _chip_convert(requests)
    n, compared = len(ours), 0
    for cert, x509_form, tlv_form in zip(ours, answers[:n], answers[n:], strict=True):
        assert x509_form == certs.to_x509(cert), cert
        assert tlv_form == cert.to_tlv(), cert
        assert certs.from_x509(x509_form) == cert
        compared += 1
    assert compared == n, f"the SDK accepted only {compared} of {n}"


# ---- robustness: the decoders raise CertificateError and nothing else ------------------------

_SEEDS = [v["tlv"] for v in CHIP.values()] + [
    forms["tlv"] for s in MATTERJS.values() for forms in s.values()
]
_DER_SEEDS = [v["der"] for v in CHIP.values()]


@st.composite
def _mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos : pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.binary(max_size=64), _mutated(_SEEDS)))
def test_tlv_decoder_raises_only_certificate_error(data: bytes) -> None:
    try:
        cert = MatterCertificate.from_tlv(data)
    except CertificateError:
        return
    assert MatterCertificate.from_tlv(cert.to_tlv()) == cert


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), _mutated(_DER_SEEDS)))
def test_x509_decoder_raises_only_certificate_error(data: bytes) -> None:
    try:
        cert = certs.from_x509(data)
    except CertificateError:
        return
    assert certs.to_x509(cert) == data


def test_times_are_converted_with_the_rfc5280_rules() -> None:
    key = certs.generate_key()
    late = int(time.mktime((2051, 1, 1, 0, 0, 0, 0, 0, 0))) - time.timezone
    cert = certs.make_rcac(key, rcac_id=9, now=NOW, not_after=late)
    der_form = certs.to_x509(cert)
    assert b"20510101000000Z" in der_form  # GeneralizedTime from 2050 on
    assert certs.from_x509(der_form) == cert


_CHAIN = (CHIP["Node01_01"]["tlv"], CHIP["ICA01"]["tlv"], CHIP["Root01"]["tlv"])


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2), _mutated([_CHAIN[0]]), _mutated([_CHAIN[1]]), _mutated([_CHAIN[2]]))
def test_mutated_chains_fail_with_certificate_error_only(
    which: int, noc: bytes, icac: bytes, rcac: bytes
) -> None:
    chain = list(_CHAIN)
    chain[which] = (noc, icac, rcac)[which]
    try:
        info = certs.validate_chain(
            certs.decode(chain[0]), certs.decode(chain[1]), certs.decode(chain[2]), now=NOW
        )
    except CertificateError:
        return
    # only a mutation the signatures do not cover can pass: the chain still says the same
    assert (info.node_id, info.fabric_id) == (0xDEDEDEDE00010001, 0xFAB000000000001D)
