"""Publish the node's DNS-SD records (:mod:`matter_ota.dnssd`) over mDNS with python-zeroconf.

:class:`Advertiser` owns one ``AsyncZeroconf`` (sockets on every interface), advertises the
IPv6 and IPv4 addresses of the chosen interfaces (default: every interface that is up,
multicast-capable and not loopback) under a MAC-derived host name (12 upper-case hex digits,
as connectedhomeip does; 16 random ones when no MAC is readable), and registers, updates and
withdraws :class:`~matter_ota.dnssd.ServiceRecord` s. Addresses are re-read on
:meth:`Advertiser.refresh_addresses` and the records re-announced when they changed.

**Subtypes.** python-zeroconf registers one type per service name, but a Matter commissionable
node needs up to five subtype PTRs (``_L``, ``_S``, ``_V``, ``_T``, ``_CM``) beside its main PTR.
The zeroconf registry answers a PTR question from its ``types`` index (name -> services); for each
subtype we file a view of the service whose type is the subtype name in that index, so a question
for ``_L3840._sub._matterc._udp.local.`` is answered with ``PTR -> <instance>`` plus SRV, TXT and
addresses (RFC 6763 7.1, 12.1). Announcements and goodbyes for those PTRs are sent here.

**Conflicts.** Each registration probes its instance name first (RFC 6762 8.1). When another
responder already holds it, a commissionable instance takes a fresh random name (its name has no
meaning, 4.3.1) and probes again; an operational instance name *is* the node's identity, so a
conflict there is reported (:class:`NameConflict`) rather than renamed away.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, NonUniqueNameException, ServiceInfo
from zeroconf._dns import DNSPointer
from zeroconf._protocol.outgoing import DNSOutgoing
from zeroconf.asyncio import AsyncZeroconf

from matter_ota import dnssd
from matter_ota.dnssd import ServiceRecord

log = logging.getLogger("matter_ota.mdns")

# RFC 1035 4.1.1 / RFC 6762 18: header flags of an authoritative response; record type and class.
_FLAGS_RESPONSE = 0x8000 | 0x0400
_TYPE_PTR = 12
_CLASS_IN = 1
HOST_TTL = 120  # RFC 6762 10: records naming a host (SRV, A, AAAA)
OTHER_TTL = 4500  # RFC 6762 10: other records (PTR, TXT)
ANNOUNCE_INTERVAL = 1.0  # RFC 6762 8.3: two announcements at least one second apart
MAX_RENAMES = 8

# Linux interface flags (include/uapi/linux/if.h).
_IFF_UP, _IFF_LOOPBACK, _IFF_MULTICAST = 0x1, 0x8, 0x1000


class MdnsError(Exception):
    """The advertiser cannot do what was asked."""


class NameConflict(MdnsError):
    """Another responder on the link owns an instance name we cannot give up."""


@dataclass
class Interface:
    """One network interface we advertise on, with its addresses."""

    name: str
    index: int
    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    mac: bytes | None = None


def _sys_flags(name: str) -> int | None:
    try:
        return int(Path(f"/sys/class/net/{name}/flags").read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def _sys_mac(name: str) -> bytes | None:
    try:
        text = Path(f"/sys/class/net/{name}/address").read_text().strip()
        mac = bytes.fromhex(text.replace(":", ""))
    except (OSError, ValueError):
        return None
    return mac if len(mac) in (6, 8) and any(mac) else None


def discover_interfaces(names: Sequence[str] | None = None) -> list[Interface]:
    """The interfaces to advertise on: ``names`` (in that order), or every interface that is
    up, multicast-capable and not loopback. :class:`MdnsError` for an unknown name."""
    adapters = {a.nice_name: a for a in ifaddr.get_adapters()}
    if names:
        missing = [n for n in names if n not in adapters]
        if missing:
            raise MdnsError(f"no network interface named {', '.join(missing)}")
        chosen = [adapters[n] for n in names]
    else:
        chosen = []
        for adapter in adapters.values():
            flags = _sys_flags(adapter.nice_name)
            if flags is None:
                usable = adapter.nice_name != "lo"
            else:
                usable = bool(flags & _IFF_UP and flags & _IFF_MULTICAST
                              and not flags & _IFF_LOOPBACK)
            if usable:
                chosen.append(adapter)
    result = []
    for adapter in chosen:
        iface = Interface(adapter.nice_name, int(adapter.index or 0),
                          mac=_sys_mac(adapter.nice_name))
        for ip in adapter.ips:
            if isinstance(ip.ip, tuple):
                iface.ipv6.append(ip.ip[0])
            else:
                iface.ipv4.append(ip.ip)
        result.append(iface)
    return result


def default_host_name(interfaces: Sequence[Interface]) -> str:
    """``<MAC of the first interface that has one>.local.``, else 16 random hex digits."""
    for iface in interfaces:
        if iface.mac is not None:
            return f"{dnssd.host_name_from_mac(iface.mac)}.{dnssd.DOMAIN}"
    return f"{dnssd.random_host_name()}.{dnssd.DOMAIN}"


def ordered_addresses(interfaces: Sequence[Interface], ipv4: bool = True) -> list[str]:
    """IPv6 first (global/ULA before link-local), then IPv4 unless ``ipv4`` is False."""
    v6 = [a for i in interfaces for a in i.ipv6]
    v6.sort(key=lambda a: ipaddress.IPv6Address(a.split("%")[0]).is_link_local)
    v4 = [a for i in interfaces for a in i.ipv4] if ipv4 else []
    return list(dict.fromkeys(v6 + v4))


@dataclass
class _Published:
    record: ServiceRecord
    info: ServiceInfo
    views: list[ServiceInfo]


class Advertiser:
    """Registers :class:`ServiceRecord` s on mDNS until :meth:`close` (or ``async with``).

    ``interfaces``: names of the interfaces to use (default: all usable ones). ``addresses``:
    the addresses to advertise (default: those of the interfaces; IPv6 only when ``ipv4`` is
    False). ``host``: the host name
    (default: MAC-derived). ``zeroconf``: an existing ``AsyncZeroconf`` to use (not closed here).
    """

    def __init__(
        self,
        *,
        interfaces: Sequence[str] | None = None,
        addresses: Sequence[str] | None = None,
        host: str | None = None,
        zeroconf: AsyncZeroconf | None = None,
        ipv4: bool = True,
    ) -> None:
        self._ipv4 = ipv4
        self._interface_names = list(interfaces) if interfaces else None
        self._addresses = list(addresses) if addresses else None
        self._fixed_addresses = bool(addresses)
        self._host = host
        self._zc = zeroconf
        self._own_zc = zeroconf is None
        self._published: dict[str, _Published] = {}
        self._tasks: set[asyncio.Future[object]] = set()  # announcements, goodbyes
        self._repeats: set[asyncio.Future[None]] = set()  # second subtype announcements
        self.interfaces: list[Interface] = []

    @property
    def host(self) -> str:
        if self._host is None:
            raise MdnsError("advertiser not started")
        return self._host

    @property
    def addresses(self) -> list[str]:
        return list(self._addresses or [])

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        """Resolve interfaces, addresses and host name; open the mDNS sockets."""
        self.interfaces = discover_interfaces(self._interface_names)
        if self._addresses is None:
            self._addresses = ordered_addresses(self.interfaces, self._ipv4)
        if not self._addresses:
            raise MdnsError("no IPv6 or IPv4 address to advertise on "
                            + (", ".join(i.name for i in self.interfaces) or "any interface"))
        if self._host is None:
            self._host = default_host_name(self.interfaces)
        elif "." not in self._host:
            self._host = f"{self._host}.{dnssd.DOMAIN}"
        elif not self._host.endswith("."):
            self._host += "."
        if self._zc is None:
            # Sockets on every interface, IPv6 and IPv4; ``interfaces`` selects what we
            # advertise. (python-zeroconf 0.154 bound to an explicit list of IPv4 addresses
            # and IPv6 indexes leaves an IPv4 browser's first query unanswered once two
            # services share the host; seen while writing tests/interop/test_mdns.py.)
            self._zc = AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.All)
            await self._zc.zeroconf.async_wait_for_start()
        log.info("event=mdns_started host=%s interfaces=%s addresses=%s", self._host,
                 ",".join(i.name for i in self.interfaces), ",".join(self._addresses))

    @property
    def _zeroconf(self) -> AsyncZeroconf:
        if self._zc is None:
            raise MdnsError("advertiser not started")
        return self._zc

    def _info(self, record: ServiceRecord, type_: str) -> ServiceInfo:
        return ServiceInfo(
            type_,
            record.fqdn,
            port=record.port,
            properties=dict(record.txt),
            server=self.host,
            parsed_addresses=[a.split("%")[0] for a in self.addresses],
            host_ttl=HOST_TTL,
            other_ttl=OTHER_TTL,
        )

    async def publish(
        self, record: ServiceRecord, *, rename: Callable[[ServiceRecord], str] | None = None
    ) -> ServiceRecord:
        """Probe, register and announce ``record``; return it as published.

        On a name conflict, ``rename`` (if given) picks a new instance name and probing starts
        over (at most :data:`MAX_RENAMES` times); without it :class:`NameConflict` is raised.
        """
        zc = self._zeroconf
        for _ in range(MAX_RENAMES + 1):
            if record.fqdn.lower() in self._published:
                raise MdnsError(f"{record.fqdn} is already published; use update()")
            info = self._info(record, record.service_type)
            try:
                announced = await zc.async_register_service(info, allow_name_change=False)
            except NonUniqueNameException:
                if rename is None:
                    log.error("event=mdns_conflict instance=%s action=none", record.fqdn)
                    raise NameConflict(f"{record.fqdn} is in use by another responder") from None
                new = record.with_instance(rename(record))
                log.warning("event=mdns_conflict instance=%s action=rename new=%s",
                            record.fqdn, new.fqdn)
                record = new
                continue
            self._track(announced)
            views = self._add_views(info, record)
            self._published[record.fqdn.lower()] = _Published(record, info, views)
            self._announce_subtypes(views)
            log.info("event=mdns_published instance=%s subtypes=%s port=%d", record.fqdn,
                     ",".join(record.subtypes) or "-", record.port)
            return record
        raise NameConflict(f"gave up after {MAX_RENAMES} renames of {record.service}")

    async def update(self, record: ServiceRecord) -> None:
        """Re-announce a published instance with new TXT, port or subtypes."""
        published = self._published.get(record.fqdn.lower())
        if published is None:
            raise MdnsError(f"{record.fqdn} is not published")
        info = self._info(record, record.service_type)
        self._track(await self._zeroconf.async_update_service(info))
        # Swap the subtype views with no await in between: no query sees neither.
        self._remove_views(published, goodbye=[
            v for v in published.views if v.type not in record.subtype_types()])
        views = self._add_views(info, record)
        self._published[record.fqdn.lower()] = _Published(record, info, views)
        self._announce_subtypes(views)
        log.info("event=mdns_updated instance=%s subtypes=%s", record.fqdn,
                 ",".join(record.subtypes) or "-")

    async def withdraw(self, record: ServiceRecord) -> None:
        """Send goodbyes (TTL 0) for ``record`` and stop answering for it."""
        published = self._published.pop(record.fqdn.lower(), None)
        if published is None:
            return
        self._remove_views(published, goodbye=published.views)
        self._track(await self._zeroconf.async_unregister_service(published.info))
        log.info("event=mdns_withdrawn instance=%s", record.fqdn)

    async def refresh_addresses(self) -> bool:
        """Re-read the interfaces' addresses; if they changed, re-announce every record with the
        new A/AAAA set (sent with the cache-flush bit, so browsers replace the old ones).

        Returns True when something changed. A no-op with explicit ``addresses``.
        """
        if self._fixed_addresses or self._zc is None:
            return False
        try:
            interfaces = discover_interfaces(self._interface_names)
        except MdnsError as exc:  # an interface went away: keep what we have, say so
            log.warning("event=mdns_refresh_failed error=%s", exc)
            return False
        addresses = ordered_addresses(interfaces, self._ipv4)
        if not addresses or set(addresses) == set(self._addresses or []):
            return False
        log.info("event=mdns_addresses old=%s new=%s", ",".join(self._addresses or []),
                 ",".join(addresses))
        self.interfaces, self._addresses = interfaces, addresses
        if self._own_zc:
            # Sockets follow the interfaces too (senders bound to a vanished address).
            await self._zc.async_update_interfaces()
        for published in list(self._published.values()):
            await self.update(published.record)
        return True

    def published(self) -> list[ServiceRecord]:
        """The records currently advertised."""
        return [p.record for p in self._published.values()]

    async def close(self) -> None:
        """Withdraw everything (goodbyes sent before the sockets close), then close."""
        if self._zc is None:
            return
        for repeat in list(self._repeats):
            repeat.cancel()  # a second announcement of what we are withdrawing
        for published in list(self._published.values()):
            await self.withdraw(published.record)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._own_zc:
            await self._zc.async_close()
        self._zc = None
        log.info("event=mdns_stopped")

    # -- subtype PTRs ---------------------------------------------------------------------

    def _add_views(self, info: ServiceInfo, record: ServiceRecord) -> list[ServiceInfo]:
        types = self._zeroconf.zeroconf.registry.types
        views = []
        for subtype in record.subtype_types():
            view = self._info(record, subtype)
            types.setdefault(subtype.lower(), {})[info.key] = view
            views.append(view)
        return views

    def _remove_views(self, published: _Published, goodbye: list[ServiceInfo]) -> None:
        types = self._zeroconf.zeroconf.registry.types
        for view in published.views:
            bucket = types.get(view.type.lower())
            if bucket is not None:
                bucket.pop(view.key, None)
                if not bucket:
                    del types[view.type.lower()]
        if goodbye:
            self._send_pointers(goodbye, ttl=0)

    def _announce_subtypes(self, views: list[ServiceInfo]) -> None:
        if not views:
            return
        self._send_pointers(views, ttl=None)

        async def again() -> None:
            await asyncio.sleep(ANNOUNCE_INTERVAL)
            current = [v for v in views if self._is_current(v)]
            if current and self._zc is not None:
                self._send_pointers(current, ttl=None)

        repeat = asyncio.ensure_future(again())
        self._repeats.add(repeat)
        repeat.add_done_callback(self._repeats.discard)

    def _is_current(self, view: ServiceInfo) -> bool:
        if self._zc is None:
            return False
        return self._zc.zeroconf.registry.types.get(view.type.lower(), {}).get(view.key) is view

    def _send_pointers(self, views: list[ServiceInfo], ttl: int | None) -> None:
        out = DNSOutgoing(_FLAGS_RESPONSE)
        for view in views:
            pointer = DNSPointer(view.type, _TYPE_PTR, _CLASS_IN,
                                 OTHER_TTL if ttl is None else ttl, view.name, 0.0)
            out.add_answer_at_time(pointer, 0)
        self._zeroconf.zeroconf.async_send(out)

    def _track(self, awaitable: object) -> None:
        future = asyncio.ensure_future(awaitable)  # type: ignore[call-overload]
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)
