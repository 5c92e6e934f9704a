"""The node's DNS-SD records (Matter Core spec 4.3), computed without any I/O.

Two services (4.3.1 commissionable, 4.3.2 operational), each a :class:`ServiceRecord` that
:mod:`matter_ota.runtime.mdns` publishes with python-zeroconf:

- **Commissionable** ``_matterc._udp``: instance name a random 64-bit number in 16 upper-case
  hex digits (4.3.1, fresh per commissioning window); subtypes ``_L<long discriminator>``,
  ``_S<short discriminator>`` (its 4 upper bits), ``_V<vendor id>``, ``_T<device type>`` when set,
  ``_CM`` while in commissioning mode (4.3.1); TXT ``D`` (discriminator), ``CM`` (commissioning
  mode), ``VP`` (``vid+pid``), ``DT``, ``DN``, ``RI``, ``PH``, ``PI`` and the common keys.
- **Operational** ``_matter._tcp``: instance ``<compressed fabric id>-<node id>``, each 16
  upper-case hex digits (4.3.2); subtype ``_I<compressed fabric id>`` (4.3.2); common TXT keys
  only.

Common TXT keys (4.3.4): ``SII`` / ``SAI`` (MRP idle / active retransmission interval, ms, at
most 3600000), ``SAT`` (active threshold, ms, at most 65535), ``T`` (TCP support bitmap: bit 1
client, bit 2 server; we are UDP only, so 0).

Numbers are decimal, names and formats as connectedhomeip's ``src/lib/dnssd/ServiceNaming.cpp``
writes them (``tests/test_dnssd.py`` checks its test vectors).
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, field

from matter_ota.messaging.session import DEFAULT_PARAMETERS, SessionParameters

DOMAIN = "local."
COMMISSIONABLE = "_matterc._udp"  # 4.3.1
OPERATIONAL = "_matter._tcp"  # 4.3.2
SUBTYPE_LABEL = "_sub"  # RFC 6763 7.1

MAX_RETRY_INTERVAL_MS = 3_600_000  # 4.3.4: SII / SAI at most one hour
MAX_ACTIVE_THRESHOLD_MS = 0xFFFF  # 4.3.4: SAT
MAX_DEVICE_NAME = 32  # 4.3.1 DN, bytes of UTF-8
MAX_PAIRING_INSTRUCTION = 128  # 4.3.1 PI
MAX_ROTATING_ID_HEX = 100  # 4.3.1 RI: up to 50 octets as hex
MAX_TXT_ENTRY = 255  # RFC 6763 6.1: one length octet per key=value string


class DnssdError(ValueError):
    """A parameter that cannot be advertised (out of range, too long)."""


class CommissioningMode(enum.IntEnum):
    """TXT ``CM`` (4.3.1)."""

    DISABLED = 0
    BASIC = 1  # opened by the device (e.g. `serve --passcode`)
    ENHANCED = 2  # opened by an administrator (Open Commissioning Window)


class TcpSupport(enum.IntFlag):
    """TXT ``T`` (4.3.4)."""

    NONE = 0
    CLIENT = 0x2
    SERVER = 0x4


@dataclass(frozen=True)
class ServiceRecord:
    """One DNS-SD service instance: PTR (+ subtype PTRs), SRV, TXT; A/AAAA come from the host."""

    service: str  # "_matterc._udp"
    instance: str
    port: int
    subtypes: tuple[str, ...] = ()
    txt: dict[str, str] = field(default_factory=dict)

    @property
    def service_type(self) -> str:
        """The fully qualified type: ``_matterc._udp.local.``."""
        return f"{self.service}.{DOMAIN}"

    @property
    def fqdn(self) -> str:
        """The instance's full name: ``<instance>._matterc._udp.local.``."""
        return f"{self.instance}.{self.service_type}"

    def subtype_types(self) -> list[str]:
        """Each subtype's full name: ``_L3840._sub._matterc._udp.local.``."""
        return [f"{sub}.{SUBTYPE_LABEL}.{self.service_type}" for sub in self.subtypes]

    def with_instance(self, instance: str) -> ServiceRecord:
        """The same record under another instance name (after a name conflict)."""
        return ServiceRecord(self.service, instance, self.port, self.subtypes, dict(self.txt))

    def txt_bytes(self) -> list[bytes]:
        """The TXT strings as they go on the wire (``key=value``, UTF-8)."""
        return [f"{k}={v}".encode() for k, v in self.txt.items()]


# ----------------------------------------------------------------------------- names


def random_instance_name() -> str:
    """A commissionable instance name: 64 random bits, 16 upper-case hex digits (4.3.1)."""
    return secrets.token_bytes(8).hex().upper()


def operational_instance_name(compressed_fabric_id: int, node_id: int) -> str:
    """``<compressed fabric id>-<node id>``, 16 upper-case hex digits each (4.3.2)."""
    _check_range("compressed fabric id", compressed_fabric_id, 0, 2**64 - 1)
    _check_range("node id", node_id, 0, 2**64 - 1)
    return f"{compressed_fabric_id:016X}-{node_id:016X}"


def host_name_from_mac(mac: bytes) -> str:
    """The host label from a MAC-48 (12 hex digits) or EUI-64 (16), upper case (4.3.1)."""
    if len(mac) not in (6, 8):
        raise DnssdError(f"a MAC address is 6 or 8 octets, not {len(mac)}")
    return mac.hex().upper()


def random_host_name() -> str:
    """A host label for a node without a usable MAC: 64 random bits as 16 hex digits."""
    return secrets.token_bytes(8).hex().upper()


def long_discriminator_subtype(discriminator: int) -> str:
    _check_range("discriminator", discriminator, 0, 0xFFF)
    return f"_L{discriminator}"


def short_discriminator_subtype(short_discriminator: int) -> str:
    _check_range("short discriminator", short_discriminator, 0, 0xF)
    return f"_S{short_discriminator}"


def vendor_subtype(vendor_id: int) -> str:
    _check_range("vendor id", vendor_id, 0, 0xFFFF)
    return f"_V{vendor_id}"


def device_type_subtype(device_type: int) -> str:
    _check_range("device type", device_type, 0, 0xFFFFFFFF)
    return f"_T{device_type}"


COMMISSIONING_MODE_SUBTYPE = "_CM"  # 4.3.1


def compressed_fabric_subtype(compressed_fabric_id: int) -> str:
    _check_range("compressed fabric id", compressed_fabric_id, 0, 2**64 - 1)
    return f"_I{compressed_fabric_id:016X}"


# ----------------------------------------------------------------------------- records


def common_txt(
    mrp: SessionParameters | None = DEFAULT_PARAMETERS, tcp: TcpSupport | None = TcpSupport.NONE
) -> dict[str, str]:
    """SII, SAI, SAT (when ``mrp`` is given) and T (when ``tcp`` is given), 4.3.4."""
    txt: dict[str, str] = {}
    if mrp is not None:
        # The SDK clamps over-long intervals to the maximum rather than refusing them.
        txt["SII"] = str(min(round(mrp.idle_interval * 1000), MAX_RETRY_INTERVAL_MS))
        txt["SAI"] = str(min(round(mrp.active_interval * 1000), MAX_RETRY_INTERVAL_MS))
        txt["SAT"] = str(min(round(mrp.active_threshold * 1000), MAX_ACTIVE_THRESHOLD_MS))
    if tcp is not None:
        txt["T"] = str(int(tcp))
    return txt


@dataclass(frozen=True)
class Commissionable:
    """What a commissionable node advertises (4.3.1)."""

    discriminator: int
    vendor_id: int | None = None
    product_id: int | None = None
    mode: CommissioningMode = CommissioningMode.BASIC
    device_type: int | None = None
    device_name: str | None = None
    rotating_id: str | None = None  # hex
    pairing_hint: int | None = None
    pairing_instruction: str | None = None
    mrp: SessionParameters | None = DEFAULT_PARAMETERS
    tcp: TcpSupport | None = TcpSupport.NONE

    @property
    def short_discriminator(self) -> int:
        return self.discriminator >> 8

    def subtypes(self) -> tuple[str, ...]:
        """``_L``, ``_S``, then ``_V``, ``_T`` when known, ``_CM`` in commissioning mode."""
        subs = [long_discriminator_subtype(self.discriminator),
                short_discriminator_subtype(self.short_discriminator)]
        if self.vendor_id is not None:
            subs.append(vendor_subtype(self.vendor_id))
        if self.device_type is not None:
            subs.append(device_type_subtype(self.device_type))
        if self.mode != CommissioningMode.DISABLED:
            subs.append(COMMISSIONING_MODE_SUBTYPE)
        return tuple(subs)

    def txt(self) -> dict[str, str]:
        """The TXT keys in the spec's order; optional ones only when set."""
        txt = {"D": str(self.discriminator), "CM": str(int(self.mode))}
        if self.vendor_id is not None:
            _check_range("vendor id", self.vendor_id, 0, 0xFFFF)
            txt["VP"] = str(self.vendor_id)
            if self.product_id is not None:
                _check_range("product id", self.product_id, 0, 0xFFFF)
                txt["VP"] += f"+{self.product_id}"
        elif self.product_id is not None:
            raise DnssdError("VP carries a product id only after a vendor id (4.3.1)")
        if self.device_type is not None:
            txt["DT"] = str(self.device_type)
        if self.device_name is not None:
            _check_length("DN", self.device_name, MAX_DEVICE_NAME)
            txt["DN"] = self.device_name
        if self.rotating_id is not None:
            if len(self.rotating_id) > MAX_ROTATING_ID_HEX or any(
                    c not in "0123456789ABCDEFabcdef" for c in self.rotating_id):
                raise DnssdError("RI is at most 100 hex digits")
            txt["RI"] = self.rotating_id.upper()
        if self.pairing_hint is not None:
            _check_range("pairing hint", self.pairing_hint, 0, 0xFFFFFFFF)
            txt["PH"] = str(self.pairing_hint)
        if self.pairing_instruction is not None:
            _check_length("PI", self.pairing_instruction, MAX_PAIRING_INSTRUCTION)
            txt["PI"] = self.pairing_instruction
        txt.update(common_txt(self.mrp, self.tcp))
        return txt

    def record(self, instance: str, port: int) -> ServiceRecord:
        """The ``_matterc._udp`` service record under ``instance``."""
        _check_range("discriminator", self.discriminator, 0, 0xFFF)
        _check_range("port", port, 1, 0xFFFF)
        return ServiceRecord(COMMISSIONABLE, instance, port, self.subtypes(), self.txt())


def operational_record(
    compressed_fabric_id: int | bytes,
    node_id: int,
    port: int,
    mrp: SessionParameters | None = DEFAULT_PARAMETERS,
    tcp: TcpSupport | None = TcpSupport.NONE,
) -> ServiceRecord:
    """The ``_matter._tcp`` record for this node on one fabric (4.3.2)."""
    cfid = (int.from_bytes(compressed_fabric_id, "big")
            if isinstance(compressed_fabric_id, bytes) else compressed_fabric_id)
    if isinstance(compressed_fabric_id, bytes) and len(compressed_fabric_id) != 8:
        raise DnssdError("a compressed fabric id is 8 octets")
    _check_range("port", port, 1, 0xFFFF)
    return ServiceRecord(
        OPERATIONAL,
        operational_instance_name(cfid, node_id),
        port,
        (compressed_fabric_subtype(cfid),),
        common_txt(mrp, tcp),
    )


def parse_txt(entries: list[bytes]) -> dict[str, str]:
    """``key=value`` strings back into a dict (for tests and for browsing peers)."""
    out: dict[str, str] = {}
    for entry in entries:
        key, _, value = entry.partition(b"=")
        out[key.decode("ascii", "replace")] = value.decode("utf-8", "replace")
    return out


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise DnssdError(f"{name} {value} outside {low}..{high}")


def _check_length(key: str, value: str, limit: int) -> None:
    size = len(value.encode())
    if size > limit:
        raise DnssdError(f"{key} is {size} bytes of UTF-8, at most {limit}")
