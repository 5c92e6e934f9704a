"""The OTA image header: file prefix, TLV header fields, digest algorithms, errors (11.21.2).

An image file is a fixed 16-byte prefix, a TLV header, then the payload::

    FileIdentifier  uint32 LE  0x1BEEF11E
    TotalSize       uint64 LE  size of the whole file
    HeaderSize      uint32 LE  size of the TLV header that follows
    Header          anonymous TLV structure (11.21.2.4), HeaderSize bytes
    Payload         PayloadSize bytes, digested with ImageDigestType

This module turns header bytes into :class:`OtaImageHeader` and back; files.py streams files.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from matter_ota import tlv

# 11.21.2: "FileIdentifier ... SHALL be 0x1BEEF11E", then TotalSize and HeaderSize, little endian.
FILE_IDENTIFIER = 0x1BEEF11E
PREFIX = struct.Struct("<IQI")
PREFIX_SIZE = PREFIX.size  # 16

# The spec sets no bound on HeaderSize; connectedhomeip's OTAImageHeaderParser (the parser most
# devices run) refuses anything above kMaxHeaderSize = 1024, so an image we accept or build must
# stay within it.
MAX_HEADER_SIZE = 1024
# 11.21.2.4 and the Basic Information cluster's SoftwareVersionString: 1 to 64 bytes.
MAX_VERSION_STRING = 64
# 11.21.2.4: ReleaseNotesURL is at most 256 ASCII characters and SHALL use the https scheme.
MAX_RELEASE_NOTES_URL = 256

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class Tag(enum.IntEnum):
    """Context tags of the TLV header (11.21.2.4)."""

    VENDOR_ID = 0
    PRODUCT_ID = 1
    SOFTWARE_VERSION = 2
    SOFTWARE_VERSION_STRING = 3
    PAYLOAD_SIZE = 4
    MIN_APPLICABLE_VERSION = 5
    MAX_APPLICABLE_VERSION = 6
    RELEASE_NOTES_URL = 7
    IMAGE_DIGEST_TYPE = 8
    IMAGE_DIGEST = 9


_FIELD_NAMES = {
    Tag.VENDOR_ID: "VendorID",
    Tag.PRODUCT_ID: "ProductID",
    Tag.SOFTWARE_VERSION: "SoftwareVersion",
    Tag.SOFTWARE_VERSION_STRING: "SoftwareVersionString",
    Tag.PAYLOAD_SIZE: "PayloadSize",
    Tag.MIN_APPLICABLE_VERSION: "MinApplicableSoftwareVersion",
    Tag.MAX_APPLICABLE_VERSION: "MaxApplicableSoftwareVersion",
    Tag.RELEASE_NOTES_URL: "ReleaseNotesURL",
    Tag.IMAGE_DIGEST_TYPE: "ImageDigestType",
    Tag.IMAGE_DIGEST: "ImageDigest",
}
_MANDATORY = (
    Tag.VENDOR_ID,
    Tag.PRODUCT_ID,
    Tag.SOFTWARE_VERSION,
    Tag.SOFTWARE_VERSION_STRING,
    Tag.PAYLOAD_SIZE,
    Tag.IMAGE_DIGEST_TYPE,
    Tag.IMAGE_DIGEST,
)
_UINT_LIMITS = {
    Tag.VENDOR_ID: U16_MAX,
    Tag.PRODUCT_ID: U16_MAX,
    Tag.SOFTWARE_VERSION: U32_MAX,
    Tag.PAYLOAD_SIZE: U64_MAX,
    Tag.MIN_APPLICABLE_VERSION: U32_MAX,
    Tag.MAX_APPLICABLE_VERSION: U32_MAX,
    Tag.IMAGE_DIGEST_TYPE: 0xFF,
}


def _field(tag: Tag) -> str:
    return f"field {int(tag)} ({_FIELD_NAMES[tag]})"


# --------------------------------------------------------------------------- errors


class Reason(enum.StrEnum):
    """Which rule an image breaks; stable strings for scripts and tests."""

    BAD_FILE_IDENTIFIER = "bad_file_identifier"
    TRUNCATED = "truncated"
    HEADER_TOO_LARGE = "header_too_large"
    MALFORMED_HEADER = "malformed_header"
    MISSING_FIELD = "missing_field"
    VERSION_STRING_TOO_LONG = "version_string_too_long"
    INVALID_FIELD = "invalid_field"
    SIZE_MISMATCH = "size_mismatch"
    UNKNOWN_DIGEST_TYPE = "unknown_digest_type"
    DIGEST_MISMATCH = "digest_mismatch"
    IDENTITY_MISMATCH = "identity_mismatch"


class OtaImageError(ValueError):
    """An OTA image (or the request to build one) breaks a rule of the format.

    ``reason`` names the rule; ``str(exc)`` is one line an operator can act on.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --------------------------------------------------------------------------- digests


class _Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class DigestAlgorithm:
    """One hash from the IANA Named Information Hash Algorithm Registry (RFC 6920)."""

    type_id: int  # the registry's ID, stored in ImageDigestType
    iana_name: str  # "sha-256-128"
    cli_name: str  # "sha256_128", the spelling of connectedhomeip's ota_image_tool.py
    hashlib_name: str
    size: int  # bytes kept; the truncated sha-256 variants keep the leftmost bits

    def new(self) -> _Hasher:
        """A fresh hashlib object for this algorithm."""
        return hashlib.new(self.hashlib_name)

    def finish(self, hasher: _Hasher) -> bytes:
        """The digest, truncated to this algorithm's size."""
        return hasher.digest()[: self.size]


def _algorithm(type_id: int, iana_name: str, cli_name: str, bits: int) -> DigestAlgorithm:
    # The truncated sha-256-N variants hash with sha-256 and keep the leftmost N bits.
    hashlib_name = "sha256" if cli_name.startswith("sha256") else cli_name
    return DigestAlgorithm(type_id, iana_name, cli_name, hashlib_name, bits // 8)


# 11.21.2.4: ImageDigestType is an ID of the IANA Named Information Hash Algorithm Registry.
# IDs 1-12 are every hash the registry defines over SHA-2/SHA-3, the set connectedhomeip's
# OTAImageDigestType enumerates; the other IDs are reserved, unassigned or non-SHA.
DIGESTS: Mapping[int, DigestAlgorithm] = {
    a.type_id: a
    for a in (
        _algorithm(1, "sha-256", "sha256", 256),
        _algorithm(2, "sha-256-128", "sha256_128", 128),
        _algorithm(3, "sha-256-120", "sha256_120", 120),
        _algorithm(4, "sha-256-96", "sha256_96", 96),
        _algorithm(5, "sha-256-64", "sha256_64", 64),
        _algorithm(6, "sha-256-32", "sha256_32", 32),
        _algorithm(7, "sha-384", "sha384", 384),
        _algorithm(8, "sha-512", "sha512", 512),
        _algorithm(9, "sha3-224", "sha3_224", 224),
        _algorithm(10, "sha3-256", "sha3_256", 256),
        _algorithm(11, "sha3-384", "sha3_384", 384),
        _algorithm(12, "sha3-512", "sha3_512", 512),
    )
}
DEFAULT_DIGEST = DIGESTS[1]


def digest_by_name(name: str) -> DigestAlgorithm:
    """The algorithm called ``name``: ``sha256_128`` (ota_image_tool), ``sha-256-128`` (IANA)."""
    wanted = name.strip().lower()
    for algorithm in DIGESTS.values():
        if wanted in (algorithm.cli_name, algorithm.iana_name):
            return algorithm
    known = ", ".join(a.cli_name for a in DIGESTS.values())
    raise OtaImageError(Reason.UNKNOWN_DIGEST_TYPE, f"unknown digest {name!r} (known: {known})")


def digest_by_id(type_id: int) -> DigestAlgorithm:
    """The algorithm with registry ID ``type_id``, else ``OtaImageError(UNKNOWN_DIGEST_TYPE)``."""
    try:
        return DIGESTS[type_id]
    except KeyError:
        raise OtaImageError(
            Reason.UNKNOWN_DIGEST_TYPE,
            f"unknown digest type {type_id} in {_field(Tag.IMAGE_DIGEST_TYPE)}: the format "
            f"allows the IANA hash IDs 1-12",
        ) from None


# --------------------------------------------------------------------------- the header


@dataclass(frozen=True)
class OtaImageHeader:
    """The decoded header of an image file, plus the two sizes from its fixed prefix.

    ``header_size`` is the file's HeaderSize field: the length of the TLV header alone; the
    payload starts at ``payload_offset`` (16 + header_size).
    """

    vendor_id: int
    product_id: int
    software_version: int
    software_version_string: str
    payload_size: int
    digest_type: int
    digest: bytes
    header_size: int
    total_size: int
    min_applicable_version: int | None = None
    max_applicable_version: int | None = None
    release_notes_url: str | None = None

    @property
    def payload_offset(self) -> int:
        """Where the payload starts in the file: the fixed prefix plus the TLV header."""
        return PREFIX_SIZE + self.header_size

    @property
    def digest_algorithm(self) -> DigestAlgorithm:
        """The algorithm the header's ImageDigestType names."""
        return DIGESTS[self.digest_type]

    def applies_to(self, running_version: int) -> bool:
        """True when a device on ``running_version`` is inside the min/max applicable range."""
        low, high = self.min_applicable_version, self.max_applicable_version
        return (low is None or low <= running_version) and (high is None or running_version <= high)

    def to_json(self) -> dict[str, Any]:
        """The `matter-ota image show --json` object (digest in lower-case hex)."""
        return {
            "vendor_id": self.vendor_id,
            "product_id": self.product_id,
            "software_version": self.software_version,
            "software_version_string": self.software_version_string,
            "payload_size": self.payload_size,
            "min_applicable_version": self.min_applicable_version,
            "max_applicable_version": self.max_applicable_version,
            "release_notes_url": self.release_notes_url,
            "digest_type": self.digest_type,
            "digest": self.digest.hex(),
            "header_size": self.header_size,
            "total_size": self.total_size,
        }


def _header_fields(header: OtaImageHeader) -> dict[int, object]:
    """The TLV structure members of ``header``, in tag order, optional ones only when set."""
    fields: dict[int, object] = {
        Tag.VENDOR_ID: tlv.uint(header.vendor_id),
        Tag.PRODUCT_ID: tlv.uint(header.product_id),
        Tag.SOFTWARE_VERSION: tlv.uint(header.software_version),
        Tag.SOFTWARE_VERSION_STRING: header.software_version_string,
        Tag.PAYLOAD_SIZE: tlv.uint(header.payload_size),
    }
    if header.min_applicable_version is not None:
        fields[Tag.MIN_APPLICABLE_VERSION] = tlv.uint(header.min_applicable_version)
    if header.max_applicable_version is not None:
        fields[Tag.MAX_APPLICABLE_VERSION] = tlv.uint(header.max_applicable_version)
    if header.release_notes_url is not None:
        fields[Tag.RELEASE_NOTES_URL] = header.release_notes_url
    fields[Tag.IMAGE_DIGEST_TYPE] = tlv.uint(header.digest_type)
    fields[Tag.IMAGE_DIGEST] = header.digest
    return {int(tag): value for tag, value in fields.items()}  # plain ints: context tags


def _bad(message: str) -> OtaImageError:
    return OtaImageError(Reason.MALFORMED_HEADER, f"malformed header TLV: {message}")


def _get_uint(fields: Mapping[object, object], tag: Tag) -> int | None:
    """The field's value, None when absent; a present field must be an in-range uint."""
    if int(tag) not in fields:
        return None
    value = fields[int(tag)]
    if not isinstance(value, tlv.uint):
        raise _bad(f"{_field(tag)} is {_kind(value)}, not an unsigned integer")
    if value > _UINT_LIMITS[tag]:
        raise OtaImageError(
            Reason.INVALID_FIELD,
            f"{_field(tag)} is {int(value)}, over its maximum {_UINT_LIMITS[tag]}",
        )
    return int(value)


def _uint(fields: Mapping[object, object], tag: Tag) -> int:
    """A mandatory unsigned field (presence was checked with the other mandatory fields)."""
    value = _get_uint(fields, tag)
    if value is None:
        raise OtaImageError(Reason.MISSING_FIELD, f"missing mandatory {_field(tag)}")
    return value


def _get_str(fields: Mapping[object, object], tag: Tag) -> str | None:
    if int(tag) not in fields:
        return None
    value = fields[int(tag)]
    if not isinstance(value, str):
        raise _bad(f"{_field(tag)} is {_kind(value)}, not a UTF-8 string")
    return value


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, tlv.uint):
        return "an unsigned integer"
    if isinstance(value, int):
        return "a signed integer"
    if isinstance(value, float):
        return "a floating-point number"
    if isinstance(value, str):
        return "a UTF-8 string"
    if isinstance(value, bytes):
        return "an octet string"
    if isinstance(value, dict):
        return "a structure"
    if isinstance(value, list):
        return "an array"
    return "a list" if isinstance(value, tlv.TLVList) else "null"


def decode_header_tlv(data: bytes, *, header_size: int, total_size: int) -> OtaImageHeader:
    """Decode and check the TLV header (11.21.2.4) given the two sizes from the prefix.

    Unknown context tags and profile tags are ignored: later revisions may add fields.
    """
    try:
        tag, value = tlv.decode_element(data)
    except tlv.TLVError as exc:
        raise _bad(str(exc)) from None
    if tag is not None or not isinstance(value, dict):
        raise _bad(f"the header must be one anonymous structure, found {_kind(value)}")
    missing = [t for t in _MANDATORY if int(t) not in value]
    if missing:
        names = ", ".join(f"{int(t)} ({_FIELD_NAMES[t]})" for t in missing)
        raise OtaImageError(Reason.MISSING_FIELD, f"missing mandatory field {names}")

    version_string = _get_str(value, Tag.SOFTWARE_VERSION_STRING) or ""
    encoded_length = len(version_string.encode())
    if encoded_length > MAX_VERSION_STRING:
        raise OtaImageError(
            Reason.VERSION_STRING_TOO_LONG,
            f"version string too long: {_field(Tag.SOFTWARE_VERSION_STRING)} is "
            f"{encoded_length} bytes, the limit is {MAX_VERSION_STRING}",
        )
    if encoded_length == 0:
        raise OtaImageError(
            Reason.INVALID_FIELD, f"{_field(Tag.SOFTWARE_VERSION_STRING)} is empty (1-64 bytes)"
        )
    url = _get_str(value, Tag.RELEASE_NOTES_URL)
    if url is not None and not 1 <= len(url.encode()) <= MAX_RELEASE_NOTES_URL:
        raise OtaImageError(
            Reason.INVALID_FIELD,
            f"{_field(Tag.RELEASE_NOTES_URL)} is {len(url.encode())} bytes, allowed "
            f"1-{MAX_RELEASE_NOTES_URL}",
        )

    digest_type = _uint(value, Tag.IMAGE_DIGEST_TYPE)
    algorithm = digest_by_id(digest_type)
    digest = value[int(Tag.IMAGE_DIGEST)]
    if not isinstance(digest, bytes):
        raise _bad(f"{_field(Tag.IMAGE_DIGEST)} is {_kind(digest)}, not an octet string")
    if len(digest) != algorithm.size:
        raise OtaImageError(
            Reason.INVALID_FIELD,
            f"{_field(Tag.IMAGE_DIGEST)} is {len(digest)} bytes, {algorithm.iana_name} "
            f"(type {digest_type}) digests are {algorithm.size}",
        )

    vendor_id = _uint(value, Tag.VENDOR_ID)
    product_id = _uint(value, Tag.PRODUCT_ID)
    software_version = _uint(value, Tag.SOFTWARE_VERSION)
    payload_size = _uint(value, Tag.PAYLOAD_SIZE)
    expected_total = PREFIX_SIZE + header_size + payload_size
    if total_size != expected_total:
        raise OtaImageError(
            Reason.SIZE_MISMATCH,
            f"total/payload size mismatch: TotalSize is {total_size} but 16 + HeaderSize "
            f"{header_size} + PayloadSize {payload_size} = {expected_total}",
        )
    return OtaImageHeader(
        vendor_id=vendor_id,
        product_id=product_id,
        software_version=software_version,
        software_version_string=version_string,
        payload_size=payload_size,
        min_applicable_version=_get_uint(value, Tag.MIN_APPLICABLE_VERSION),
        max_applicable_version=_get_uint(value, Tag.MAX_APPLICABLE_VERSION),
        release_notes_url=url,
        digest_type=digest_type,
        digest=bytes(digest),
        header_size=header_size,
        total_size=total_size,
    )


def parse_prefix(prefix: bytes) -> tuple[int, int]:
    """(total_size, header_size) from the 16-byte prefix; checks identifier and header limit.

    A file too short for the prefix but not starting with the identifier is reported as not an
    image at all (bad file identifier), not as a truncated one.
    """
    if len(prefix) >= 4:
        (identifier,) = struct.unpack_from("<I", prefix)
        if identifier != FILE_IDENTIFIER:
            raise OtaImageError(
                Reason.BAD_FILE_IDENTIFIER,
                f"bad file identifier 0x{identifier:08X} (a Matter OTA image starts with "
                f"0x{FILE_IDENTIFIER:08X}, little endian)",
            )
    if len(prefix) < PREFIX_SIZE:
        raise OtaImageError(
            Reason.TRUNCATED,
            f"truncated at byte {len(prefix)}: the fixed prefix needs {PREFIX_SIZE} bytes",
        )
    _, total_size, header_size = PREFIX.unpack_from(prefix)
    if header_size > MAX_HEADER_SIZE:
        raise OtaImageError(
            Reason.HEADER_TOO_LARGE,
            f"header size {header_size} over the limit of {MAX_HEADER_SIZE} bytes",
        )
    return total_size, header_size


# --------------------------------------------------------------------------- encode


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise OtaImageError(Reason.INVALID_FIELD, message)


def encode_header(
    *,
    vendor_id: int,
    product_id: int,
    software_version: int,
    software_version_string: str,
    payload_size: int,
    digest: bytes,
    algorithm: DigestAlgorithm,
    min_applicable_version: int | None,
    max_applicable_version: int | None,
    release_notes_url: str | None,
) -> tuple[bytes, OtaImageHeader]:
    """The prefix + TLV header bytes of a new image, and the header they decode to.

    Refuses what the format or a device would refuse, with the rules of connectedhomeip's
    ota_image_tool.py (an applicable-version range below the image's own version).
    """
    _require(0 <= vendor_id <= U16_MAX, f"vendor ID {vendor_id} is not in 0-0xFFFF")
    _require(0 <= product_id <= U16_MAX, f"product ID {product_id} is not in 0-0xFFFF")
    _require(0 <= software_version <= U32_MAX, f"version {software_version} is not in 0-{U32_MAX}")
    version_length = len(software_version_string.encode())
    if version_length > MAX_VERSION_STRING:
        raise OtaImageError(
            Reason.VERSION_STRING_TOO_LONG,
            f"version string too long: {version_length} bytes, the limit is {MAX_VERSION_STRING}",
        )
    _require(version_length > 0, "the version string is empty (1-64 bytes)")
    for label, value in (("minimum", min_applicable_version), ("maximum", max_applicable_version)):
        if value is None:
            continue
        _require(0 <= value <= U32_MAX, f"{label} applicable version {value} is not in 0-{U32_MAX}")
        _require(
            value < software_version,
            f"{label} applicable version {value} is not below the image's version "
            f"{software_version}",
        )
    if min_applicable_version is not None and max_applicable_version is not None:
        _require(
            min_applicable_version <= max_applicable_version,
            f"minimum applicable version {min_applicable_version} is above the maximum "
            f"{max_applicable_version}",
        )
    if release_notes_url is not None:
        url_length = len(release_notes_url.encode())
        _require(
            1 <= url_length <= MAX_RELEASE_NOTES_URL,
            f"release notes URL is {url_length} bytes, allowed 1-{MAX_RELEASE_NOTES_URL}",
        )
        _require(
            release_notes_url.isascii() and release_notes_url.lower().startswith("https://"),
            f"release notes URL {release_notes_url!r} must be an ASCII https:// URL (11.21.2.4)",
        )
    _require(0 <= payload_size <= U64_MAX, f"payload size {payload_size} is out of range")
    _require(len(digest) == algorithm.size, "digest length does not match its algorithm")

    provisional = OtaImageHeader(
        vendor_id=vendor_id,
        product_id=product_id,
        software_version=software_version,
        software_version_string=software_version_string,
        payload_size=payload_size,
        min_applicable_version=min_applicable_version,
        max_applicable_version=max_applicable_version,
        release_notes_url=release_notes_url,
        digest_type=algorithm.type_id,
        digest=digest,
        header_size=0,
        total_size=0,
    )
    body = tlv.encode(_header_fields(provisional))
    if len(body) > MAX_HEADER_SIZE:  # cannot happen with the limits above; kept as a guard
        raise OtaImageError(
            Reason.HEADER_TOO_LARGE,
            f"header size {len(body)} over the limit of {MAX_HEADER_SIZE} bytes",
        )
    total_size = PREFIX_SIZE + len(body) + payload_size
    prefix = PREFIX.pack(FILE_IDENTIFIER, total_size, len(body))
    header = replace(provisional, header_size=len(body), total_size=total_size)
    return prefix + body, header
