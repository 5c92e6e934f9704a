"""mDNS actors for ``test_mdns.py``, each run as its own process inside the test's namespace.

Sub-commands (one JSON object per line on stdout)::

    fabric --node-id N --fabric-id F [--interface IF]   our NodeDiscovery advertising a fabric
           [--refresh-every S]                           until SIGTERM (then goodbyes)
    operational --compressed-fabric-id C --node-id N     our Advertiser publishing _matter
                                                         (no rename: reports a conflict)
    commissionable --instance NAME [--interface IF]      our Advertiser publishing _matterc
                                                         under NAME (renamed on conflict)
    window [--close-after S] [--interface IF]            commissionable, then updated to CM=0
    browse --type T --seconds S                          a python-zeroconf browser: added /
                                                         removed events with resolved records
    squat --type T --instance NAME [--port P]            a plain python-zeroconf responder
                                                         holding NAME until SIGTERM
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "daemon"))

from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from matter_ota import dnssd
from matter_ota.fabrics import CertificateAuthority
from matter_ota.runtime.discovery import NodeDiscovery
from matter_ota.runtime.mdns import Advertiser, NameConflict

NOW = 1_764_000_000  # as tests/test_case.py: certificate times in Unix seconds


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def until_terminated() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def fabric(args: argparse.Namespace) -> None:
    info = CertificateAuthority(fabric_id=args.fabric_id, now=NOW).issue(args.node_id)
    async with Advertiser(interfaces=args.interface) as advertiser:
        discovery = NodeDiscovery(advertiser, 5540)
        try:
            record = await discovery.advertise_fabric(info)
        except NameConflict as exc:
            emit(event="conflict", error=str(exc))
            return
        emit(event="published", instance=record.instance, subtypes=list(record.subtypes),
             compressed_fabric_id=info.compressed_fabric_id.hex().upper(), host=advertiser.host,
             addresses=advertiser.addresses)
        if args.refresh_every:
            refresher = asyncio.ensure_future(refresh(advertiser, args.refresh_every))
        await until_terminated()
        if args.refresh_every:
            refresher.cancel()
    emit(event="closed")


async def refresh(advertiser: Advertiser, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if await advertiser.refresh_addresses():
            emit(event="addresses", addresses=advertiser.addresses, at=time.monotonic())


async def operational(args: argparse.Namespace) -> None:
    async with Advertiser(interfaces=args.interface) as advertiser:
        record = dnssd.operational_record(args.compressed_fabric_id, args.node_id, 5540)
        try:
            published = await advertiser.publish(record)
        except NameConflict as exc:
            emit(event="conflict", error=str(exc))
            return
        emit(event="published", instance=published.instance)
        await until_terminated()


async def commissionable(args: argparse.Namespace) -> None:
    async with Advertiser(interfaces=args.interface) as advertiser:
        record = dnssd.Commissionable(discriminator=3840, vendor_id=0xFFF1, product_id=0x8001)
        published = await advertiser.publish(record.record(args.instance, 5540),
                                             rename=lambda _: dnssd.random_instance_name())
        emit(event="published", instance=published.instance)
        await until_terminated()


async def window(args: argparse.Namespace) -> None:
    """Open a commissioning window, then after ``--close-after`` s announce CM=0 (no _CM)."""
    async with Advertiser(interfaces=args.interface) as advertiser:
        params = dnssd.Commissionable(discriminator=3840, vendor_id=0xFFF1, product_id=0x8001)
        record = await advertiser.publish(params.record(dnssd.random_instance_name(), 5540))
        emit(event="published", instance=record.instance, subtypes=list(record.subtypes))
        await asyncio.sleep(args.close_after)
        closed = dnssd.Commissionable(discriminator=3840, vendor_id=0xFFF1, product_id=0x8001,
                                      mode=dnssd.CommissioningMode.DISABLED)
        updated = closed.record(record.instance, 5540)
        await advertiser.update(updated)
        emit(event="updated", subtypes=list(updated.subtypes), at=time.monotonic())
        await until_terminated()


async def browse(args: argparse.Namespace) -> None:
    aiozc = AsyncZeroconf(ip_version=IPVersion.All)
    pending: set[asyncio.Task[None]] = set()

    async def resolve(type_: str, name: str, event: str = "added") -> None:
        info = AsyncServiceInfo(type_, name)
        ok = await info.async_request(aiozc.zeroconf, 3000)
        emit(event=event, type=type_, name=name, resolved=ok, port=info.port,
             server=info.server, addresses=info.parsed_addresses(),
             txt={k.decode(): (v or b"").decode() for k, v in (info.properties or {}).items()},
             at=time.monotonic())

    def on_change(zeroconf: Zeroconf, service_type: str, name: str,
                  state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Added:
            task = asyncio.ensure_future(resolve(service_type, name))
            pending.add(task)
            task.add_done_callback(pending.discard)
        elif state_change is ServiceStateChange.Updated:
            task = asyncio.ensure_future(resolve(service_type, name, "updated"))
            pending.add(task)
            task.add_done_callback(pending.discard)
        elif state_change is ServiceStateChange.Removed:
            emit(event="removed", type=service_type, name=name, at=time.monotonic())

    browser = AsyncServiceBrowser(aiozc.zeroconf, args.type, handlers=[on_change])
    emit(event="browsing", at=time.monotonic())
    await asyncio.sleep(args.seconds)
    await browser.async_cancel()
    if pending:
        await asyncio.gather(*pending)
    await aiozc.async_close()


async def squat(args: argparse.Namespace) -> None:
    aiozc = AsyncZeroconf(ip_version=IPVersion.All)
    info = ServiceInfo(args.type, f"{args.instance}.{args.type}", port=args.port,
                       properties={"squatter": "1"}, server="squatter.local.",
                       parsed_addresses=["10.233.0.2"])
    await aiozc.async_register_service(info)
    emit(event="published", name=info.name)
    await until_terminated()
    await aiozc.async_close()


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("fabric")
    p.add_argument("--node-id", type=lambda s: int(s, 0), required=True)
    p.add_argument("--fabric-id", type=lambda s: int(s, 0), required=True)
    p.add_argument("--interface", action="append")
    p.add_argument("--refresh-every", type=float, default=0.0)
    p.set_defaults(func=fabric)
    p = sub.add_parser("operational")
    p.add_argument("--compressed-fabric-id", type=lambda s: int(s, 0), required=True)
    p.add_argument("--node-id", type=lambda s: int(s, 0), required=True)
    p.add_argument("--interface", action="append")
    p.set_defaults(func=operational)
    p = sub.add_parser("commissionable")
    p.add_argument("--instance", required=True)
    p.add_argument("--interface", action="append")
    p.set_defaults(func=commissionable)
    p = sub.add_parser("window")
    p.add_argument("--close-after", type=float, default=2.0)
    p.add_argument("--interface", action="append")
    p.set_defaults(func=window)
    p = sub.add_parser("browse")
    p.add_argument("--type", action="append", required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.set_defaults(func=browse)
    p = sub.add_parser("squat")
    p.add_argument("--type", required=True)
    p.add_argument("--instance", required=True)
    p.add_argument("--port", type=int, default=5540)
    p.set_defaults(func=squat)
    args = parser.parse_args()
    asyncio.run(args.func(args))


if __name__ == "__main__":
    main()
