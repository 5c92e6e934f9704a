"""Hand-assembled OTA images (spec 11.21.2) for tests that need every field wrong on purpose.

``header_tlv(t3="x", t8=DROP)`` is a valid header's TLV fields with overrides by tag number;
``raw_image(fields)`` wraps fields (or already encoded bytes) into a file.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from matter_ota import tlv
from matter_ota.tlv import uint

#: 11.21.2: the file identifier that opens every OTA image.
MAGIC = 0x1BEEF11E

#: An override value that removes the field from :func:`header_tlv`.
DROP = object()


def header_tlv(**overrides: Any) -> dict[int, Any]:
    """A valid header's TLV fields (sha-256 of b"abc"); overrides by tag number ``t<N>``."""
    fields: dict[int, Any] = {
        0: uint(0xFFF1),
        1: uint(0x8000),
        2: uint(2),
        3: "2.0",
        4: uint(3),
        8: uint(1),
        9: hashlib.sha256(b"abc").digest(),
    }
    for key, value in overrides.items():
        tag = int(key[1:])
        if value is DROP:
            del fields[tag]
        else:
            fields[tag] = value
    return fields


def raw_image(
    fields: dict[int, Any] | bytes | None = None,
    payload: bytes = b"abc",
    *,
    identifier: int = MAGIC,
    total: int | None = None,
    header_size: int | None = None,
) -> bytes:
    """An image assembled by hand (default: :func:`header_tlv`'s fields over b"abc")."""
    if fields is None:
        fields = header_tlv()
    body = fields if isinstance(fields, bytes) else tlv.encode(fields)
    size = len(body) if header_size is None else header_size
    total = 16 + len(body) + len(payload) if total is None else total
    return struct.pack("<IQI", identifier, total, size) + body + payload
