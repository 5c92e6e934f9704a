"""The image check of a DCL download: its OTA header must describe what the ledger lists.

A file that matches the ledger's size and checksum can still be the wrong image (a vendor
uploading the build of another product under this entry). Before serving it we verify it as an
OTA image (Matter Core spec 11.21.2: prefix, header, sizes, payload digest) whose VendorID,
ProductID and SoftwareVersion are the ledger's.

:class:`StreamingImageCheck` does it on the bytes as they are downloaded (no second read of the
file, constant memory), with the image module's parser and rules.
"""

from __future__ import annotations

from typing import Any

from matter_ota.ota_image import (
    PREFIX_SIZE,
    OtaImageError,
    OtaImageHeader,
    Reason,
    check_identity,
    parse_header,
    parse_prefix,
)
from matter_ota.sources.dcl_ledger import ModelVersion


class ImageRejected(Exception):
    """The downloaded file is not the OTA image the ledger describes."""


def _rejected(exc: OtaImageError) -> ImageRejected:
    return ImageRejected(f"{exc.reason}: {exc.message}")


class StreamingImageCheck:
    """Verifies an OTA image fed to it in order, from byte 0, in pieces of any size."""

    def __init__(self) -> None:
        self._head = bytearray()  # prefix + header, at most 16 + MAX_HEADER_SIZE bytes
        self._header: OtaImageHeader | None = None
        self._hasher: Any = None
        self._payload_seen = 0
        self._error: OtaImageError | None = None
        self.size = 0

    def feed(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self._error is not None:
            return
        if self._header is None:
            self._head += data
            try:
                if len(self._head) < PREFIX_SIZE:
                    return
                _, header_size = parse_prefix(bytes(self._head[:PREFIX_SIZE]))
                if len(self._head) < PREFIX_SIZE + header_size:
                    return
                header = parse_header(bytes(self._head))
            except OtaImageError as exc:
                self._error = exc
                return
            self._header = header
            self._hasher = header.digest_algorithm.new()
            data = bytes(self._head[header.payload_offset :])
            self._head = bytearray()
        want = self._header.payload_size - self._payload_seen
        if want > 0:
            piece = data if len(data) <= want else memoryview(data)[:want]
            self._hasher.update(piece)
            self._payload_seen += len(piece)

    def finish(self, mv: ModelVersion) -> OtaImageHeader:
        """The verified header, or :class:`ImageRejected` naming the broken rule."""
        try:
            if self._error is not None:
                raise self._error
            header = self._header
            if header is None:
                raise OtaImageError(Reason.TRUNCATED, f"truncated at byte {self.size}: no header")
            if self.size != header.total_size:
                raise OtaImageError(
                    Reason.SIZE_MISMATCH,
                    f"the file is {self.size} bytes but TotalSize is {header.total_size}",
                )
            check_identity(
                header,
                vendor_id=mv.vid,
                product_id=mv.pid,
                software_version=mv.software_version,
            )
            actual = header.digest_algorithm.finish(self._hasher)
            if actual != header.digest:
                raise OtaImageError(
                    Reason.DIGEST_MISMATCH,
                    f"digest mismatch: the payload's {header.digest_algorithm.iana_name} is "
                    f"{actual.hex()}, the header says {header.digest.hex()}",
                )
        except OtaImageError as exc:
            raise _rejected(exc) from None
        return header
