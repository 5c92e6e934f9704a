"""Matter OTA software image files (Matter Core spec 11.21.2): build, parse, verify, extract.

The public API for the rest of the daemon::

    from matter_ota.ota_image import OtaImageError, OtaImageHeader, read_header, verify_image

:func:`read_header` reads only the 16-byte prefix and the TLV header (cheap: call it per query);
:func:`verify_image` and :func:`extract_payload` stream the payload in constant memory;
:func:`create_image` and :func:`build_image` write new images. Every problem with an image's
*content* raises :class:`OtaImageError` and nothing else; its ``reason`` names the broken rule
and its message says where. Operating-system failures (missing file, permission) stay
:class:`OSError`.
"""

from matter_ota.ota_image.files import (
    CHUNK_SIZE,
    Progress,
    build_image,
    check_identity,
    create_image,
    extract_payload,
    parse_header,
    read_header,
    verify_bytes,
    verify_image,
)
from matter_ota.ota_image.header import (
    DEFAULT_DIGEST,
    DIGESTS,
    FILE_IDENTIFIER,
    MAX_HEADER_SIZE,
    MAX_RELEASE_NOTES_URL,
    MAX_VERSION_STRING,
    PREFIX_SIZE,
    DigestAlgorithm,
    OtaImageError,
    OtaImageHeader,
    Reason,
    Tag,
    decode_header_tlv,
    digest_by_id,
    digest_by_name,
    encode_header,
    parse_prefix,
)

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_DIGEST",
    "DIGESTS",
    "FILE_IDENTIFIER",
    "MAX_HEADER_SIZE",
    "MAX_RELEASE_NOTES_URL",
    "MAX_VERSION_STRING",
    "PREFIX_SIZE",
    "DigestAlgorithm",
    "OtaImageError",
    "OtaImageHeader",
    "Progress",
    "Reason",
    "Tag",
    "build_image",
    "check_identity",
    "create_image",
    "decode_header_tlv",
    "digest_by_id",
    "digest_by_name",
    "encode_header",
    "extract_payload",
    "parse_header",
    "parse_prefix",
    "read_header",
    "verify_bytes",
    "verify_image",
]
