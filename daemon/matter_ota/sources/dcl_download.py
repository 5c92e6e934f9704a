"""Downloading one DCL image: streamed to disk, resumed, checked, committed or quarantined.

Memory stays constant in the image size: the body is written as it arrives and hashed on the
way. A transport failure (connection dropped, timeout) resumes from the bytes on disk with an
HTTP ``Range`` request; a server that ignores Range (200 instead of 206) restarts from zero.
Every check that fails for a reason in the *bytes* (size, checksum, image header) quarantines
the file; failures of the *transfer* keep the partial file for the next attempt.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx

from matter_ota.sources.dcl_cache import CacheFull, ImageCache
from matter_ota.sources.dcl_ledger import ModelVersion

log = logging.getLogger("matter_ota.dcl")

READ_CHUNK = 1 << 20  # rehashing a partial file before resuming


class DownloadFailed(Exception):
    """The image could not be fetched now; ``quarantined`` when its bytes are at fault."""

    def __init__(self, reason: str, *, quarantined: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.quarantined = quarantined


class ImageRejected(Exception):
    """Raised by an image check: the downloaded file is not what the ledger describes."""


ImageCheck = Callable[[Path, ModelVersion], None]


@dataclass
class Progress:
    """Download progress: a live line on a TTY, a log line per quarter in the logs."""

    key: str
    total: int
    stream: TextIO | None = None
    done: int = 0
    _started: float = 0.0
    _last_draw: float = 0.0
    _last_quarter: int = -1

    def __post_init__(self) -> None:
        if self.stream is None and sys.stderr.isatty():
            self.stream = sys.stderr
        self._started = time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        quarter = self.done * 4 // max(self.total, 1)
        if quarter != self._last_quarter:
            self._last_quarter = quarter
            log.info(
                "event=dcl_download key=%s bytes=%d total=%d pct=%d",
                self.key,
                self.done,
                self.total,
                self.done * 100 // max(self.total, 1),
            )
        if self.stream is not None:
            now = time.monotonic()
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                rate = self.done / max(now - self._started, 1e-6) / 1e6
                self.stream.write(
                    f"\rdcl {self.key}: {self.done * 100 // max(self.total, 1):3d}% "
                    f"{self.done / 2**20:.1f}/{self.total / 2**20:.1f} MiB {rate:.1f} MB/s"
                )
                if self.done >= self.total:
                    self.stream.write("\n")
                self.stream.flush()

    def reset(self, done: int) -> None:
        self.done = done


def _hash_prefix(path: Path, hasher: Any) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            hasher.update(chunk)
            n += len(chunk)
    return n


async def download_image(
    http: httpx.AsyncClient,
    mv: ModelVersion,
    key: str,
    cache: ImageCache,
    check_image: ImageCheck,
    *,
    attempts: int = 5,
    backoff: float = 0.5,
    progress_stream: TextIO | None = None,
) -> Path:
    """Fetch ``mv.ota_url`` into the cache, verify it, and return the served path.

    Raises :class:`DownloadFailed`; with ``quarantined`` set the file was set aside.
    """
    size = mv.ota_file_size
    try:
        cache.reserve(key, size)
    except CacheFull as exc:
        raise DownloadFailed(str(exc)) from None
    part = cache.part_path(key)
    algorithm = mv.checksum_algorithm
    hasher = algorithm.new()
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        cache.discard_partial(key)
        offset = 0
    if offset:
        offset = await anyio.to_thread.run_sync(_hash_prefix, part, hasher)
        log.info("event=dcl_download_resume key=%s offset=%d total=%d", key, offset, size)
    progress = Progress(key, size, progress_stream)
    progress.reset(offset)

    def reject(reason: str) -> DownloadFailed:
        cache.quarantine(key, mv, reason)
        return DownloadFailed(reason, quarantined=True)

    last_error = ""
    for attempt in range(attempts):
        if attempt:
            await anyio.sleep(backoff * 2 ** (attempt - 1))
        headers = {"Range": f"bytes={offset}-"} if 0 < offset < size else {}
        try:
            async with http.stream("GET", mv.ota_url, headers=headers) as r:
                if offset and r.status_code == 206:
                    expect = f"bytes {offset}-"
                    if not r.headers.get("content-range", "").startswith(expect):
                        raise DownloadFailed(f"server answered Range with {r.headers!r:.80}")
                elif r.status_code == 200:
                    if offset:  # Range ignored: start again from byte 0
                        log.info("event=dcl_download_restart key=%s reason=range_ignored", key)
                        hasher, offset = algorithm.new(), 0
                        part.write_bytes(b"")
                        progress.reset(0)
                    length = r.headers.get("content-length")
                    if length is not None and length.isdigit() and int(length) != size:
                        raise reject(
                            f"size: the server sends {length} bytes, the ledger's otaFileSize "
                            f"is {size}"
                        )
                elif r.status_code == 416 and offset == size:
                    pass  # we already have every byte
                else:
                    last_error = f"GET {mv.ota_url}: HTTP {r.status_code}"
                    if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                        raise DownloadFailed(last_error)
                    continue
                with open(part, "ab") as f:
                    async for chunk in r.aiter_raw():
                        offset += len(chunk)
                        if offset > size:
                            raise reject(
                                f"size: the server sent more than the ledger's otaFileSize {size}"
                            )
                        f.write(chunk)
                        hasher.update(chunk)
                        progress.advance(len(chunk))
            break
        except httpx.TransportError as exc:
            # Dropped connection, timeout, TLS failure: keep what we have and resume.
            last_error = f"GET {mv.ota_url}: {type(exc).__name__}: {exc}"
            log.warning(
                "event=dcl_download_interrupted key=%s offset=%d total=%d attempt=%d reason=%s",
                key,
                offset,
                size,
                attempt + 1,
                last_error,
            )
            offset = part.stat().st_size if part.exists() else 0
            if offset != progress.done:  # resync the hash with what reached the disk
                hasher = algorithm.new()
                offset = await anyio.to_thread.run_sync(_hash_prefix, part, hasher)
                progress.reset(offset)
    else:
        raise DownloadFailed(f"gave up after {attempts} attempts: {last_error}")

    if offset != size:
        raise reject(f"size: the file is {offset} bytes, the ledger's otaFileSize is {size}")
    digest = algorithm.finish(hasher)
    if digest != mv.ota_checksum:
        raise reject(
            f"checksum: {algorithm.iana_name} of the file is {digest.hex()}, the ledger's "
            f"otaChecksum is {mv.ota_checksum.hex()}"
        )
    try:
        await anyio.to_thread.run_sync(check_image, part, mv)
    except ImageRejected as exc:
        raise reject(f"image: {exc}") from None
    path = cache.commit(key, mv)
    log.info(
        "event=dcl_download_done key=%s vid=0x%04X pid=0x%04X version=%d bytes=%d",
        key,
        mv.vid,
        mv.pid,
        mv.software_version,
        size,
    )
    return path
