"""The image check of a DCL download: its OTA header must describe what the ledger lists.

A file that matches the ledger's size and checksum can still be the wrong image (a vendor
uploading the build of another product under this entry). Before serving it we read its OTA
image header (Matter Core spec 11.21.2) and compare VendorID, ProductID and SoftwareVersion with
the ledger's entry, and verify the payload digest the header carries, streaming (constant
memory).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from matter_ota import tlv
from matter_ota.sources.dcl_download import ImageRejected
from matter_ota.sources.dcl_ledger import CHECKSUM_ALGORITHMS, ModelVersion

# 11.21.2: FileIdentifier (uint32), TotalSize (uint64), HeaderSize (uint32), all little endian.
OTA_MAGIC = 0x1BEEF11E
PREFIX = struct.Struct("<IQI")
MAX_HEADER = 4096  # the header's fields are bounded well below this (strings <= 64 / 256)
READ_CHUNK = 1 << 20


def _uint(header: dict[Any, Any], tag: int, name: str) -> int:
    value = header.get(tag)
    if not isinstance(value, tlv.uint):
        raise ImageRejected(f"header field {name} missing or not an unsigned integer")
    return int(value)


def check_ota_image(path: Path, mv: ModelVersion) -> None:
    """Raise :class:`ImageRejected` unless ``path`` is the OTA image the ledger describes."""
    with open(path, "rb") as f:
        prefix = f.read(PREFIX.size)
        if len(prefix) < PREFIX.size:
            raise ImageRejected("shorter than an OTA image prefix")
        magic, total, header_size = PREFIX.unpack(prefix)
        if magic != OTA_MAGIC:
            raise ImageRejected(f"not an OTA image (file identifier 0x{magic:08X})")
        actual = path.stat().st_size
        if total != actual:
            raise ImageRejected(f"TotalSize {total} but the file is {actual} bytes")
        if header_size > MAX_HEADER:
            raise ImageRejected(f"HeaderSize {header_size} is larger than {MAX_HEADER}")
        try:
            header = tlv.decode(f.read(header_size))
        except tlv.TLVError as exc:
            raise ImageRejected(f"header TLV: {exc}") from None
        if not isinstance(header, dict):
            raise ImageRejected("header is not a TLV structure")
        for tag, name, want in (
            (0, "VendorID", mv.vid),
            (1, "ProductID", mv.pid),
            (2, "SoftwareVersion", mv.software_version),
        ):
            got = _uint(header, tag, name)
            if got != want:
                raise ImageRejected(f"header {name} {got:#x} differs from the ledger's {want:#x}")
        payload_size = _uint(header, 4, "PayloadSize")
        if PREFIX.size + header_size + payload_size != total:
            raise ImageRejected(f"PayloadSize {payload_size} does not add up to TotalSize {total}")
        algorithm = CHECKSUM_ALGORITHMS.get(_uint(header, 8, "ImageDigestType"))
        digest = header.get(9)
        if algorithm is None or not isinstance(digest, bytes):
            raise ImageRejected("header ImageDigestType unknown or ImageDigest missing")
        hasher = algorithm.new()
        while chunk := f.read(READ_CHUNK):
            hasher.update(chunk)
        if algorithm.checksum(hasher) != digest:
            raise ImageRejected(f"payload {algorithm.name} differs from the header's ImageDigest")
