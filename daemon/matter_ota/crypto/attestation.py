"""Device attestation (Matter Core spec 6.2, 6.3, 11.18.4.7): DAC, PAI, Certification Declaration.

A commissioner checks that the node is a certified product before it trusts it: it asks for the
DAC and PAI certificates (CertificateChainRequest), has the DAC key sign the attestation
elements (which carry the Certification Declaration) together with the session's attestation
challenge, and verifies DAC -> PAI -> PAA and the CD signature against keys it trusts.

:class:`DeviceAttestation` holds the node's identity and signs. :func:`mint_development_identity`
creates a development identity under a test PAA: a PAI and a DAC for one vendor / product, and a
CD signed with a CD-signing key (the published Matter test keys are accepted by SDK
commissioners for test vendor ids). Production operators configure the vendor's own files.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from matter_ota import tlv
from matter_ota.crypto import der
from matter_ota.crypto.certs_x509 import signature_from_der

# 6.2.2.2: the Matter DN attributes carrying vendor and product id (hex, 4 upper-case digits).
OID_VENDOR_ID = x509.ObjectIdentifier("1.3.6.1.4.1.37244.2.1")
OID_PRODUCT_ID = x509.ObjectIdentifier("1.3.6.1.4.1.37244.2.2")

# 6.3.2 CMS SignedData of the Certification Declaration (RFC 5652 object identifiers).
OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_DATA = "1.2.840.113549.1.7.1"
OID_SHA256 = "2.16.840.1.101.3.4.2.1"
OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"

CD_FORMAT_VERSION = 1  # 6.3.1 format_version
CERTIFICATION_TYPE_DEVELOPMENT = 0  # 6.3.1 certification_type: development and test
CERTIFICATE_ID_LENGTH = 19  # 6.3.1 certificate_id
ATTESTATION_NONCE_LENGTH = 32  # 11.18.6.1 AttestationNonce / CSRNonce

# Files of an identity directory (what `matter-ota dev-credentials` writes).
DAC_CERT, DAC_KEY, PAI_CERT, CD_FILE = "dac-cert.der", "dac-key.pem", "pai-cert.der", "cd.der"


class AttestationError(ValueError):
    """Attestation material that is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class CertificationDeclaration:
    """The certification elements (6.3.1) the CD signs."""

    vendor_id: int
    product_ids: tuple[int, ...]
    device_type_id: int
    certificate_id: str
    security_level: int = 0
    security_information: int = 0
    version_number: int = 1
    certification_type: int = CERTIFICATION_TYPE_DEVELOPMENT

    def encode(self) -> bytes:
        """The anonymous TLV structure of certification elements."""
        if not 1 <= len(self.product_ids) <= 100:
            raise AttestationError("a CD names 1 to 100 product ids")
        if len(self.certificate_id) != CERTIFICATE_ID_LENGTH:
            raise AttestationError(f"certificate id must be {CERTIFICATE_ID_LENGTH} characters")
        return tlv.encode({
            0: tlv.uint(CD_FORMAT_VERSION),
            1: tlv.uint(self.vendor_id),
            2: [tlv.uint(p) for p in self.product_ids],
            3: tlv.uint(self.device_type_id),
            4: self.certificate_id,
            5: tlv.uint(self.security_level),
            6: tlv.uint(self.security_information),
            7: tlv.uint(self.version_number),
            8: tlv.uint(self.certification_type),
        })


def _algorithm(dotted: str) -> bytes:
    return der.seq(der.oid(dotted))


def cms_sign(content: bytes, signer_key: ec.EllipticCurvePrivateKey, signer_key_id: bytes
             ) -> bytes:
    """CMS SignedData (6.3.2, RFC 5652) over ``content``: version 3, SHA-256, no certificates,
    no signed attributes, the signer named by its subject key identifier."""
    signature = signer_key.sign(content, ec.ECDSA(hashes.SHA256()))
    encapsulated = der.seq(der.oid(OID_DATA), der.tlv(0xA0, der.octet_string(content)))
    signer_info = der.seq(
        der.integer(3),
        der.tlv(0x80, signer_key_id),  # [0] IMPLICIT SubjectKeyIdentifier
        _algorithm(OID_SHA256),
        _algorithm(OID_ECDSA_SHA256),
        der.octet_string(signature),
    )
    signed_data = der.seq(
        der.integer(3),
        der.set_of(_algorithm(OID_SHA256)),
        encapsulated,
        der.set_of(signer_info),
    )
    return der.seq(der.oid(OID_SIGNED_DATA), der.tlv(0xA0, signed_data))


def cms_content(signed: bytes) -> bytes:
    """The encapsulated content of a CMS SignedData; :class:`AttestationError` if malformed."""
    try:
        top = list(der.iter_elements(der.parse(signed).content))
        signed_data = list(der.iter_elements(der.parse(top[1].content).content))
        encapsulated = list(der.iter_elements(signed_data[2].content))
        return der.parse(encapsulated[1].content).content
    except (der.DERError, IndexError) as exc:
        raise AttestationError(f"not a CMS SignedData: {exc}") from None


@dataclass(frozen=True)
class DeviceAttestation:
    """The node's attestation identity: DAC (with its key), PAI and CD."""

    dac: bytes  # X.509 DER
    pai: bytes  # X.509 DER
    dac_key: ec.EllipticCurvePrivateKey
    certification_declaration: bytes  # CMS SignedData DER

    def __post_init__(self) -> None:
        try:
            dac = x509.load_der_x509_certificate(self.dac)
            pai = x509.load_der_x509_certificate(self.pai)
        except ValueError as exc:
            raise AttestationError(f"DAC or PAI is not a DER certificate: {exc}") from None
        pub = self.dac_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        dac_pub = dac.public_key()
        if not isinstance(dac_pub, ec.EllipticCurvePublicKey) or dac_pub.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) != pub:
            raise AttestationError("the DAC key does not match the DAC certificate")
        if dac.issuer != pai.subject:
            raise AttestationError("the DAC is not issued by the PAI")

    def vendor_product(self) -> tuple[int | None, int | None]:
        """The vendor and product id in the DAC's subject (6.2.2.2)."""
        subject = x509.load_der_x509_certificate(self.dac).subject
        return _subject_id(subject, OID_VENDOR_ID), _subject_id(subject, OID_PRODUCT_ID)

    def sign(self, message: bytes) -> bytes:
        """ECDSA P-256 / SHA-256 with the DAC key, as a raw 64-octet r || s (3.5.3)."""
        return signature_from_der(self.dac_key.sign(message, ec.ECDSA(hashes.SHA256())))

    @classmethod
    def load(cls, directory: Path) -> DeviceAttestation:
        """The identity files of ``directory`` (see :data:`DAC_CERT` and the others)."""
        return cls.from_files(directory / DAC_CERT, directory / DAC_KEY, directory / PAI_CERT,
                              directory / CD_FILE)

    @classmethod
    def from_files(cls, dac: Path, dac_key: Path, pai: Path, cd: Path) -> DeviceAttestation:
        """An identity from DER / PEM files; :class:`AttestationError` naming the bad file."""
        def read(path: Path) -> bytes:
            try:
                return path.read_bytes()
            except OSError as exc:
                raise AttestationError(f"{path}: {exc.strerror or exc}") from None

        key = read(dac_key)
        try:
            loaded = (serialization.load_pem_private_key(key, None) if b"-----BEGIN" in key
                      else serialization.load_der_private_key(key, None))
        except (ValueError, TypeError) as exc:
            raise AttestationError(f"{dac_key}: not a private key: {exc}") from None
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or \
                not isinstance(loaded.curve, ec.SECP256R1):
            raise AttestationError(f"{dac_key}: not a P-256 key")
        return cls(dac=_der_cert(read(dac), dac), pai=_der_cert(read(pai), pai), dac_key=loaded,
                   certification_declaration=read(cd))


def _der_cert(data: bytes, path: Path) -> bytes:
    if b"-----BEGIN" not in data:
        return data
    try:
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise AttestationError(f"{path}: not a certificate: {exc}") from None


def _subject_id(name: x509.Name, oid: x509.ObjectIdentifier) -> int | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    try:
        return int(str(values[0].value), 16)
    except ValueError:
        return None


def attestation_elements(certification_declaration: bytes, nonce: bytes, timestamp: int = 0
                         ) -> bytes:
    """AttestationElements (11.18.4.7): CD, the commissioner's nonce, a timestamp."""
    return tlv.encode({1: certification_declaration, 2: nonce, 3: tlv.uint(timestamp)})


def nocsr_elements(csr: bytes, nonce: bytes) -> bytes:
    """NOCSRElements (11.18.4.9): the PKCS#10 CSR and the commissioner's CSR nonce."""
    return tlv.encode({1: csr, 2: nonce})


# ---- development identities ----------------------------------------------------------------


def _name(common_name: str, vendor_id: int, product_id: int | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name),
             x509.NameAttribute(OID_VENDOR_ID, f"{vendor_id:04X}")]
    if product_id is not None:
        attrs.append(x509.NameAttribute(OID_PRODUCT_ID, f"{product_id:04X}"))
    return x509.Name(attrs)


def _issue(subject: x509.Name, public_key: ec.EllipticCurvePublicKey, issuer: x509.Certificate,
           issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, not_before: datetime.datetime,
           not_after: datetime.datetime) -> x509.Certificate:
    usage = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                           "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                           "encipher_only", "decipher_only"), False)
    if ca:
        usage.update(key_cert_sign=True, crl_sign=True)
    else:
        usage.update(digital_signature=True)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(secrets.randbits(63) + 1)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # 6.2.2.3 / 6.2.2.4 extensions of PAI and DAC
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AttestationError("the signing key is not an EC key")
    return key


def mint_development_identity(
    *,
    paa_cert_pem: bytes,
    paa_key_pem: bytes,
    cd_signer_cert_pem: bytes,
    cd_signer_key_pem: bytes,
    vendor_id: int,
    product_id: int,
    device_type_id: int,
    now: datetime.datetime,
) -> DeviceAttestation:
    """A PAI and a DAC under the PAA, and a development CD signed by the CD signer.

    The PAI and DAC are valid from a day before ``now`` until the PAA expires (a DAC normally
    outlives the product, 6.2.2.1); the CD names ``product_id`` and is of certification type
    development.
    """
    paa = x509.load_pem_x509_certificate(paa_cert_pem)
    paa_key = _load_key(paa_key_pem)
    cd_signer = x509.load_pem_x509_certificate(cd_signer_cert_pem)
    cd_key = _load_key(cd_signer_key_pem)
    not_before = now - datetime.timedelta(days=1)
    not_after = paa.not_valid_after_utc - datetime.timedelta(seconds=1)
    pai_key = ec.generate_private_key(ec.SECP256R1())
    pai = _issue(_name("matter-ota Dev PAI", vendor_id, None), pai_key.public_key(), paa,
                 paa_key, ca=True, not_before=not_before, not_after=not_after)
    dac_key = ec.generate_private_key(ec.SECP256R1())
    dac = _issue(_name("matter-ota Dev DAC", vendor_id, product_id), dac_key.public_key(), pai,
                 pai_key, ca=False, not_before=not_before, not_after=not_after)
    declaration = CertificationDeclaration(
        vendor_id=vendor_id, product_ids=(product_id,), device_type_id=device_type_id,
        certificate_id="ZIG20142ZB330003-24")
    key_id = cd_signer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    cd = cms_sign(declaration.encode(), cd_key, key_id)
    return DeviceAttestation(dac=dac.public_bytes(serialization.Encoding.DER),
                             pai=pai.public_bytes(serialization.Encoding.DER),
                             dac_key=dac_key, certification_declaration=cd)


def save(identity: DeviceAttestation, directory: Path) -> None:
    """Write the identity files (the DAC key readable by the owner only)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    (directory / DAC_CERT).write_bytes(identity.dac)
    (directory / PAI_CERT).write_bytes(identity.pai)
    (directory / CD_FILE).write_bytes(identity.certification_declaration)
    key_path = directory / DAC_KEY
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_bytes(identity.dac_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
