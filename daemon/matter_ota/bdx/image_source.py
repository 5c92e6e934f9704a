"""Where a BDX sender reads its bytes: an open image, read by offset, never whole in memory.

The sender asks for one block at a time with :meth:`ImageSource.read_at`. :class:`FileImage`
answers with ``os.pread`` on one file descriptor: no shared file position (many transfers of
the same image can share one descriptor), the kernel's page cache holds the hot blocks, and
the process holds one block per transfer at a time.
"""

from __future__ import annotations

import os
from typing import Protocol


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
