"""The on-disk cache of DCL images: verified, partial and quarantined files, size-bounded.

Layout under ``<state>/dcl/``::

    images/<key>.ota        verified images, ready to serve
    images/<key>.json       what was verified (ledger entry, when)
    partial/<key>.part      an interrupted download, resumed with an HTTP Range request
    partial/<key>.lock      held (flock) by the one process downloading <key>
    quarantine/<key>.ota    a download that failed a check: never served
    quarantine/<key>.json   why (kept and shown in ``matter-ota releases``)

A key names one ledger entry *and* its checksum, so a changed ledger entry is a new key and an
old quarantine does not block it. Files move between the directories with ``os.replace``
(atomic), so a crash leaves each file wholly in one state. The total of all three directories
stays under ``dcl.cache_size``: least recently used first, quarantined bytes before good ones.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matter_ota.sources.dcl_ledger import ModelVersion

log = logging.getLogger("matter_ota.dcl")

ORPHAN_AGE = 3600.0  # seconds before a half-committed leftover is swept at start
QUARANTINE_RETRY = 24 * 3600.0  # seconds before a quarantined ledger entry is tried again


def cache_key(mv: ModelVersion) -> str:
    """File name stem for a ledger entry: vid, pid, version and a checksum prefix."""
    return f"{mv.vid:04x}-{mv.pid:04x}-{mv.software_version}-{mv.ota_checksum[:8].hex()}"


@dataclass(frozen=True)
class Quarantined:
    """A download that failed a check."""

    key: str
    reason: str
    at: float
    url: str


class CacheFull(Exception):
    """The image does not fit in ``dcl.cache_size`` even after evicting everything idle."""


class ImageCache:
    """Verified images, partial downloads and quarantine under one size bound."""

    def __init__(self, root: Path, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.clock = clock
        self.max_bytes = max_bytes
        self.images = root / "images"
        self.partial = root / "partial"
        self.quarantine_dir = root / "quarantine"
        for d in (self.images, self.partial, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._last_used: dict[str, float] = {}
        self._pinned: dict[str, int] = {}  # keys being downloaded: never evicted
        self._reserved: dict[str, int] = {}  # key -> bytes promised to its running download
        for meta in self.images.glob("*.json"):
            self._last_used[meta.stem] = meta.stat().st_mtime
        self._sweep_orphans()

    # -- lookups ------------------------------------------------------------------------------

    def image_path(self, key: str) -> Path:
        return self.images / f"{key}.ota"

    def part_path(self, key: str) -> Path:
        return self.partial / f"{key}.part"

    def get(self, key: str) -> Path | None:
        """The verified image for ``key`` (marking it used), or None."""
        path = self.image_path(key)
        if not path.exists() or not (self.images / f"{key}.json").exists():
            return None
        now = time.time()
        if now - self._last_used.get(key, 0.0) > 60:  # persist recency at most once a minute
            with contextlib.suppress(OSError):
                os.utime(self.images / f"{key}.json", (now, now))
        self._last_used[key] = now
        return path

    def quarantined(self, key: str) -> Quarantined | None:
        try:
            doc = json.loads((self.quarantine_dir / f"{key}.json").read_bytes())
            return Quarantined(key, str(doc["reason"]), float(doc["at"]), str(doc["url"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def blocking_quarantine(self, key: str) -> Quarantined | None:
        """The quarantine that keeps ``key`` from being downloaded again now, or None.

        A quarantine holds for QUARANTINE_RETRY: a bad file caused by a passing fault of the
        image host (a CDN serving stale bytes) is tried again a day later, and verified again.
        """
        q = self.quarantined(key)
        if q is None or self.clock() - q.at >= QUARANTINE_RETRY:
            return None
        return q

    def clear_quarantine(self, key: str) -> bool:
        """Forget the quarantine of ``key`` (its record and bytes); True when there was one."""
        record = self.quarantine_dir / f"{key}.json"
        existed = record.exists()
        record.unlink(missing_ok=True)
        (self.quarantine_dir / f"{key}.ota").unlink(missing_ok=True)
        return existed

    def all_quarantined(self) -> list[Quarantined]:
        found = (self.quarantined(p.stem) for p in self.quarantine_dir.glob("*.json"))
        return [q for q in found if q is not None]

    # -- transitions --------------------------------------------------------------------------

    def pin(self, key: str) -> None:
        self._pinned[key] = self._pinned.get(key, 0) + 1

    def unpin(self, key: str) -> None:
        n = self._pinned.get(key, 0) - 1
        if n <= 0:
            self._pinned.pop(key, None)
            self._reserved.pop(key, None)
        else:
            self._pinned[key] = n

    def reserve(self, key: str, size: int) -> None:
        """Make room for ``size`` bytes of ``key`` (evicting), or raise :class:`CacheFull`.

        The room stays promised to ``key`` until :meth:`unpin`: downloads running at the same
        time count with their full size, not with what they have written so far.
        """
        if size > self.max_bytes:
            raise CacheFull(f"image of {size} bytes is larger than dcl.cache_size {self.max_bytes}")

        def need() -> int:
            promised = sum(
                max(0, n - self._size(self.part_path(k)))
                for k, n in self._reserved.items()
                if k != key
            )
            return self.total_bytes() + promised + size - self._size(self.part_path(key))

        for victim in self._eviction_order(exclude=key):
            if need() <= self.max_bytes:
                break
            self._evict(victim)
        if need() > self.max_bytes:
            raise CacheFull(
                f"dcl.cache_size {self.max_bytes} cannot hold {size} more bytes while other "
                "downloads are in progress"
            )
        self._reserved[key] = size

    def commit(self, key: str, mv: ModelVersion) -> Path:
        """Move a verified partial file into the served images, with its record."""
        meta = {
            "vid": mv.vid,
            "pid": mv.pid,
            "software_version": mv.software_version,
            "software_version_string": mv.software_version_string,
            "url": mv.ota_url,
            "size": mv.ota_file_size,
            "checksum_type": mv.ota_checksum_type,
            "checksum": mv.ota_checksum.hex(),
            "verified_at": time.time(),
        }
        _write_json(self.images / f"{key}.json", meta)
        os.replace(self.part_path(key), self.image_path(key))
        _fsync_dir(self.images)  # the rename itself survives a power cut
        self.clear_quarantine(key)  # a retry after a quarantine succeeded
        self._last_used[key] = time.time()
        return self.image_path(key)

    def quarantine(self, key: str, mv: ModelVersion, reason: str) -> None:
        """Set a failed download aside with its reason; it is never served."""
        part = self.part_path(key)
        if part.exists():
            os.replace(part, self.quarantine_dir / f"{key}.ota")
        _write_json(
            self.quarantine_dir / f"{key}.json",
            {
                "reason": reason,
                "at": self.clock(),
                "url": mv.ota_url,
                "version": mv.software_version,
            },
        )
        log.error(
            "event=dcl_quarantine key=%s vid=0x%04X pid=0x%04X version=%d reason=%s",
            key,
            mv.vid,
            mv.pid,
            mv.software_version,
            reason,
        )

    def discard_partial(self, key: str) -> None:
        self.part_path(key).unlink(missing_ok=True)

    # -- size bound ---------------------------------------------------------------------------

    def total_bytes(self) -> int:
        return sum(
            self._size(p)
            for d in (self.images, self.partial, self.quarantine_dir)
            for p in d.iterdir()
            if p.suffix in (".ota", ".part")
        )

    def _eviction_order(self, exclude: str) -> list[tuple[str, str]]:
        """(kind, key) pairs: quarantined files oldest first, then images least recently used."""
        q = sorted((p.stat().st_mtime, p.stem) for p in self.quarantine_dir.glob("*.ota"))
        images = sorted((self._last_used.get(k, 0.0), k) for k in self._image_keys())
        partials = [p.stem for p in self.partial.glob("*.part")]
        order = [("quarantine", k) for _, k in q]
        order += [
            ("partial", k)
            for k in partials
            if k not in self._pinned and k != exclude and not self._download_running(k)
        ]
        order += [("image", k) for _, k in images if k != exclude]
        return order

    def _download_running(self, key: str) -> bool:
        """True when some process holds the download lock of ``key`` (see dcl_download)."""
        try:
            fd = os.open(self.partial / f"{key}.lock", os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _image_keys(self) -> list[str]:
        return [p.stem for p in self.images.glob("*.ota")]

    def _evict(self, victim: tuple[str, str]) -> None:
        kind, key = victim
        if kind == "quarantine":
            # The reason record stays (small, and operators need it); the bytes go.
            (self.quarantine_dir / f"{key}.ota").unlink(missing_ok=True)
        elif kind == "partial":
            self.part_path(key).unlink(missing_ok=True)
        else:
            # Unlink the record first: a crash in between leaves an orphan .ota, swept at start.
            (self.images / f"{key}.json").unlink(missing_ok=True)
            self.image_path(key).unlink(missing_ok=True)
            self._last_used.pop(key, None)
        log.info("event=dcl_cache_evict kind=%s key=%s", kind, key)

    def _sweep_orphans(self) -> None:
        # Leftovers of a crash between the steps of commit/evict. Another process (the daemon
        # beside `explain`) may be between those steps right now: only old leftovers go.
        cutoff = time.time() - ORPHAN_AGE

        def stale(p: Path) -> bool:
            try:
                return p.stat().st_mtime < cutoff
            except FileNotFoundError:
                return False

        for p in self.images.glob("*.ota"):
            if not (self.images / f"{p.stem}.json").exists() and stale(p):
                p.unlink(missing_ok=True)
        for p in self.images.glob("*.json"):
            if not self.image_path(p.stem).exists() and stale(p):
                p.unlink(missing_ok=True)
                self._last_used.pop(p.stem, None)
        for p in self.root.rglob("*.tmp"):
            if stale(p):
                p.unlink(missing_ok=True)

    @staticmethod
    def _size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:
            return 0


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
