"""Run in a subprocess by test_bdx_memory.py: transfer a large image in memory pairs, print RSS.

    python bdx_memory_main.py DIR SIZE_MIB
prints one JSON line: sizes, peak RSS after a small warm-up transfer and after the big one,
and whether the received bytes hash to the image's.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from pathlib import Path

from bdx_pair import BdxNet

from matter_ota.bdx.image_source import FileImage
from matter_ota.ota_image import encode_header, parse_header
from matter_ota.ota_image.header import DEFAULT_DIGEST

CHUNK = 1 << 20


def make_image(path: Path, payload_size: int) -> bytes:
    """A valid OTA image whose payload is zeros, written sparse (no payload I/O)."""
    hasher = hashlib.sha256()
    zeros = bytes(CHUNK)
    for done in range(0, payload_size, CHUNK):
        hasher.update(zeros[: min(CHUNK, payload_size - done)])
    head, _ = encode_header(vendor_id=0xFFF1, product_id=0x8001, software_version=9,
                            software_version_string="9", payload_size=payload_size,
                            digest=hasher.digest(), algorithm=DEFAULT_DIGEST,
                            min_applicable_version=None, max_applicable_version=None,
                            release_notes_url=None)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + payload_size)
    whole = hashlib.sha256(head)
    for done in range(0, payload_size, CHUNK):
        whole.update(zeros[: min(CHUNK, payload_size - done)])
    return whole.digest()


class HashSink:
    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.head = b""
        self.size = 0

    def write(self, data: bytes) -> None:
        if len(self.head) < 4096:
            self.head += data[: 4096 - len(self.head)]
        self.hash.update(data)
        self.size += len(data)


def transfer(path: Path) -> HashSink:
    net = BdxNet(lambda _d: FileImage(path))
    sink = HashSink()
    net.add_device().download(b"big", sink)
    net.run()
    return sink


def peak_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    work, mib = Path(sys.argv[1]), int(sys.argv[2])
    small = work / "small.ota"
    make_image(small, 16 << 20)
    transfer(small)  # warm-up: imports, caches, allocator
    before = peak_rss_kib()
    big = work / "big.ota"
    expected = make_image(big, mib << 20)
    started = time.perf_counter()
    sink = transfer(big)
    seconds = time.perf_counter() - started
    header = parse_header(sink.head)
    print(json.dumps({
        "bytes": sink.size, "file_bytes": big.stat().st_size,
        "digest_ok": sink.hash.digest() == expected,
        "payload_size": header.payload_size,
        "rss_before_kib": before, "rss_after_kib": peak_rss_kib(), "seconds": seconds,
    }))


if __name__ == "__main__":
    main()
