"""OTA image files on disk or in memory: read the header, verify, extract, build.

Reading the header touches only the prefix and the header, so the policy engine, the image store
and the BDX sender can call :func:`read_header` on every query. Verification, extraction and
creation stream the payload through one fixed-size buffer: memory use does not grow with the
image.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from matter_ota.ota_image.header import (
    DEFAULT_DIGEST,
    PREFIX_SIZE,
    DigestAlgorithm,
    OtaImageError,
    OtaImageHeader,
    Reason,
    decode_header_tlv,
    encode_header,
    parse_prefix,
)

CHUNK_SIZE = 1 << 20  # 1 MiB reads: large enough that hashing, not Python, dominates

Progress = Callable[[int, int], None]  # (payload bytes done, payload bytes in all)


class _Source(Protocol):
    """What the readers need of a file: raw ``FileIO`` and ``BytesIO`` both fit."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


def _read_header_from(stream: _Source) -> OtaImageHeader:
    total_size, header_size = parse_prefix(_read_upto(stream, PREFIX_SIZE))
    body = _read_upto(stream, header_size)
    if len(body) < header_size:
        raise OtaImageError(
            Reason.TRUNCATED,
            f"truncated at byte {PREFIX_SIZE + len(body)}: the header ends at byte "
            f"{PREFIX_SIZE + header_size}",
        )
    return decode_header_tlv(body, header_size=header_size, total_size=total_size)


def parse_header(data: bytes) -> OtaImageHeader:
    """The header of an image whose first bytes are ``data`` (more bytes than needed are fine).

    Checks the prefix and the header; the payload and the file length are not looked at.
    """
    return _read_header_from(io.BytesIO(data))


def _check_file_size(header: OtaImageHeader, file_size: int) -> None:
    if file_size < header.total_size:
        raise OtaImageError(
            Reason.TRUNCATED,
            f"truncated at byte {file_size}: TotalSize announces {header.total_size} bytes",
        )
    if file_size > header.total_size:
        raise OtaImageError(
            Reason.SIZE_MISMATCH,
            f"total/payload size mismatch: the file is {file_size} bytes but TotalSize is "
            f"{header.total_size} ({file_size - header.total_size} bytes after the payload)",
        )


def _regular_file_size(stream: io.FileIO) -> int | None:
    """The length of a regular file; None for pipes and devices, whose length is unknown."""
    info = os.fstat(stream.fileno())
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def read_header(path: str | os.PathLike[str]) -> OtaImageHeader:
    """Read only the prefix and header of the image at ``path``; cheap enough for every query.

    Also checks that a regular file's length matches TotalSize (one ``fstat``), so a truncated
    upload is caught before an offer is made; the payload digest is checked by
    :func:`verify_image`.
    """
    with open(path, "rb", buffering=0) as stream:
        header = _read_header_from(stream)
        size = _regular_file_size(stream)
        if size is not None:
            _check_file_size(header, size)
    return header


def _read_upto(stream: _Source, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at end of file (raw streams may return short reads)."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def _payload_chunks(stream: _Source, header: OtaImageHeader) -> Iterator[memoryview]:
    """The payload in chunks of at most CHUNK_SIZE, reusing one buffer; checks its length."""
    buffer = bytearray(min(CHUNK_SIZE, max(header.payload_size, 1)))
    view = memoryview(buffer)
    done = 0
    while done < header.payload_size:
        want = min(len(buffer), header.payload_size - done)
        got = stream.readinto(view[:want])
        if not got:
            raise OtaImageError(
                Reason.TRUNCATED,
                f"truncated at byte {header.payload_offset + done}: TotalSize announces "
                f"{header.total_size} bytes",
            )
        done += got
        yield view[:got]
    extra = stream.read(1)
    if extra:
        raise OtaImageError(
            Reason.SIZE_MISMATCH,
            f"total/payload size mismatch: data continues after byte {header.total_size}, "
            "where TotalSize says the file ends",
        )


def check_identity(
    header: OtaImageHeader,
    *,
    vendor_id: int | None = None,
    product_id: int | None = None,
    software_version: int | None = None,
) -> None:
    """Raise ``OtaImageError(IDENTITY_MISMATCH)`` unless the header carries the values asked."""
    for label, have, want, fmt in (
        ("vendor ID", header.vendor_id, vendor_id, "0x{:04X}"),
        ("product ID", header.product_id, product_id, "0x{:04X}"),
        ("software version", header.software_version, software_version, "{}"),
    ):
        if want is not None and have != want:
            raise OtaImageError(
                Reason.IDENTITY_MISMATCH,
                f"{label} {fmt.format(have)} in the image, {fmt.format(want)} was asked",
            )


def _verify_stream(
    stream: _Source,
    *,
    sink: IO[bytes] | None,
    progress: Progress | None,
    vendor_id: int | None,
    product_id: int | None,
    software_version: int | None,
    file_size: int | None = None,
) -> OtaImageHeader:
    header = _read_header_from(stream)
    check_identity(
        header, vendor_id=vendor_id, product_id=product_id, software_version=software_version
    )
    if file_size is not None:  # fail at once, not after hashing gigabytes
        _check_file_size(header, file_size)
    algorithm = header.digest_algorithm
    hasher = algorithm.new()
    done = 0
    for chunk in _payload_chunks(stream, header):
        hasher.update(chunk)
        if sink is not None:
            sink.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(done, header.payload_size)
    actual = algorithm.finish(hasher)
    if actual != header.digest:
        raise OtaImageError(
            Reason.DIGEST_MISMATCH,
            f"digest mismatch: the payload's {algorithm.iana_name} is {actual.hex()}, the "
            f"header says {header.digest.hex()}",
        )
    return header


def verify_image(
    path: str | os.PathLike[str],
    *,
    vendor_id: int | None = None,
    product_id: int | None = None,
    software_version: int | None = None,
    progress: Progress | None = None,
) -> OtaImageHeader:
    """Check everything in the image at ``path``: prefix, header, sizes, identity, digest.

    Streams the payload; memory use is one CHUNK_SIZE buffer whatever the image size.
    """
    with open(path, "rb", buffering=0) as stream:
        return _verify_stream(
            stream,
            sink=None,
            progress=progress,
            vendor_id=vendor_id,
            product_id=product_id,
            software_version=software_version,
            file_size=_regular_file_size(stream),
        )


def verify_bytes(
    data: bytes,
    *,
    vendor_id: int | None = None,
    product_id: int | None = None,
    software_version: int | None = None,
) -> OtaImageHeader:
    """:func:`verify_image` for an image held in memory."""
    return _verify_stream(
        io.BytesIO(data),
        sink=None,
        progress=None,
        vendor_id=vendor_id,
        product_id=product_id,
        software_version=software_version,
    )


def _create(partial: Path, output: Path) -> IO[bytes]:
    """Open the temporary file for ``output``; an error names ``output``, not the temporary."""
    try:
        return open(partial, "wb")
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(output)) from None


def _partial_path(output: Path) -> Path:
    """The temporary beside ``output``; OSError when ``output`` names no file (``""``, ``/``)."""
    if not output.name:
        raise IsADirectoryError(errno.EISDIR, "a directory, not a file name", str(output))
    return output.with_name(f".{output.name}.partial")


def extract_payload(
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> OtaImageHeader:
    """Verify the image at ``path`` and write its payload to ``output``.

    The payload goes to a temporary file beside ``output`` that is renamed only once the digest
    matched, so ``output`` never holds an unverified payload.
    """
    output = Path(output)
    partial = _partial_path(output)
    try:
        with open(path, "rb", buffering=0) as stream, _create(partial, output) as sink:
            header = _verify_stream(
                stream,
                sink=sink,
                progress=progress,
                vendor_id=None,
                product_id=None,
                software_version=None,
                file_size=_regular_file_size(stream),
            )
        os.replace(partial, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return header


def build_image(
    payload: bytes,
    *,
    vendor_id: int,
    product_id: int,
    software_version: int,
    software_version_string: str,
    digest: DigestAlgorithm = DEFAULT_DIGEST,
    min_applicable_version: int | None = None,
    max_applicable_version: int | None = None,
    release_notes_url: str | None = None,
) -> bytes:
    """A complete image around ``payload``, in memory (tests, the emulator, small images)."""
    hasher = digest.new()
    hasher.update(payload)
    head, _ = encode_header(
        vendor_id=vendor_id,
        product_id=product_id,
        software_version=software_version,
        software_version_string=software_version_string,
        payload_size=len(payload),
        digest=digest.finish(hasher),
        algorithm=digest,
        min_applicable_version=min_applicable_version,
        max_applicable_version=max_applicable_version,
        release_notes_url=release_notes_url,
    )
    return head + payload


def create_image(
    payload: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    vendor_id: int,
    product_id: int,
    software_version: int,
    software_version_string: str,
    digest: DigestAlgorithm = DEFAULT_DIGEST,
    min_applicable_version: int | None = None,
    max_applicable_version: int | None = None,
    release_notes_url: str | None = None,
    progress: Progress | None = None,
) -> OtaImageHeader:
    """Write an image of the file ``payload`` to ``output`` in one streaming pass.

    The header's length depends on the payload's size, never on the digest's value, so a header
    with a zero digest is written first, the payload copied while hashed, and the real digest
    written over the placeholder. ``output`` appears (atomically) only when complete.
    """
    fields: dict[str, Any] = {
        "vendor_id": vendor_id,
        "product_id": product_id,
        "software_version": software_version,
        "software_version_string": software_version_string,
        "algorithm": digest,
        "min_applicable_version": min_applicable_version,
        "max_applicable_version": max_applicable_version,
        "release_notes_url": release_notes_url,
    }
    output = Path(output)
    partial = _partial_path(output)
    try:
        with open(payload, "rb", buffering=0) as source, _create(partial, output) as sink:
            size = os.fstat(source.fileno()).st_size
            placeholder, _ = encode_header(payload_size=size, digest=bytes(digest.size), **fields)
            sink.write(placeholder)
            hasher = digest.new()
            buffer = bytearray(CHUNK_SIZE)
            view = memoryview(buffer)
            done = 0
            while got := source.readinto(buffer):
                hasher.update(view[:got])
                sink.write(view[:got])
                done += got
                if progress is not None:
                    progress(done, size)
            if done != size:
                raise OtaImageError(
                    Reason.SIZE_MISMATCH,
                    f"the payload changed size while being read ({size} then {done} bytes)",
                )
            head, header = encode_header(payload_size=size, digest=digest.finish(hasher), **fields)
            sink.seek(0)
            sink.write(head)
        os.replace(partial, output)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return header
