"""Matter operational certificates: decode, convert, generate, and validate chains (spec 6.5).

The TLV form and its data model live in :mod:`.certs_tlv`, the X.509 form in :mod:`.certs_x509`;
this module is the public face: signing and verifying over the X.509 TBS, RCAC / ICAC / NOC
generation (the NOC from a PKCS#10 CSR), and validation of RCAC -> [ICAC] -> NOC with time and
fabric / node id checks. Every failure is a :class:`CertificateError`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from matter_ota.crypto import certs_x509
from matter_ota.crypto.certs_tlv import (
    EKU_CLIENT_AUTH,
    EKU_SERVER_AUTH,
    KU_CRL_SIGN,
    KU_DIGITAL_SIGNATURE,
    KU_KEY_CERT_SIGN,
    MATTER_EPOCH_UNIX,
    NO_EXPIRY,
    AuthorityKeyId,
    BasicConstraints,
    CertificateError,
    DistinguishedName,
    ExtendedKeyUsage,
    Extension,
    KeyUsage,
    MatterCertificate,
    SubjectKeyId,
)

__all__ = [
    "CertificateError",
    "ChainInfo",
    "DistinguishedName",
    "MatterCertificate",
    "csr_public_key",
    "generate_key",
    "key_id",
    "make_csr",
    "make_icac",
    "make_noc",
    "make_noc_from_csr",
    "make_rcac",
    "public_key_bytes",
    "public_key_from_bytes",
    "sign_certificate",
    "validate_chain",
    "verify_signature",
]

# 2.5.5.x: operational node ids; group, temporary and reserved ranges lie above this
MAX_OPERATIONAL_NODE_ID = 0xFFFF_FFEF_FFFF_FFFF
MAX_CATS = 3  # 6.6.2.1.2
DEFAULT_VALIDITY_S = 10 * 365 * 24 * 3600  # ours, for certificates we issue without not_after
ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # immutable; shared by every sign / verify
# 6.5.11: what our CA certificates and NOCs are for (the extensions before the key ids)
_CA_USAGE: tuple[Extension, ...] = (
    BasicConstraints(True),
    KeyUsage(KU_KEY_CERT_SIGN | KU_CRL_SIGN),
)
_NOC_USAGE: tuple[Extension, ...] = (
    BasicConstraints(False),
    KeyUsage(KU_DIGITAL_SIGNATURE),
    ExtendedKeyUsage((EKU_CLIENT_AUTH, EKU_SERVER_AUTH)),
)


def generate_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (operational keys, CA keys)."""
    return ec.generate_private_key(ec.SECP256R1())


def public_key_bytes(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    """The uncompressed SEC1 point (65 octets) of a P-256 key."""
    pub = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def public_key_from_bytes(data: bytes | bytearray) -> ec.EllipticCurvePublicKey:
    """A P-256 public key from its SEC1 point; :class:`CertificateError` if it is not one.

    Memoised: peers come back with the same certificates, and building the key object (point
    decoding and validation) costs as much as a third of a signature check.
    """
    return _public_key(bytes(data))


@functools.lru_cache(maxsize=1024)
def _public_key(data: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except ValueError as e:
        raise CertificateError(f"not a P-256 public key: {e}") from e


def key_id(public_key: bytes) -> bytes:
    """Subject / authority key identifier: SHA-1 of the public key bits (RFC 5280 4.2.1.2 (1))."""
    return hashlib.sha1(public_key, usedforsecurity=False).digest()


def tbs(cert: MatterCertificate) -> bytes:
    """The X.509 TBS of ``cert``, built once per certificate object."""
    cached: bytes | None = cert.__dict__.get("_tbs")
    if cached is None:
        cached = certs_x509.tbs_der(cert)
        object.__setattr__(cert, "_tbs", cached)
    return cached


def verify_signature(cert: MatterCertificate, issuer_public_key: bytes) -> None:
    """Check ``cert``'s signature over its X.509 TBS with the issuer's public key."""
    try:
        public_key_from_bytes(issuer_public_key).verify(
            certs_x509.signature_to_der(cert.signature),
            tbs(cert),
            ECDSA_SHA256,
        )
    except InvalidSignature as e:
        raise CertificateError("certificate signature does not verify") from e


def sign_certificate(
    cert: MatterCertificate, issuer_key: ec.EllipticCurvePrivateKey
) -> MatterCertificate:
    """``cert`` with its signature made by ``issuer_key`` over the X.509 TBS."""
    sig = issuer_key.sign(certs_x509.tbs_der(cert), ec.ECDSA(hashes.SHA256()))
    return cert.with_signature(certs_x509.signature_from_der(sig))


def _serial() -> bytes:
    raw = bytearray(os.urandom(8))
    raw[0] = (raw[0] & 0x7F) | 0x01  # positive, minimal, never zero (RFC 5280 4.1.2.2)
    return bytes(raw)


def _validity(now: int, not_before: int | None, not_after: int | None) -> tuple[int, int]:
    start = now - MATTER_EPOCH_UNIX - 3600 if not_before is None else not_before - MATTER_EPOCH_UNIX
    if not_after is None:
        end = start + DEFAULT_VALIDITY_S
    elif not_after == 0:
        end = NO_EXPIRY
    else:
        end = not_after - MATTER_EPOCH_UNIX
    return max(0, start), end


def _issue(
    *,
    subject: DistinguishedName,
    public_key: bytes,
    usage: tuple[Extension, ...],
    issuer: DistinguishedName,
    issuer_public_key: bytes,
    issuer_key: ec.EllipticCurvePrivateKey,
    now: int,
    not_before: int | None,
    not_after: int | None,
) -> MatterCertificate:
    """A certificate carrying the ``usage`` extensions, then the subject and authority key
    ids, signed by ``issuer_key``."""
    start, end = _validity(now, not_before, not_after)
    cert = MatterCertificate(
        serial=_serial(),
        issuer=issuer,
        not_before=start,
        not_after=end,
        subject=subject,
        public_key=public_key,
        extensions=(
            *usage,
            SubjectKeyId(key_id(public_key)),
            AuthorityKeyId(key_id(issuer_public_key)),
        ),
    )
    return sign_certificate(cert, issuer_key)


def make_rcac(
    key: ec.EllipticCurvePrivateKey,
    *,
    rcac_id: int,
    now: int,
    fabric_id: int | None = None,
    not_before: int | None = None,
    not_after: int | None = None,
) -> MatterCertificate:
    """A self-signed root CA certificate. Times are Unix seconds; ``not_after=0``: no expiry."""
    pub = public_key_bytes(key)
    dn = DistinguishedName.build(rcac_id=rcac_id, fabric_id=fabric_id)
    return _issue(
        subject=dn, public_key=pub, usage=_CA_USAGE,
        issuer=dn, issuer_public_key=pub, issuer_key=key,
        now=now, not_before=not_before, not_after=not_after,
    )  # fmt: skip


def make_icac(
    public_key: bytes,
    *,
    issuer: MatterCertificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    icac_id: int,
    now: int,
    fabric_id: int | None = None,
    not_before: int | None = None,
    not_after: int | None = None,
) -> MatterCertificate:
    """An intermediate CA certificate for ``public_key`` issued by the root ``issuer``."""
    return _issue(
        subject=DistinguishedName.build(icac_id=icac_id, fabric_id=fabric_id),
        public_key=public_key, usage=_CA_USAGE,
        issuer=issuer.subject, issuer_public_key=issuer.public_key, issuer_key=issuer_key,
        now=now, not_before=not_before, not_after=not_after,
    )  # fmt: skip


def make_noc(
    public_key: bytes,
    *,
    issuer: MatterCertificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    node_id: int,
    fabric_id: int,
    now: int,
    cats: tuple[int, ...] = (),
    not_before: int | None = None,
    not_after: int | None = None,
) -> MatterCertificate:
    """A node operational certificate for ``public_key`` issued by an RCAC or ICAC."""
    if not 1 <= node_id <= MAX_OPERATIONAL_NODE_ID:
        raise CertificateError(f"node id 0x{node_id:016X} is not an operational node id")
    if len(cats) > MAX_CATS:
        raise CertificateError(f"at most {MAX_CATS} CASE Authenticated Tags")
    return _issue(
        subject=DistinguishedName.build(node_id=node_id, fabric_id=fabric_id, cats=cats),
        public_key=public_key, usage=_NOC_USAGE,
        issuer=issuer.subject, issuer_public_key=issuer.public_key, issuer_key=issuer_key,
        now=now, not_before=not_before, not_after=not_after,
    )  # fmt: skip


def make_csr(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A PKCS#10 CSR (DER) for an operational key, as a node answers CSRRequest (11.18.6.5)."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "CSR")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)


def csr_public_key(csr_der: bytes) -> bytes:
    """The P-256 public key of a CSR whose self-signature verifies; the subject is ignored."""
    try:
        csr = x509.load_der_x509_csr(csr_der)
        valid = csr.is_signature_valid
        pub = csr.public_key()
    except (ValueError, TypeError) as e:
        raise CertificateError(f"malformed CSR: {e}") from e
    if not valid:
        raise CertificateError("CSR signature does not verify")
    if not isinstance(pub, ec.EllipticCurvePublicKey) or not isinstance(pub.curve, ec.SECP256R1):
        raise CertificateError("CSR key is not P-256")
    return public_key_bytes(pub)


def make_noc_from_csr(
    csr_der: bytes,
    *,
    issuer: MatterCertificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    node_id: int,
    fabric_id: int,
    now: int,
    cats: tuple[int, ...] = (),
) -> MatterCertificate:
    """Verify a CSR and issue the NOC for its key."""
    return make_noc(
        csr_public_key(csr_der),
        issuer=issuer,
        issuer_key=issuer_key,
        node_id=node_id,
        fabric_id=fabric_id,
        now=now,
        cats=cats,
    )


# ---- chain validation --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """What a validated NOC chain establishes about its subject."""

    node_id: int
    fabric_id: int
    cats: tuple[int, ...]
    public_key: bytes
    root_public_key: bytes


def _check_time(cert: MatterCertificate, now_epoch: int, what: str) -> None:
    if now_epoch < cert.not_before:
        raise CertificateError(f"{what} is not yet valid")
    if cert.not_after != NO_EXPIRY and now_epoch > cert.not_after:
        raise CertificateError(f"{what} has expired")


def _check_ca(cert: MatterCertificate, what: str) -> None:
    if not cert.is_ca:
        raise CertificateError(f"{what} is not a CA certificate")
    usage = cert.key_usage
    if usage is None or not usage & KU_KEY_CERT_SIGN:
        raise CertificateError(f"{what} may not sign certificates (key usage)")
    if cert.subject_key_id is None:
        raise CertificateError(f"{what} has no subject key identifier")


def _check_issued_by(child: MatterCertificate, parent: MatterCertificate, what: str) -> None:
    if child.issuer != parent.subject:
        raise CertificateError(f"{what} issuer does not match its issuer's subject")
    if child.authority_key_id != parent.subject_key_id:
        raise CertificateError(f"{what} authority key id does not match its issuer")


def _check_structure(
    noc: MatterCertificate, icac: MatterCertificate | None, rcac: MatterCertificate
) -> ChainInfo:
    """Everything about a chain that depends on the certificates alone (no time, no signature)."""
    if rcac.issuer != rcac.subject or rcac.subject.rcac_id is None:
        raise CertificateError("root is not a self-issued RCAC")
    _check_ca(rcac, "RCAC")
    parents: list[tuple[MatterCertificate, str]] = [(rcac, "RCAC")]
    if icac is not None:
        if icac.subject.icac_id is None:
            raise CertificateError("ICAC subject has no matter-icac-id")
        _check_ca(icac, "ICAC")
        _check_issued_by(icac, rcac, "ICAC")
        bc = rcac.basic_constraints
        if bc is not None and bc.path_len == 0:
            raise CertificateError("RCAC path length forbids an ICAC")
        parents.append((icac, "ICAC"))
    if noc.is_ca:
        raise CertificateError("NOC is a CA certificate")
    usage = noc.key_usage or 0
    if not usage & KU_DIGITAL_SIGNATURE or usage & (KU_KEY_CERT_SIGN | KU_CRL_SIGN):
        raise CertificateError("NOC key usage must be digitalSignature only")
    purposes = noc.extended_key_usage or ()
    if EKU_CLIENT_AUTH not in purposes or EKU_SERVER_AUTH not in purposes:
        raise CertificateError("NOC extended key usage lacks clientAuth / serverAuth")
    _check_issued_by(noc, parents[-1][0], "NOC")
    node_id, fabric_id = noc.subject.node_id, noc.subject.fabric_id
    if node_id is None or not 1 <= node_id <= MAX_OPERATIONAL_NODE_ID:
        raise CertificateError("NOC subject has no operational matter-node-id")
    if not fabric_id:
        raise CertificateError("NOC subject has no matter-fabric-id")
    cats = noc.subject.cats
    if len(cats) > MAX_CATS or any(c & 0xFFFF == 0 for c in cats):
        raise CertificateError("NOC carries invalid CASE Authenticated Tags")
    if len({c >> 16 for c in cats}) != len(cats):
        raise CertificateError("NOC carries two CATs with the same identifier")
    for cert, what in parents:
        if cert.subject.fabric_id is not None and cert.subject.fabric_id != fabric_id:
            raise CertificateError(f"{what} fabric id differs from the NOC's")
    return ChainInfo(node_id, fabric_id, cats, noc.public_key, rcac.public_key)


# Structural verdicts by certificate identity: :func:`decode` hands out one object per encoding,
# so a peer presenting the same chain again skips straight to its signatures and validity.
_STRUCTURE_CACHE: dict[tuple[int, int, int], tuple[tuple[object, ...], ChainInfo]] = {}
_STRUCTURE_CACHE_SIZE = 256


def _structure(
    noc: MatterCertificate, icac: MatterCertificate | None, rcac: MatterCertificate
) -> ChainInfo:
    key = (id(noc), id(icac), id(rcac))
    hit = _STRUCTURE_CACHE.get(key)
    if hit is not None:
        held = hit[0]
        if held[0] is noc and held[1] is icac and held[2] is rcac:
            return hit[1]
    info = _check_structure(noc, icac, rcac)
    if len(_STRUCTURE_CACHE) >= _STRUCTURE_CACHE_SIZE:
        del _STRUCTURE_CACHE[next(iter(_STRUCTURE_CACHE))]
    _STRUCTURE_CACHE[key] = ((noc, icac, rcac), info)  # holds the objects: ids stay unique
    return info


def validate_chain(
    noc: MatterCertificate,
    icac: MatterCertificate | None,
    rcac: MatterCertificate,
    *,
    now: int | None,
    trusted_root: bool = False,
) -> ChainInfo:
    """Validate RCAC -> [ICAC] -> NOC (spec 6.5.x and 6.6); ``now`` in Unix seconds or None.

    Checks issuer / key-id linkage, CA flags and key usages, path length, a well-formed
    operational node id, that every fabric id in the chain agrees, every signature, and validity
    at ``now``. ``trusted_root``: ``rcac`` is a trust anchor already checked when it was
    installed, so its self-signature is not verified again (as connectedhomeip treats trust
    anchors).
    """
    info = _structure(noc, icac, rcac)
    if not trusted_root:
        verify_signature(rcac, rcac.public_key)
    if icac is not None:
        verify_signature(icac, rcac.public_key)
    verify_signature(noc, (icac or rcac).public_key)
    if now is not None:
        now_epoch = now - MATTER_EPOCH_UNIX
        _check_time(rcac, now_epoch, "RCAC")
        if icac is not None:
            _check_time(icac, now_epoch, "ICAC")
        _check_time(noc, now_epoch, "NOC")
    return info


def decode(data: bytes | bytearray | memoryview) -> MatterCertificate:
    """A certificate in Matter TLV form (memoised: the same peers present the same chains)."""
    return _decode(bytes(data))


@functools.lru_cache(maxsize=1024)
def _decode(data: bytes) -> MatterCertificate:
    return MatterCertificate.from_tlv(data)


def from_x509(data: bytes) -> MatterCertificate:
    """A certificate in X.509 DER form (exactly representable in TLV)."""
    return certs_x509.from_x509(data)


def to_x509(cert: MatterCertificate) -> bytes:
    """The X.509 DER form of a Matter certificate."""
    return certs_x509.to_x509(cert)
