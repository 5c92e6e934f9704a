"""``bench.py ota``: the OTA provider through the whole stack, in memory.

1. QueryImage decisions/s: emulated requestors on established CASE sessions invoke QueryImage
   (IM InvokeRequest, AES-CCM both ways, MRP acks, the IM server, the provider: ledger write,
   engine, token + offer records for an offer). Two cases: a device that is up to date
   (NotAvailable: one ledger write) and one that is offered (UpdateAvailable: ledger, token,
   cohort offer and outcome writes). Baseline in the same run: ``decide()`` alone on the
   same state and query (the engine's share).
2. N concurrent downloads through the provider: every requestor queries, downloads the image
   over BDX (the provider's lookup, transfer and progress records), applies and notifies.
   Baselines in the same run: the same bytes as bare BDX node pairs (``bench.py bdx``'s
   setup) and ``pread`` + AES-CCM seal + open of every block (the floor).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from bdx_pair import BdxNet
from bench_bdx import _baseline, _Count
from ota_world import World

from matter_ota.bdx.image_source import FileImage
from matter_ota.bdx.receiver import ReceiverState
from matter_ota.bdx.sender import MAX_BLOCK_SIZE, SenderConfig
from matter_ota.clusters.ota_provider import OtaProviderCluster, QueryImage
from matter_ota.emulator.invoke import invoke
from matter_ota.policy.engine import decide
from matter_ota.policy.model import Device, DeviceRef, Query


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ota", help="QueryImage decisions/s and downloads through the provider")
    p.add_argument("--sessions", type=int, default=50, help="requestors querying (default 50)")
    p.add_argument("--queries", type=int, default=2000, help="QueryImage per case (default 2000)")
    p.add_argument("--devices", type=int, default=20, help="concurrent downloads (default 20)")
    p.add_argument("--mib", type=float, default=1.0, help="image size in MiB (default 1)")
    p.set_defaults(func=run)


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def queries(root: Path, sessions: int, total: int) -> list[tuple[str, float]]:
    world = World(root)
    try:
        world.release(2, size=4096)
        world.fleet.keep_events = False
        fleet = [world.requestor(2) for _ in range(sessions)]  # connected, up to date
        world.start(*fleet)
        world.fleet.run()
        assert all(r.session is not None for r in fleet)
        rows = []
        for label, version in (("QueryImage -> NotAvailable (up to date)", 2),
                               ("QueryImage -> UpdateAvailable (offer)", 1)):
            fields = QueryImage(vendor_id=0xFFF1, product_id=0x8001, software_version=version,
                                protocols_supported=[0]).to_value()
            done = 0
            start = time.perf_counter()
            while done < total:
                batch = [invoke(r.node, r.session, 0, OtaProviderCluster.ID, 0x00, fields,
                                world.fleet.now) for r in fleet if r.session is not None]
                world.fleet.run(until=world.fleet.now + 0.01, settled=False)
                if not all(inv.ok for inv in batch):
                    raise SystemExit(f"a QueryImage failed: {[i.error for i in batch][:3]}")
                done += len(batch)
            rows.append((label, done / (time.perf_counter() - start)))
        # the engine alone, same state, same question
        state = world.provider.current_state()
        ref = DeviceRef(int.from_bytes(world.fleet.provider_fabric.compressed_fabric_id, "big"),
                        fleet[0].node_id)
        device = Device(ref.fabric, ref.node, 0xFFF1, 0x8001, 1)
        query = Query(0xFFF1, 0x8001, 1)
        n = 20_000
        start = time.perf_counter()
        for _ in range(n):
            decide(device, query, state, 0.0)
        rows.insert(0, ("decide() alone (baseline)", n / (time.perf_counter() - start)))
        return rows
    finally:
        world.close()


def downloads(root: Path, devices: int, size: int) -> tuple[list[tuple[str, float]], float, int]:
    world = World(root, max_transfers=devices)
    try:
        image = world.release(2, size=size)
        world.fleet.keep_events = False
        fleet = [world.requestor(1) for _ in range(devices)]
        rss = _rss_mib()
        start = time.perf_counter()
        world.start(*fleet)
        world.fleet.run()
        through = time.perf_counter() - start
        grew = _rss_mib() - rss
        if not all(r.result == "updated" and r.image_size == len(image) for r in fleet):
            raise SystemExit(f"a device did not update: {[r.error for r in fleet][:3]}")
        path = root / "firmware" / "fw-2.ota"
    finally:
        world.close()
    config = SenderConfig(max_transfers=devices)
    net = BdxNet(lambda _d: FileImage(path), config)
    pairs = [net.add_device() for _ in range(devices)]
    sinks = [_Count() for _ in pairs]
    start = time.perf_counter()
    dls = [d.download(b"img", s) for d, s in zip(pairs, sinks, strict=True)]
    net.run()
    bare = time.perf_counter() - start
    assert all(d.receiver.state is ReceiverState.DONE for d in dls)
    floor = _baseline(path, len(image), MAX_BLOCK_SIZE, devices)
    return ([("pread + AES-CCM seal+open (baseline)", floor),
             ("bare BDX node pairs (bench.py bdx)", bare),
             ("through the provider: CASE, query, BDX, apply", through)], grew, len(image))


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        rows = queries(Path(tmp), args.sessions, args.queries)
    base = rows[0][1]
    print(f"QueryImage through the whole stack, in memory ({args.sessions} CASE sessions, "
          f"{args.queries} queries per case)")
    print(f"{'measurement':46} {'per s':>10} {'vs decide()':>12}")
    for label, rate in rows:
        print(f"{label:46} {rate:10.0f} {rate / base:12.3f}")
    size = int(args.mib * (1 << 20))
    with tempfile.TemporaryDirectory() as tmp:
        timing, grew, image = downloads(Path(tmp), args.devices, size)
    total = args.devices * image / (1 << 20)
    floor = timing[0][1]
    print(f"\n{args.devices} concurrent downloads of a {image / (1 << 20):.2f} MiB image, "
          "in memory (both ends in one process)")
    print(f"{'measurement':46} {'MiB/s':>8} {'vs base':>8}")
    for label, seconds in timing:
        print(f"{label:46} {total / seconds:8.1f} {floor / seconds:8.2f}")
    print(f"peak RSS growth during the provider downloads: {grew:.1f} MiB for {total:.1f} MiB "
          "streamed")
    return 0
