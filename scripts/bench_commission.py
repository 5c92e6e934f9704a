"""``bench.py commission``: the daemon's CPU for one commissioning, against its crypto bound.

What the node computes between ArmFailSafe and CommissioningComplete (the PASE and CASE
handshakes around it have their own benchmarks): AttestationRequest and CertificateChainRequest,
CSRRequest, AddTrustedRootCertificate, AddNOC, CommissioningComplete, on a
:class:`Commissionee` with an in-memory fabric store. The commissioner's work (issuing the NOC)
runs outside the timed parts.

Baseline, measured in the same run: the raw `cryptography` operations that sequence cannot avoid,
back to back on the same inputs: 1 P-256 key generation (the operational key), 1 ECDSA sign
(the CSR's self-signature), 2 ECDSA signs with the DAC key (attestation and NOCSR elements),
the chain checks of AddTrustedRootCertificate and AddNOC done once each (RCAC self-signature,
ICAC and NOC signatures: 3 ECDSA verifies), and 2 HKDF-SHA256 (compressed fabric id, IPK).
Thread CPU time, interleaved rounds; the ratio (bound / ours) is the median of per-round
ratios.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from matter_ota import tlv
from matter_ota.commissioning.commissionee import Commissionee, MemoryFabricStore
from matter_ota.crypto import attestation, certs, certs_x509
from matter_ota.fabrics import CertificateAuthority, FabricTable
from matter_ota.im.acl import AccessControl
from matter_ota.messaging.crypto import SessionKeys
from matter_ota.messaging.session import SecureSession, SessionKind
from matter_ota.node import Node

NOW = int(time.time())
ECDSA = ec.ECDSA(hashes.SHA256())


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("commission", help="node CPU per commissioning vs its crypto bound")
    p.add_argument("--rounds", type=int, default=15, help="interleaved measurement rounds")
    p.add_argument("--per-round", type=int, default=10, help="commissionings per round")
    p.set_defaults(func=run)


def _identity() -> attestation.DeviceAttestation:
    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def ca_cert(cn: str, key: ec.EllipticCurvePrivateKey) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        start = datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)
        return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(start)
                .not_valid_after(start + datetime.timedelta(days=9000))
                .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    paa, cd = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    return attestation.mint_development_identity(
        paa_cert_pem=ca_cert("PAA", paa), paa_key_pem=pem_key(paa),
        cd_signer_cert_pem=ca_cert("CD", cd), cd_signer_key_pem=pem_key(cd),
        vendor_id=0xFFF1, product_id=0x8000, device_type_id=0x0014,
        now=datetime.datetime.now(datetime.UTC))


def _case_session(fabric_index: int) -> SecureSession:
    keys = SessionKeys(bytes(16), bytes(16), bytes(16))
    return SecureSession(kind=SessionKind.CASE, local_session_id=1, peer_session_id=1,
                         keys=keys, is_initiator=False, fabric_index=fabric_index)


def _commission(identity: attestation.DeviceAttestation, ca: CertificateAuthority) -> float:
    """Thread CPU seconds of the node's part of one commissioning."""
    assert ca.icac is not None and ca.icac_key is not None
    node = Node()
    c = Commissionee(node, FabricTable(), AccessControl(), MemoryFabricStore(), identity)
    challenge, nonce = bytes(16), bytes(32)
    start = time.thread_time()
    c.arm(60, 0, 0, None, 0.0)
    c.certificate(2)
    c.certificate(1)
    c.attest(nonce, challenge)
    elements, _ = c.csr(nonce, False, challenge)
    first = time.thread_time() - start
    noc = certs.make_noc_from_csr(tlv.decode(elements)[1], issuer=ca.icac,
                                  issuer_key=ca.icac_key, node_id=0x4321,
                                  fabric_id=ca.fabric_id, now=NOW)
    rcac, icac = ca.rcac.to_tlv(), ca.icac.to_tlv()
    start = time.thread_time()
    c.add_root(rcac)
    index = c.add_noc(noc.to_tlv(), icac, ca.ipk_epoch_key, 112233, 0xFFF1, None, 0.0)
    c.complete(index, _case_session(index), 0.0)
    return first + time.thread_time() - start


def _bound(identity: attestation.DeviceAttestation, ca: CertificateAuthority) -> float:
    """Thread CPU seconds of the raw crypto of one commissioning (see the docstring)."""
    assert ca.icac is not None
    rcac_tbs, icac_tbs = certs.tbs(ca.rcac), certs.tbs(ca.icac)
    noc_cert = ca.issue(0x4321)
    noc = certs.decode(noc_cert.noc)
    noc_tbs = certs.tbs(noc)
    root_pub = certs.public_key_from_bytes(ca.rcac.public_key)
    icac_pub = certs.public_key_from_bytes(ca.icac.public_key)
    sigs = [certs_x509.signature_to_der(x.signature) for x in (ca.rcac, ca.icac, noc)]
    message = b"x" * 300
    start = time.thread_time()
    key = ec.generate_private_key(ec.SECP256R1())
    key.sign(message, ECDSA)  # the CSR's self-signature
    identity.dac_key.sign(message, ECDSA)  # attestation elements
    identity.dac_key.sign(message, ECDSA)  # NOCSR elements
    root_pub.verify(sigs[0], rcac_tbs, ECDSA)
    root_pub.verify(sigs[1], icac_tbs, ECDSA)
    icac_pub.verify(sigs[2], noc_tbs, ECDSA)
    for info in (b"CompressedFabric", b"GroupKey v1.0"):
        HKDF(hashes.SHA256(), 16, b"salt", info).derive(b"k" * 64)
    return time.thread_time() - start


def run(args: argparse.Namespace) -> int:
    identity = _identity()
    ca = CertificateAuthority(fabric_id=1, now=NOW)
    for _ in range(3):  # warm-up: imports, caches
        _commission(identity, ca)
        _bound(identity, ca)
    ours, bound, ratios = [], [], []
    for _ in range(args.rounds):
        a = sum(_commission(identity, ca) for _ in range(args.per_round)) / args.per_round
        b = sum(_bound(identity, ca) for _ in range(args.per_round)) / args.per_round
        ours.append(a)
        bound.append(b)
        ratios.append(b / a)
    print(f"{args.rounds} rounds x {args.per_round} commissionings, thread CPU time")
    print(f"{'':44}{'ms/commissioning':>18}{'per core/s':>12}{'ratio':>8}")
    med_b, med_o = statistics.median(bound), statistics.median(ours)
    print(f"{'baseline: raw crypto of the node part':44}{med_b * 1e3:>18.2f}"
          f"{1 / med_b:>12.0f}{1.0:>8.2f}")
    print(f"{'ours: Commissionee, ArmFailSafe..Complete':44}{med_o * 1e3:>18.2f}"
          f"{1 / med_o:>12.0f}{statistics.median(ratios):>8.2f}")
    return 0
