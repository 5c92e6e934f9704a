"""Matter operational certificates: the data model and its Matter TLV form (spec 6.5).

A :class:`MatterCertificate` holds exactly what the TLV form carries, in its order, so that
TLV -> model -> TLV and X.509 -> model -> X.509 (:mod:`.certs_x509`) are both exact.
:meth:`MatterCertificate.from_tlv` raises :class:`CertificateError` and nothing else.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeAlias

from matter_ota import tlv

MATTER_EPOCH_UNIX = 946_684_800  # 2000-01-01T00:00:00Z, spec 3.5.5 (epoch-s)
NO_EXPIRY = 0  # not-after 0: "no well-defined expiration date" (spec 6.5.6.4)

# 6.5.5 signature-algorithm, public-key-algorithm, elliptic-curve-id
SIG_ALGO_ECDSA_SHA256 = 1
PUBKEY_ALGO_EC = 1
CURVE_PRIME256V1 = 1

# 6.5.6.1 DN attribute tags; 0x80 | tag is the PrintableString form of tags 1..16
DN_COMMON_NAME = 1
DN_DOMAIN_COMPONENT = 16
DN_NODE_ID = 17
DN_FIRMWARE_SIGNING_ID = 18
DN_ICAC_ID = 19
DN_RCAC_ID = 20
DN_FABRIC_ID = 21
DN_NOC_CAT = 22
PRINTABLE = 0x80

# 6.5.11.2 key-usage bits
KU_DIGITAL_SIGNATURE = 0x0001
KU_NON_REPUDIATION = 0x0002
KU_KEY_ENCIPHERMENT = 0x0004
KU_DATA_ENCIPHERMENT = 0x0008
KU_KEY_AGREEMENT = 0x0010
KU_KEY_CERT_SIGN = 0x0020
KU_CRL_SIGN = 0x0040
KU_ENCIPHER_ONLY = 0x0080
KU_DECIPHER_ONLY = 0x0100

# 6.5.11.3 extended-key-usage key purpose ids
EKU_SERVER_AUTH = 1
EKU_CLIENT_AUTH = 2
EKU_CODE_SIGNING = 3
EKU_EMAIL_PROTECTION = 4
EKU_TIME_STAMPING = 5
EKU_OCSP_SIGNING = 6

# 6.5.2 top-level TLV tags
_T_SERIAL, _T_SIG_ALGO, _T_ISSUER, _T_NOT_BEFORE, _T_NOT_AFTER, _T_SUBJECT = 1, 2, 3, 4, 5, 6
_T_PK_ALGO, _T_CURVE, _T_PUBKEY, _T_EXTENSIONS, _T_SIGNATURE = 7, 8, 9, 10, 11
# 6.5.11 extension tags
_E_BASIC, _E_KEY_USAGE, _E_EXT_KEY_USAGE, _E_SKID, _E_AKID, _E_FUTURE = 1, 2, 3, 4, 5, 6

_UINT64_ATTRS = frozenset(
    {DN_NODE_ID, DN_FIRMWARE_SIGNING_ID, DN_ICAC_ID, DN_RCAC_ID, DN_FABRIC_ID}
)


class CertificateError(ValueError):
    """A certificate that cannot be decoded, converted, generated or trusted."""


@dataclass(frozen=True, slots=True)
class DistinguishedName:
    """An ordered list of (TLV tag, value) attributes; ints for Matter ids, str otherwise."""

    attributes: tuple[tuple[int, int | str], ...] = ()

    def _one(self, tag: int) -> int | None:
        found = [v for t, v in self.attributes if t == tag]
        if len(found) > 1:
            raise CertificateError(f"DN carries attribute {tag} more than once")
        return int(found[0]) if found else None

    @property
    def node_id(self) -> int | None:
        return self._one(DN_NODE_ID)

    @property
    def fabric_id(self) -> int | None:
        return self._one(DN_FABRIC_ID)

    @property
    def rcac_id(self) -> int | None:
        return self._one(DN_RCAC_ID)

    @property
    def icac_id(self) -> int | None:
        return self._one(DN_ICAC_ID)

    @property
    def cats(self) -> tuple[int, ...]:
        """CASE Authenticated Tags (spec 6.6.2.1.2)."""
        return tuple(int(v) for t, v in self.attributes if t == DN_NOC_CAT)

    @classmethod
    def build(
        cls,
        *,
        node_id: int | None = None,
        fabric_id: int | None = None,
        rcac_id: int | None = None,
        icac_id: int | None = None,
        cats: tuple[int, ...] = (),
        common_name: str | None = None,
    ) -> DistinguishedName:
        """The DN of an operational certificate, attributes in the customary order."""
        attrs: list[tuple[int, int | str]] = []
        for tag, value in (
            (DN_RCAC_ID, rcac_id),
            (DN_ICAC_ID, icac_id),
            (DN_NODE_ID, node_id),
            (DN_FABRIC_ID, fabric_id),
        ):
            if value is not None:
                attrs.append((tag, value))
        attrs += [(DN_NOC_CAT, c) for c in cats]
        if common_name is not None:
            attrs.append((DN_COMMON_NAME, common_name))
        return cls(tuple(attrs))


@dataclass(frozen=True, slots=True)
class BasicConstraints:
    """6.5.11.1 basic-constraints: CA or not, optional path length."""
    is_ca: bool
    path_len: int | None = None


@dataclass(frozen=True, slots=True)
class KeyUsage:
    """6.5.11.2 key-usage: a bitmap of the ``KU_*`` bits."""
    bits: int


@dataclass(frozen=True, slots=True)
class ExtendedKeyUsage:
    """6.5.11.3 extended-key-usage: the ``EKU_*`` key purpose ids, in order."""
    purposes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SubjectKeyId:
    """6.5.11.4 subject-key-identifier (20 octets; ours: SHA-1 of the public key)."""
    key_id: bytes


@dataclass(frozen=True, slots=True)
class AuthorityKeyId:
    """6.5.11.5 authority-key-identifier: the issuer's subject key id."""
    key_id: bytes


@dataclass(frozen=True, slots=True)
class FutureExtension:
    """Any other X.509 extension, carried as its complete DER ``Extension`` encoding."""

    der: bytes


Extension: TypeAlias = (
    BasicConstraints | KeyUsage | ExtendedKeyUsage | SubjectKeyId | AuthorityKeyId | FutureExtension
)


@dataclass(frozen=True)
class MatterCertificate:
    """One Matter operational certificate (RCAC, ICAC or NOC), TLV fields in TLV order.

    Immutable; :mod:`.certs` memoises the X.509 TBS on the instance (hence no ``__slots__``).
    """

    serial: bytes
    issuer: DistinguishedName
    not_before: int  # Matter epoch seconds
    not_after: int  # Matter epoch seconds, NO_EXPIRY for none
    subject: DistinguishedName
    public_key: bytes  # uncompressed SEC1 P-256 point, 65 bytes
    extensions: tuple[Extension, ...]
    signature: bytes = b""  # raw r || s, 64 bytes
    signature_algorithm: int = SIG_ALGO_ECDSA_SHA256
    public_key_algorithm: int = PUBKEY_ALGO_EC
    curve: int = CURVE_PRIME256V1

    def _ext(self, kind: type[Any]) -> Any:
        index: dict[type[Any], Any] | None = self.__dict__.get("_ext_index")
        if index is None:  # built once: chain validation asks for each extension repeatedly
            index = {}
            for e in self.extensions:
                index.setdefault(type(e), e)
            object.__setattr__(self, "_ext_index", index)
        return index.get(kind)

    @property
    def basic_constraints(self) -> BasicConstraints | None:
        ext: BasicConstraints | None = self._ext(BasicConstraints)
        return ext

    @property
    def key_usage(self) -> int | None:
        ext: KeyUsage | None = self._ext(KeyUsage)
        return None if ext is None else ext.bits

    @property
    def extended_key_usage(self) -> tuple[int, ...] | None:
        ext: ExtendedKeyUsage | None = self._ext(ExtendedKeyUsage)
        return None if ext is None else ext.purposes

    @property
    def subject_key_id(self) -> bytes | None:
        ext: SubjectKeyId | None = self._ext(SubjectKeyId)
        return None if ext is None else ext.key_id

    @property
    def authority_key_id(self) -> bytes | None:
        ext: AuthorityKeyId | None = self._ext(AuthorityKeyId)
        return None if ext is None else ext.key_id

    @property
    def is_ca(self) -> bool:
        bc = self.basic_constraints
        return bc is not None and bc.is_ca

    def with_signature(self, signature: bytes) -> MatterCertificate:
        """A copy carrying ``signature`` (64 bytes, r || s)."""
        return dataclasses.replace(self, signature=signature)

    # ---- TLV ------------------------------------------------------------------------------

    def to_tlv(self) -> bytes:
        """The Matter TLV encoding (spec 6.5.2), an anonymous structure."""
        value: dict[tlv.Tag, Any] = {
            _T_SERIAL: self.serial,
            _T_SIG_ALGO: tlv.uint(self.signature_algorithm),
            _T_ISSUER: _dn_to_tlv(self.issuer),
            _T_NOT_BEFORE: tlv.uint(self.not_before),
            _T_NOT_AFTER: tlv.uint(self.not_after),
            _T_SUBJECT: _dn_to_tlv(self.subject),
            _T_PK_ALGO: tlv.uint(self.public_key_algorithm),
            _T_CURVE: tlv.uint(self.curve),
            _T_PUBKEY: self.public_key,
            _T_EXTENSIONS: tlv.TLVList(_ext_to_tlv(e) for e in self.extensions),
            _T_SIGNATURE: self.signature,
        }
        try:
            return tlv.encode(value)
        except tlv.TLVError as e:
            raise CertificateError(f"cannot encode certificate: {e}") from e

    @classmethod
    def from_tlv(cls, data: bytes) -> MatterCertificate:
        """Decode a Matter TLV certificate; :class:`CertificateError` on any malformed input."""
        try:
            value = tlv.decode(data)
        except tlv.TLVError as e:
            raise CertificateError(f"certificate TLV: {e}") from e
        if not isinstance(value, dict):
            raise CertificateError("certificate TLV is not a structure")
        expected = list(range(_T_SERIAL, _T_SIGNATURE + 1))
        if list(value) != expected:
            raise CertificateError(
                f"certificate fields {list(value)} are not the spec's {expected}"
            )
        extensions = value[_T_EXTENSIONS]
        if not isinstance(extensions, tlv.TLVList):
            raise CertificateError("extensions are not a TLV list")
        return cls(
            serial=_bytes(value[_T_SERIAL], "serial-num", 1, 20),
            signature_algorithm=_uint(value[_T_SIG_ALGO], "sig-algo", 0xFF),
            issuer=_dn_from_tlv(value[_T_ISSUER], "issuer"),
            not_before=_uint(value[_T_NOT_BEFORE], "not-before", 0xFFFF_FFFF),
            not_after=_uint(value[_T_NOT_AFTER], "not-after", 0xFFFF_FFFF),
            subject=_dn_from_tlv(value[_T_SUBJECT], "subject"),
            public_key_algorithm=_uint(value[_T_PK_ALGO], "pub-key-algo", 0xFF),
            curve=_uint(value[_T_CURVE], "ec-curve-id", 0xFF),
            public_key=_bytes(value[_T_PUBKEY], "ec-pub-key", 65, 65),
            extensions=tuple(_ext_from_tlv(tag, v) for tag, v in extensions),
            signature=_bytes(value[_T_SIGNATURE], "signature", 64, 64),
        )


def _uint(v: Any, what: str, maximum: int) -> int:
    if not isinstance(v, tlv.uint) or v > maximum:
        raise CertificateError(f"{what}: expected unsigned integer <= {maximum}, got {v!r}")
    return int(v)


def _bytes(v: Any, what: str, lo: int, hi: int) -> bytes:
    if not isinstance(v, bytes) or not lo <= len(v) <= hi:
        raise CertificateError(f"{what}: expected {lo}..{hi} octets")
    return v


def _dn_to_tlv(dn: DistinguishedName) -> tlv.TLVList:
    out = tlv.TLVList()
    for tag, v in dn.attributes:
        out.append((tag, tlv.uint(v) if isinstance(v, int) else v))
    return out


def _dn_from_tlv(v: Any, what: str) -> DistinguishedName:
    if not isinstance(v, tlv.TLVList):
        raise CertificateError(f"{what}: expected a TLV list")
    attrs: list[tuple[int, int | str]] = []
    for tag, value in v:
        if not isinstance(tag, int):
            raise CertificateError(f"{what}: DN attribute without a context tag")
        base = tag & ~PRINTABLE
        if tag in _UINT64_ATTRS:
            attrs.append((tag, _uint(value, f"{what} attribute {tag}", 0xFFFF_FFFF_FFFF_FFFF)))
        elif tag == DN_NOC_CAT:
            attrs.append((tag, _uint(value, f"{what} CAT", 0xFFFF_FFFF)))
        elif 1 <= base <= DN_DOMAIN_COMPONENT and not (tag & PRINTABLE and base == 16):
            if not isinstance(value, str):
                raise CertificateError(f"{what} attribute {tag}: expected a string")
            attrs.append((tag, value))
        else:
            raise CertificateError(f"{what}: unknown DN attribute tag {tag}")
    if not attrs:
        raise CertificateError(f"{what}: empty distinguished name")
    return DistinguishedName(tuple(attrs))


def _ext_to_tlv(e: Extension) -> tuple[int, Any]:
    if isinstance(e, BasicConstraints):
        bc: dict[tlv.Tag, Any] = {1: e.is_ca}
        if e.path_len is not None:
            bc[2] = tlv.uint(e.path_len)
        return _E_BASIC, bc
    if isinstance(e, KeyUsage):
        return _E_KEY_USAGE, tlv.uint(e.bits)
    if isinstance(e, ExtendedKeyUsage):
        return _E_EXT_KEY_USAGE, [tlv.uint(p) for p in e.purposes]
    if isinstance(e, SubjectKeyId):
        return _E_SKID, e.key_id
    if isinstance(e, AuthorityKeyId):
        return _E_AKID, e.key_id
    return _E_FUTURE, e.der


def _ext_from_tlv(tag: Any, v: Any) -> Extension:
    if tag == _E_BASIC:
        if not isinstance(v, dict) or not set(v) <= {1, 2} or not isinstance(v.get(1), bool):
            raise CertificateError("basic-constraints: expected {1: is-ca, [2: path-len]}")
        path = v.get(2)
        return BasicConstraints(v[1], None if path is None else _uint(path, "path-len", 0xFF))
    if tag == _E_KEY_USAGE:
        return KeyUsage(_uint(v, "key-usage", 0x1FF))
    if tag == _E_EXT_KEY_USAGE:
        if not isinstance(v, list) or not v:
            raise CertificateError("extended-key-usage: expected a non-empty array")
        purposes = tuple(_uint(p, "key-purpose-id", 0xFF) for p in v)
        if not all(EKU_SERVER_AUTH <= p <= EKU_OCSP_SIGNING for p in purposes):
            raise CertificateError(f"extended-key-usage: unknown purpose in {purposes}")
        return ExtendedKeyUsage(purposes)
    if tag == _E_SKID:
        return SubjectKeyId(_bytes(v, "subject-key-id", 20, 20))
    if tag == _E_AKID:
        return AuthorityKeyId(_bytes(v, "authority-key-id", 20, 20))
    if tag == _E_FUTURE:
        return FutureExtension(_check_extension_der(_bytes(v, "future-extension", 1, 400)))
    raise CertificateError(f"unknown certificate extension tag {tag!r}")


def _check_extension_der(data: bytes) -> bytes:
    """A future extension must be one DER ``Extension`` (it is copied into the X.509 as is)."""
    from matter_ota.crypto import der

    try:
        parts = der.parse(data).expect(der.SEQUENCE, "extension").children()
        if not 2 <= len(parts) <= 3 or parts[0].tag != der.OID or parts[-1].tag != der.OCTET_STRING:
            raise der.DERError("not OID, [critical], OCTET STRING")
        if len(parts) == 3 and parts[1].tag != der.BOOLEAN:
            raise der.DERError("criticality is not a BOOLEAN")
    except der.DERError as e:
        raise CertificateError(f"future-extension is not a DER Extension: {e}") from None
    return data
