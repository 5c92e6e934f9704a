"""``bench.py bdx``: BDX image streaming to N devices at once, in memory, both ends in-process.

One provider node (BdxServer, FileImage over a real temporary file) and N requestor nodes, each
downloading the whole image over its own CASE-keyed secure session; datagrams move in memory.
Every block costs the provider a pread, a Block message (AES-CCM seal) and the BlockQuery it
answers (AES-CCM open); the requestors' side runs in the same process and is counted too.

Baseline, measured in the same run: for the same bytes in the same block size, ``os.pread`` of
the block plus AES-CCM-128 encrypt and decrypt of it (the floor cost of moving the image through
one secure session in Python on `cryptography`).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from bdx_pair import BdxNet
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from matter_ota.bdx.image_source import FileImage
from matter_ota.bdx.receiver import ReceiverState
from matter_ota.bdx.sender import MAX_BLOCK_SIZE, SenderConfig


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bdx", help="BDX throughput of N concurrent in-memory transfers")
    p.add_argument("--devices", type=int, default=20, help="concurrent transfers (default 20)")
    p.add_argument("--mib", type=float, default=2.0, help="image size in MiB (default 2)")
    p.add_argument("--block", type=int, default=MAX_BLOCK_SIZE,
                   help=f"max block size (default {MAX_BLOCK_SIZE}, one datagram)")
    p.set_defaults(func=run)


class _Count:
    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


def _baseline(path: Path, size: int, block: int, copies: int) -> float:
    """Seconds to pread + AES-CCM seal + open every block of ``copies`` images."""
    aead = AESCCM(os.urandom(16), tag_length=16)
    nonce, aad = os.urandom(13), os.urandom(8)
    fd = os.open(path, os.O_RDONLY)
    try:
        start = time.perf_counter()
        for _ in range(copies):
            for offset in range(0, size, block):
                data = os.pread(fd, block, offset)
                aead.decrypt(nonce, aead.encrypt(nonce, data, aad), aad)
        return time.perf_counter() - start
    finally:
        os.close(fd)


def run(args: argparse.Namespace) -> int:
    size = int(args.mib * (1 << 20))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.ota"
        path.write_bytes(os.urandom(size))
        config = SenderConfig(max_block_size=args.block, max_transfers=max(args.devices, 1))
        net = BdxNet(lambda _d: FileImage(path), config)
        devices = [net.add_device() for _ in range(args.devices)]
        sinks = [_Count() for _ in devices]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        downloads = [d.download(b"img", s, max_block_size=args.block)
                     for d, s in zip(devices, sinks, strict=True)]
        net.run()
        seconds = time.perf_counter() - start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if not all(d.receiver.state is ReceiverState.DONE for d in downloads):
            raise SystemExit("a transfer did not complete")
        if any(s.size != size for s in sinks):
            raise SystemExit("a transfer delivered the wrong number of bytes")
        base = _baseline(path, size, args.block, args.devices)
    blocks = args.devices * -(-size // args.block)
    total_mib = args.devices * size / (1 << 20)
    print(f"BDX: {args.devices} concurrent transfers of {size / (1 << 20):g} MiB, "
          f"block {args.block} B, in memory (provider and requestors in one process)")
    print(f"{'measurement':44} {'blocks/s':>10} {'MiB/s':>8} {'vs base':>8}")
    rows = [("pread + AES-CCM seal+open (baseline)", base),
            ("BDX transfers, both ends (node pairs)", seconds)]
    for name, secs in rows:
        print(f"{name:44} {blocks / secs:10.0f} {total_mib / secs:8.1f} {base / secs:8.2f}")
    print(f"peak RSS growth during the transfers: {(rss_after - rss_before) / 1024:.1f} MiB "
          f"for {total_mib:g} MiB streamed")
    return 0
