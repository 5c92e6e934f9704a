"""Downloading one DCL image: streamed to disk, resumed, checked, committed or quarantined.

Memory stays constant in the image size: the body is written as it arrives and hashed on the
way. A transport failure (connection dropped, timeout) resumes from the bytes on disk with an
HTTP ``Range`` request; a server that ignores Range (200 instead of 206) restarts from zero.
Every check that fails for a reason in the *bytes* (size, checksum, image header) quarantines
the file; failures of the *transfer* keep the partial file for the next attempt.
"""

from __future__ import annotations

import fcntl
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import anyio
import httpx

from matter_ota.sources.dcl_cache import CacheFull, ImageCache
from matter_ota.sources.dcl_ledger import ModelVersion
from matter_ota.sources.dcl_verify import ImageRejected, StreamingImageCheck

log = logging.getLogger("matter_ota.dcl")

READ_CHUNK = 1 << 20  # rehashing a partial file before resuming
LOCK_POLL = 0.2  # seconds between tries for another process's download lock


class DownloadFailed(Exception):
    """The image could not be fetched now; ``quarantined`` when its bytes are at fault."""

    def __init__(self, reason: str, *, quarantined: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.quarantined = quarantined


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


class _Sink:
    """Writes and hashes the body on a worker thread while the event loop receives.

    Chunks go over in batches of about BATCH bytes through a queue of QUEUE_DEPTH batches, so
    memory stays bounded whatever the image size; a full queue makes the receiver wait. The
    worker joins a batch into one piece: one write and one update per hash per MiB, each
    releasing the GIL, instead of a GIL-holding Python call per TLS record (which made the
    event loop wait: 1.39x -> 1.06-1.15x of a plain download, ``scripts/bench.py dcl``).
    """

    BATCH = 1 << 20
    QUEUE_DEPTH = 2

    def __init__(self, file: BinaryIO, hasher: Any, check: StreamingImageCheck) -> None:
        self._file = file
        self._hasher = hasher
        self._check = check
        self._queue: queue.Queue[list[bytes] | None] = queue.Queue(self.QUEUE_DEPTH)
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="dcl-download-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                # One piece per batch: the hashes and the write release the GIL on it, and the
                # event loop is not held up by a Python call per received chunk.
                data = batch[0] if len(batch) == 1 else b"".join(batch)
                self._file.write(data)
                self._hasher.update(data)
                self._check.feed(data)
            except BaseException as exc:  # handed to the event loop in close()
                self._error = exc

    async def _put(self, item: list[bytes] | None) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            await anyio.to_thread.run_sync(self._queue.put, item)

    async def write(self, chunk: bytes) -> None:
        self._batch.append(chunk)
        self._batch_bytes += len(chunk)
        if self._batch_bytes >= self.BATCH:
            batch, self._batch, self._batch_bytes = self._batch, [], 0
            await self._put(batch)

    async def close(self) -> None:
        """Flush everything to the file (also when cancelled), then raise a writer error."""
        with anyio.CancelScope(shield=True):
            if self._batch:
                await self._put(self._batch)
                self._batch = []
            await self._put(None)
            await anyio.to_thread.run_sync(self._thread.join)
        if self._error is not None:
            raise self._error


def _hash_prefix(path: Path, hasher: Any, check: StreamingImageCheck) -> int:
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            hasher.update(chunk)
            check.feed(chunk)
            n += len(chunk)
    return n


async def download_image(
    http: httpx.AsyncClient,
    mv: ModelVersion,
    key: str,
    cache: ImageCache,
    **options: Any,
) -> Path:
    """Fetch ``mv.ota_url`` into the cache, verify it, and return the served path.

    One download per image across processes too (the daemon and ``matter-ota explain`` share
    the state dir): an exclusive ``flock`` on ``partial/<key>.lock`` is held while
    downloading; whoever waited for it finds the image committed (or quarantined).
    Raises :class:`DownloadFailed`; with ``quarantined`` set the file was set aside.
    """
    fd = os.open(cache.partial / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await anyio.sleep(LOCK_POLL)
        done = cache.get(key)
        if done is not None:
            return done
        quarantined = cache.blocking_quarantine(key)
        if quarantined is not None:
            raise DownloadFailed(quarantined.reason, quarantined=True)
        return await _download_unlocked(http, mv, key, cache, **options)
    finally:
        os.close(fd)  # releases the lock


async def _download_unlocked(
    http: httpx.AsyncClient,
    mv: ModelVersion,
    key: str,
    cache: ImageCache,
    *,
    attempts: int = 5,
    backoff: float = 0.5,
    progress_stream: TextIO | None = None,
) -> Path:
    size = mv.ota_file_size
    try:
        cache.reserve(key, size)
    except CacheFull as exc:
        raise DownloadFailed(str(exc)) from None
    part = cache.part_path(key)
    algorithm = mv.checksum_algorithm
    hasher = algorithm.new()
    check = StreamingImageCheck()
    offset = part.stat().st_size if part.exists() else 0
    if offset > size:
        cache.discard_partial(key)
        offset = 0
    if offset:
        offset = await anyio.to_thread.run_sync(_hash_prefix, part, hasher, check)
        log.info("event=dcl_download_resume key=%s offset=%d total=%d", key, offset, size)
    progress = Progress(key, size, progress_stream)
    progress.reset(offset)

    def reject(reason: str) -> DownloadFailed:
        cache.quarantine(key, mv, reason)
        return DownloadFailed(reason, quarantined=True)

    last_error = ""
    for attempt in range(attempts):
        if offset == size:
            break  # every byte is on disk already (e.g. a crash before the checks)
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
                        hasher, check, offset = algorithm.new(), StreamingImageCheck(), 0
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
                    sink = _Sink(f, hasher, check)
                    try:
                        async for chunk in r.aiter_raw():
                            offset += len(chunk)
                            if offset > size:
                                raise reject(
                                    f"size: the server sent more than the ledger's otaFileSize "
                                    f"{size}"
                                )
                            await sink.write(chunk)
                            progress.advance(len(chunk))
                    finally:
                        await sink.close()
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
            if offset != check.size:  # resync the hashes with what reached the disk
                hasher, check = algorithm.new(), StreamingImageCheck()
                offset = await anyio.to_thread.run_sync(_hash_prefix, part, hasher, check)
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
        check.finish(mv)
    except ImageRejected as exc:
        raise reject(f"image: {exc}") from None
    # On disk before it is recorded as verified: a power cut must not leave a short file that
    # the cache would serve (about 0.03 s per 64 MiB here, off the event loop).
    await anyio.to_thread.run_sync(_fsync_file, part)
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


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
