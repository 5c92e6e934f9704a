"""Matter operational certificates <-> X.509 DER (spec 6.5, 6.6).

The X.509 form is reconstructed field by field from the TLV form, exactly as the spec's
conversion rules lay it out, so that an ECDSA signature made over the X.509 TBSCertificate
verifies against the TBS we rebuild. :func:`from_x509` parses, converts, rebuilds and
compares: an X.509 certificate that the TLV form cannot carry byte for byte is refused.
"""

from __future__ import annotations

import calendar
import time

from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from matter_ota.crypto import der
from matter_ota.crypto.certs_tlv import (
    DN_DOMAIN_COMPONENT,
    DN_NOC_CAT,
    MATTER_EPOCH_UNIX,
    NO_EXPIRY,
    PRINTABLE,
    AuthorityKeyId,
    BasicConstraints,
    CertificateError,
    DistinguishedName,
    ExtendedKeyUsage,
    Extension,
    FutureExtension,
    KeyUsage,
    MatterCertificate,
    SubjectKeyId,
)

OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_PRIME256V1 = "1.2.840.10045.3.1.7"

# 6.5.6.1: DN attribute TLV tag -> attribute type OID
_DN_OIDS: dict[int, str] = {
    1: "2.5.4.3",  # common-name
    2: "2.5.4.4",  # surname
    3: "2.5.4.5",  # serial-num
    4: "2.5.4.6",  # country-name
    5: "2.5.4.7",  # locality-name
    6: "2.5.4.8",  # state-or-province-name
    7: "2.5.4.10",  # org-name
    8: "2.5.4.11",  # org-unit-name
    9: "2.5.4.12",  # title
    10: "2.5.4.41",  # name
    11: "2.5.4.42",  # given-name
    12: "2.5.4.43",  # initials
    13: "2.5.4.44",  # gen-qualifier
    14: "2.5.4.46",  # dn-qualifier
    15: "2.5.4.65",  # pseudonym
    16: "0.9.2342.19200300.100.1.25",  # domain-component
    17: "1.3.6.1.4.1.37244.1.1",  # matter-node-id
    18: "1.3.6.1.4.1.37244.1.2",  # matter-firmware-signing-id
    19: "1.3.6.1.4.1.37244.1.3",  # matter-icac-id
    20: "1.3.6.1.4.1.37244.1.4",  # matter-rcac-id
    21: "1.3.6.1.4.1.37244.1.5",  # matter-fabric-id
    22: "1.3.6.1.4.1.37244.1.6",  # matter-noc-cat
}
_DN_TAGS = {v: k for k, v in _DN_OIDS.items()}

# 6.5.11: extension OIDs
OID_BASIC_CONSTRAINTS = "2.5.29.19"
OID_KEY_USAGE = "2.5.29.15"
OID_EXT_KEY_USAGE = "2.5.29.37"
OID_SUBJECT_KEY_ID = "2.5.29.14"
OID_AUTHORITY_KEY_ID = "2.5.29.35"
# 6.5.11.3: key purpose id -> OID
_EKU_OIDS = {
    1: "1.3.6.1.5.5.7.3.1",
    2: "1.3.6.1.5.5.7.3.2",
    3: "1.3.6.1.5.5.7.3.3",
    4: "1.3.6.1.5.5.7.3.4",
    5: "1.3.6.1.5.5.7.3.8",
    6: "1.3.6.1.5.5.7.3.9",
}
_EKU_IDS = {v: k for k, v in _EKU_OIDS.items()}

_NO_EXPIRY_TIME = "99991231235959Z"  # RFC 5280 4.1.2.5


# ---- TLV model -> X.509 ------------------------------------------------------------------


def _dn_der(dn: DistinguishedName) -> bytes:
    rdns = []
    for tag, value in dn.attributes:
        base = tag & ~PRINTABLE
        if isinstance(value, int):
            text = f"{value:08X}" if tag == DN_NOC_CAT else f"{value:016X}"
            encoded = der.tlv(der.UTF8_STRING, text.encode())
        elif base == DN_DOMAIN_COMPONENT:
            encoded = der.tlv(der.IA5_STRING, value.encode())
        elif tag & PRINTABLE:
            encoded = der.tlv(der.PRINTABLE_STRING, value.encode())
        else:
            encoded = der.tlv(der.UTF8_STRING, value.encode())
        rdns.append(der.set_of(der.seq(der.oid(_DN_OIDS[base]), encoded)))
    return der.seq(*rdns)


def _time_der(epoch_s: int) -> bytes:
    # 6.5.6.4: epoch 0 stands for 99991231235959Z. connectedhomeip applies this to not-before
    # as well as not-after (ChipEpochToASN1Time), and signatures cover its conversion, so do we.
    if epoch_s == NO_EXPIRY:
        return der.tlv(der.GENERALIZED_TIME, _NO_EXPIRY_TIME.encode())
    t = time.gmtime(epoch_s + MATTER_EPOCH_UNIX)
    if t.tm_year < 2050:  # RFC 5280 4.1.2.5: UTCTime through 2049
        return der.tlv(der.UTC_TIME, time.strftime("%y%m%d%H%M%SZ", t).encode())
    return der.tlv(der.GENERALIZED_TIME, time.strftime("%Y%m%d%H%M%SZ", t).encode())


def _key_usage_der(bits: int) -> bytes:
    # X.509 numbers KeyUsage bits from the most significant bit of the first octet, and DER
    # drops trailing zero bits (X.690 11.2.2)
    octets = bytearray(2)
    for i in range(9):
        if bits >> i & 1:
            octets[i // 8] |= 0x80 >> (i % 8)
    while octets and octets[-1] == 0:
        octets.pop()
    if not octets:
        return der.bit_string(b"")
    last = octets[-1]
    return der.bit_string(bytes(octets), (last & -last).bit_length() - 1)


def _key_usage_from_der(content: bytes) -> int:
    if not content or content[0] > 7 or len(content) > 3:
        raise CertificateError("malformed key usage")
    octets = content[1:]
    return sum(1 << i for i in range(min(9, 8 * len(octets))) if octets[i // 8] & (0x80 >> (i % 8)))


def _extension_der(e: Extension) -> bytes:
    if isinstance(e, FutureExtension):
        return e.der
    if isinstance(e, BasicConstraints):
        body = []
        if e.is_ca:
            body.append(der.boolean(True))
        if e.path_len is not None:
            body.append(der.integer(e.path_len))
        return _ext(OID_BASIC_CONSTRAINTS, True, der.seq(*body))
    if isinstance(e, KeyUsage):
        return _ext(OID_KEY_USAGE, True, _key_usage_der(e.bits))
    if isinstance(e, ExtendedKeyUsage):
        return _ext(OID_EXT_KEY_USAGE, True, der.seq(*(der.oid(_EKU_OIDS[p]) for p in e.purposes)))
    if isinstance(e, SubjectKeyId):
        return _ext(OID_SUBJECT_KEY_ID, False, der.octet_string(e.key_id))
    return _ext(OID_AUTHORITY_KEY_ID, False, der.seq(der.tlv(0x80, e.key_id)))


def _ext(oid: str, critical: bool, value: bytes) -> bytes:
    parts = [der.oid(oid)]
    if critical:
        parts.append(der.boolean(True))
    return der.seq(*parts, der.octet_string(value))


def tbs_der(cert: MatterCertificate) -> bytes:
    """The X.509 TBSCertificate that the certificate's signature covers."""
    if cert.signature_algorithm != 1 or cert.public_key_algorithm != 1 or cert.curve != 1:
        raise CertificateError("only ecdsa-with-SHA256 over prime256v1 is defined (6.5.5)")
    try:
        fields = [
            der.tlv(0xA0, der.integer(2)),  # version v3
            der.tlv(der.INTEGER, cert.serial),
            der.seq(der.oid(OID_ECDSA_SHA256)),
            _dn_der(cert.issuer),
            der.seq(
                _time_der(cert.not_before),
                _time_der(cert.not_after),
            ),
            _dn_der(cert.subject),
            der.seq(
                der.seq(der.oid(OID_EC_PUBLIC_KEY), der.oid(OID_PRIME256V1)),
                der.bit_string(cert.public_key),
            ),
        ]
    except (KeyError, UnicodeEncodeError, OverflowError, ValueError) as e:
        raise CertificateError(f"certificate cannot be expressed in X.509: {e}") from e
    if cert.extensions:
        fields.append(der.tlv(0xA3, der.seq(*(_extension_der(e) for e in cert.extensions))))
    return der.seq(*fields)


def signature_to_der(raw: bytes) -> bytes:
    """Raw ``r || s`` (64 octets) -> DER ECDSA-Sig-Value."""
    if len(raw) != 64:
        raise CertificateError("ECDSA P-256 signature must be 64 octets")
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def signature_from_der(sig: bytes) -> bytes:
    """DER ECDSA-Sig-Value -> raw ``r || s`` (64 octets)."""
    try:
        r, s = decode_dss_signature(sig)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    except (ValueError, OverflowError) as e:
        raise CertificateError(f"bad ECDSA signature encoding: {e}") from e


def to_x509(cert: MatterCertificate) -> bytes:
    """The X.509 DER form of a (signed) Matter certificate."""
    return der.seq(
        tbs_der(cert),
        der.seq(der.oid(OID_ECDSA_SHA256)),
        der.bit_string(signature_to_der(cert.signature)),
    )


# ---- X.509 -> TLV model ------------------------------------------------------------------


def _dn_from_der(e: der.Element, what: str) -> DistinguishedName:
    attrs: list[tuple[int, int | str]] = []
    for rdn in e.expect(der.SEQUENCE, what).children():
        members = rdn.expect(der.SET, what).children()
        if len(members) != 1:
            raise CertificateError(f"{what}: multi-valued RDNs cannot be expressed in TLV")
        pair = members[0].expect(der.SEQUENCE, what).children()
        if len(pair) != 2:
            raise CertificateError(f"{what}: malformed AttributeTypeAndValue")
        oid = der.oid_from_content(pair[0].expect(der.OID, what).content)
        tag = _DN_TAGS.get(oid)
        if tag is None:
            raise CertificateError(f"{what}: attribute {oid} has no Matter TLV form")
        text = pair[1].content.decode("utf-8")
        if tag >= 17:
            width = 8 if tag == DN_NOC_CAT else 16
            if len(text) != width or text.upper() != text:
                raise CertificateError(f"{what}: {oid} must be {width} upper-case hex digits")
            attrs.append((tag, int(text, 16)))
        elif pair[1].tag == der.PRINTABLE_STRING and tag != DN_DOMAIN_COMPONENT:
            attrs.append((tag | PRINTABLE, text))
        else:
            attrs.append((tag, text))
    return DistinguishedName(tuple(attrs))


def _time_from_der(e: der.Element, what: str) -> int:
    text = e.content.decode("ascii")
    if e.tag == der.GENERALIZED_TIME and text == _NO_EXPIRY_TIME:
        return NO_EXPIRY
    fmt = {der.UTC_TIME: "%y%m%d%H%M%SZ", der.GENERALIZED_TIME: "%Y%m%d%H%M%SZ"}.get(e.tag)
    if fmt is None:
        raise CertificateError(f"{what}: not a time")
    epoch = calendar.timegm(time.strptime(text, fmt)) - MATTER_EPOCH_UNIX
    if not 0 <= epoch <= 0xFFFF_FFFF:
        raise CertificateError(f"{what}: {text} is outside the Matter epoch range")
    return epoch


def _extension_from_der(e: der.Element) -> Extension:
    parts = e.expect(der.SEQUENCE, "extension").children()
    oid = der.oid_from_content(parts[0].expect(der.OID, "extension").content)
    value = der.parse(parts[-1].expect(der.OCTET_STRING, "extension").content)
    if oid == OID_BASIC_CONSTRAINTS:
        body = value.expect(der.SEQUENCE, "basic constraints").children()
        is_ca = bool(body and body[0].tag == der.BOOLEAN and body[0].content == b"\xff")
        path = [der.parse_integer(b, "path-len") for b in body if b.tag == der.INTEGER]
        return BasicConstraints(is_ca, path[0] if path else None)
    if oid == OID_KEY_USAGE:
        return KeyUsage(_key_usage_from_der(value.expect(der.BIT_STRING, "key usage").content))
    if oid == OID_EXT_KEY_USAGE:
        purposes = []
        for p in value.expect(der.SEQUENCE, "extended key usage").children():
            purpose_oid = der.oid_from_content(p.expect(der.OID, "key purpose").content)
            if purpose_oid not in _EKU_IDS:
                raise CertificateError(f"key purpose {purpose_oid} has no Matter TLV form")
            purposes.append(_EKU_IDS[purpose_oid])
        return ExtendedKeyUsage(tuple(purposes))
    if oid == OID_SUBJECT_KEY_ID:
        return SubjectKeyId(value.expect(der.OCTET_STRING, "subject key id").content)
    if oid == OID_AUTHORITY_KEY_ID:
        ids = [c for c in value.expect(der.SEQUENCE, "authority key id").children()]
        if len(ids) != 1 or ids[0].tag != 0x80:
            raise CertificateError("authority key id must carry only a keyIdentifier")
        return AuthorityKeyId(ids[0].content)
    return FutureExtension(e.raw)


def from_x509(data: bytes) -> MatterCertificate:
    """Convert an X.509 DER certificate to the Matter form, refusing any it cannot carry exactly."""
    try:
        cert = _from_x509(bytes(data))
    except (der.DERError, UnicodeDecodeError, ValueError, IndexError, KeyError) as e:
        if isinstance(e, CertificateError):
            raise
        raise CertificateError(f"X.509 certificate: {e}") from e
    return cert


def _from_x509(data: bytes) -> MatterCertificate:
    outer = der.parse(data).expect(der.SEQUENCE, "certificate").children()
    if len(outer) != 3:
        raise CertificateError("certificate must hold tbs, algorithm and signature")
    tbs_el, algo_el, sig_el = outer
    tbs = tbs_el.expect(der.SEQUENCE, "tbsCertificate").children()
    if len(tbs) not in (7, 8) or tbs[0].raw != der.tlv(0xA0, der.integer(2)):
        raise CertificateError("only X.509 v3 certificates with no unique ids are supported")
    if algo_el.raw != der.seq(der.oid(OID_ECDSA_SHA256)) or tbs[2].raw != algo_el.raw:
        raise CertificateError("signature algorithm must be ecdsa-with-SHA256")
    spki = tbs[6].expect(der.SEQUENCE, "subjectPublicKeyInfo").children()
    if spki[0].raw != der.seq(der.oid(OID_EC_PUBLIC_KEY), der.oid(OID_PRIME256V1)):
        raise CertificateError("public key must be EC on prime256v1")
    key_bits = spki[1].expect(der.BIT_STRING, "public key").content
    validity = tbs[4].expect(der.SEQUENCE, "validity").children()
    extensions: tuple[Extension, ...] = ()
    if len(tbs) == 8:
        ext_list = der.parse(tbs[7].expect(0xA3, "extensions").content)
        extensions = tuple(_extension_from_der(e) for e in ext_list.children())
    sig_bits = sig_el.expect(der.BIT_STRING, "signature").content
    if sig_bits[:1] != b"\0" or key_bits[:1] != b"\0":
        raise CertificateError("bit strings must have no unused bits")
    cert = MatterCertificate(
        serial=tbs[1].expect(der.INTEGER, "serial").content,
        issuer=_dn_from_der(tbs[3], "issuer"),
        not_before=_time_from_der(validity[0], "notBefore"),
        not_after=_time_from_der(validity[1], "notAfter"),
        subject=_dn_from_der(tbs[5], "subject"),
        public_key=key_bits[1:],
        extensions=extensions,
        signature=signature_from_der(sig_bits[1:]),
    )
    if tbs_der(cert) != tbs_el.raw:
        raise CertificateError("X.509 certificate has no exact Matter TLV form (TBS differs)")
    cert.to_tlv()  # field ranges: refuse what TLV cannot carry
    return cert
