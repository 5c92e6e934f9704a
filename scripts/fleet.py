#!/usr/bin/env python3
"""Run N emulated OTA requestors against an OTA provider: ``scripts/fleet.py memory|udp``.

``memory``: the provider node and the requestors in one process, datagrams moved in memory,
time stepped from deadline to deadline (hours of Busy / maintenance-window waits in seconds).
``udp``: a real ``matter-ota serve`` started in a temporary directory on ``[::1]`` (its
fabric written by this script's fabric admin), the requestors over UDP on loopback.

Both release a generated image to ``--percent`` of the fleet first, then let every device
query, download, apply and notify, and print what happened to the fleet.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT / "tests")]

import anyio  # noqa: E402
import yaml  # noqa: E402

from matter_ota.config import load_config  # noqa: E402
from matter_ota.emulator.fleet import PROVIDER_NODE_ID, FleetFabric  # noqa: E402
from matter_ota.emulator.requestor import Behaviour, Identity, Requestor  # noqa: E402
from matter_ota.emulator.udp import run_fleet  # noqa: E402
from matter_ota.operations import Console  # noqa: E402
from matter_ota.store import Store  # noqa: E402

VID, PID = 0xFFF1, 0x8001


def summary(requestors: list[Requestor]) -> dict[str, object]:
    results = collections.Counter(r.result or r.stage.value for r in requestors)
    return {
        "devices": len(requestors),
        "results": dict(sorted(results.items())),
        "offered": sum(1 for r in requestors if r.downloads),
        "updated": sum(1 for r in requestors if r.result == "updated"),
        "busy_answers": sum(1 for r in requestors for a in r.responses if a.status == 1),
        "case_busy": sum(r.case_busy for r in requestors),
        "errors": sorted({r.error for r in requestors if r.error})[:5],
    }


def memory(args: argparse.Namespace) -> int:
    from ota_world import World

    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), max_transfers=args.max_transfers)
        try:
            world.release(2, percent=args.percent, size=args.image_size)
            fleet = [world.requestor(1) for _ in range(args.devices)]
            t0 = time.perf_counter()
            world.start(*fleet)
            world.fleet.keep_events = False
            world.fleet.run()
            if args.second_round:  # devices asked again later (the cohort fills up)
                world.start(*[r for r in fleet if not r.downloads])
                world.fleet.run()
            wall = time.perf_counter() - t0
            out = summary(fleet)
            out.update(mode="memory", wall_s=round(wall, 3),
                       protocol_time_s=round(world.fleet.now, 1),
                       datagrams=world.fleet.datagrams)
        finally:
            world.close()
    print(json.dumps(out, indent=2))
    return 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        return int(s.getsockname()[1])


def write_site(root: Path, percent: int, image_size: int, max_transfers: int | None,
               max_handshakes: int | None = None, max_sessions: int | None = None) -> Path:
    """provider.yaml, releases.yaml (one release through the console) and the image."""
    from ota_world import make_image

    doc: dict[str, object] = {"state_dir": "state", "firmware_dir": "firmware",
                              "releases_file": "releases.yaml",
                              "dcl": {"url": "https://127.0.0.1:9"}}
    limits: dict[str, int] = {}
    if max_transfers is not None:
        limits["max_concurrent_transfers"] = max_transfers
    if max_handshakes is not None:
        limits["max_handshakes"] = max_handshakes
    if max_sessions is not None:
        limits["max_sessions"] = max_sessions
    if limits:
        doc["limits"] = limits
    (root / "provider.yaml").write_text(yaml.safe_dump(doc))
    (root / "releases.yaml").write_text("releases: []\n")
    (root / "firmware").mkdir()
    image = root / "fw-2.ota"
    make_image(image, 2, image_size)
    config = load_config(root / "provider.yaml")
    with Store.open(config.provider.state_dir) as store:
        Console(config.provider, store, actor="fleet").release(
            channel="production", image=image, percent=percent, same_set=False, product=None)
    return root / "provider.yaml"


def start_daemon(root: Path, config: Path, fabric_file: Path, port: int) -> subprocess.Popen[bytes]:
    log = open(root / "daemon.log", "wb")  # noqa: SIM115 - the child writes it
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "matter_ota.cli", "serve", "--config", str(config),
         "--listen", "::1", "--port", str(port), "--fabric-file", str(fabric_file),
         "--no-mdns"],
        stdout=log, stderr=log, env=env, cwd=root)
    log.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if b"event=listening" in (root / "daemon.log").read_bytes():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_daemon(proc)
    raise SystemExit("the daemon did not start:\n" + (root / "daemon.log").read_text()[-2000:])


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def udp(args: argparse.Namespace) -> int:
    out = run_udp(args.devices, args.percent, args.image_size, args.max_transfers,
                  args.timeout, max_handshakes=args.max_handshakes, keep_log=args.log,
                  max_sessions=args.max_sessions)
    print(json.dumps(out, indent=2))
    return 0


def run_udp(devices: int, percent: int, image_size: int, max_transfers: int | None,
            timeout: float, behaviour: Behaviour | None = None,
            max_handshakes: int | None = None,
            keep_log: Path | None = None,
            max_sessions: int | None = None) -> dict[str, object]:
    """Start a daemon in a temporary directory and run the fleet against it over UDP."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_site(root, percent, image_size, max_transfers, max_handshakes,
                            max_sessions)
        fabric = FleetFabric.create(int(time.time()) - 3600)
        fabric_file = root / "fabric.json"
        fabric_file.write_text(json.dumps([fabric.issue(PROVIDER_NODE_ID).to_dict()]))
        identities = [fabric.issue(0x10000 + n) for n in range(devices)]
        port = _free_port()
        proc = start_daemon(root, config, fabric_file, port)
        try:
            t0 = time.perf_counter()
            fleet = anyio.run(lambda: run_fleet(
                ("::1", port), PROVIDER_NODE_ID, identities, identity=Identity(),
                behaviour=behaviour, timeout=timeout))
            wall = time.perf_counter() - t0
        finally:
            stop_daemon(proc)
        with Store.open(root / "state") as store:
            counts = store.outcome_counts("production", VID, PID, 2)
            transfers = store._read(
                "SELECT state, count(*) FROM transfers GROUP BY state")
        out = summary(fleet)
        log_text = (root / "daemon.log").read_text()
        if keep_log is not None:
            keep_log.write_text(log_text)
        out.update(mode="udp", wall_s=round(wall, 3),
                   daemon_sessions_evicted=log_text.count("reason=evicted"),
                   daemon_outcomes={
            "offered": counts.offered, "downloading": counts.downloading,
            "applied": counts.applied, "failed": counts.failed},
            daemon_transfers={str(r[0]): int(r[1]) for r in transfers},
            daemon_log_tail=(root / "daemon.log").read_text().splitlines()[-3:])
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    for name, func in (("memory", memory), ("udp", udp)):
        p = sub.add_parser(name)
        p.add_argument("--devices", type=int, default=100)
        p.add_argument("--percent", type=int, default=100)
        p.add_argument("--image-size", type=int, default=64_000)
        p.add_argument("--max-transfers", type=int, default=None)
        p.set_defaults(func=func)
        if name == "memory":
            p.add_argument("--second-round", action="store_true",
                           help="devices not offered ask once more after everyone checked in")
        else:
            p.add_argument("--timeout", type=float, default=120.0)
            p.add_argument("--max-handshakes", type=int, default=None,
                           help="the daemon's limits.max_handshakes (default 64)")
            p.add_argument("--max-sessions", type=int, default=None,
                           help="the daemon's limits.max_sessions (default 64)")
            p.add_argument("--log", type=Path, default=None, help="keep the daemon's log here")
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
