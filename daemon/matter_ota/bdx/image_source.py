"""Where a BDX sender reads its bytes: an open image, read by offset, never whole in memory.

The sender asks for one block at a time with :meth:`ImageSource.read_at`. :class:`FileImage`
answers with ``os.pread`` on one file descriptor: no shared file position (many transfers of
the same image can share one descriptor), the kernel's page cache holds the hot blocks, and
the process holds one block per transfer at a time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Protocol

log = logging.getLogger("matter_ota.bdx")


class ImageSource(Protocol):
    """A released image opened for reading by BDX transfers."""

    @property
    def size(self) -> int:
        """Total bytes."""
        ...

    def read_at(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end)."""
        ...

    def close(self) -> None:
        """The transfer is done with it."""
        ...


class FileImage:
    """An image file read with ``os.pread``; the size is fixed when it is opened."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self._size = os.fstat(self._fd).st_size
        except OSError:
            os.close(self._fd)
            raise
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, size: int) -> bytes:
        size = max(0, min(size, self._size - offset))
        data = os.pread(self._fd, size, offset)
        while len(data) < size:  # pread may return short on some file systems
            more = os.pread(self._fd, size - len(data), offset + len(data))
            if not more:
                raise OSError(f"image shrank under a transfer at byte {offset + len(data)}")
            data += more
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def __enter__(self) -> FileImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BytesImage:
    """An image held in memory (tests, tiny images)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.closed = False

    @property
    def size(self) -> int:
        return len(self._data)

    def read_at(self, offset: int, size: int) -> bytes:
        return bytes(self._data[offset : offset + size])

    def close(self) -> None:
        self.closed = True


class ReleasedImages:
    """The sender's lookup over the images released right now: ``designator -> path``.

    The daemon builds the mapping from its release state (the ImageURIs it hands out) and
    replaces it on every reload with :meth:`update`. A designator is only ever a key into that
    mapping, never part of a path, so a requestor can fetch nothing but a released image.
    """

    def __init__(self, images: Mapping[str, str | os.PathLike[str]] | None = None) -> None:
        self._images: dict[str, str | os.PathLike[str]] = dict(images or {})

    def update(self, images: Mapping[str, str | os.PathLike[str]]) -> None:
        """Serve exactly ``images`` from now on (running transfers keep their open file)."""
        self._images = dict(images)

    def __call__(self, designator: str) -> FileImage | None:
        path = self._images.get(designator)
        if path is None:
            return None
        try:
            return FileImage(path)
        except OSError as exc:
            log.warning("event=bdx_image_unreadable designator=%s path=%s error=%s",
                        designator, path, exc)
            return None
