"""YAML -> typed, validated configuration: ``provider.yaml`` and ``releases.yaml``.

``provider.yaml`` describes the node (identity, network, directories, limits, DCL, channels);
``releases.yaml`` holds the releases, written by the CLI and editable by hand. Unknown keys
are errors (typo protection); every error is a :class:`ConfigError` naming file, line,
column and what to do. Every key has a default, so an empty ``provider.yaml`` is valid.
Relative paths resolve against the directory of the file they are written in.

:func:`release_to_yaml` gives a release's canonical YAML values (what the CLI writes);
:func:`parse_releases` validates a releases document before it is written.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path

import yaml

from matter_ota.policy.model import (
    DEFAULT_CHANNEL,
    Channel,
    DeviceMatch,
    FailurePolicy,
    IntRange,
    MaintenanceWindow,
    Product,
    RampStep,
    Release,
    ReleaseKey,
    ReleaseStatus,
    Source,
    valid_channel_name,
)
from matter_ota.yamlnodes import ConfigError, Doc, format_duration

__all__ = [
    "Config", "ConfigError", "DclConfig", "Limits", "NetworkConfig", "NodeIdentity",
    "ProviderConfig", "ReleasesConfig", "load_config", "load_provider", "load_releases",
    "parse_provider", "parse_releases", "release_to_yaml",
]

DCL_NETWORKS = {
    "mainnet": "https://on.dcl.csa-iot.org",
    "testnet": "https://on.test-net.dcl.csa-iot.org",
}

# Matter Core 5.1.7.1: passcodes that are trivially guessable are not allowed.
INVALID_PASSCODES = frozenset(
    {0, 11111111, 22222222, 33333333, 44444444, 55555555, 66666666, 77777777, 88888888,
     99999999, 12345678, 87654321}
)
# The TC-SU test plan requires the BDX idle timeout to be at least 5 minutes.
MIN_BDX_IDLE_TIMEOUT = 300.0
# Matter Core 5.4.2.3: a commissioning window lasts at most 15 minutes.
MAX_COMMISSIONING_WINDOW = 900.0


@dataclass(frozen=True)
class NodeIdentity:
    """Who the provider is on the fabric and in its commissionable advertisement."""

    vendor_id: int = 0xFFF1
    product_id: int = 0x8000
    discriminator: int = 3840
    passcode: int = 20202021
    device_name: str = "matter-ota provider"
    vendor_name: str = "matter-ota"
    product_name: str = "OTA Provider"


@dataclass(frozen=True)
class NetworkConfig:
    port: int = 5540
    interfaces: tuple[str, ...] = ()  # empty: all interfaces
    ipv4: bool = True


@dataclass(frozen=True)
class Limits:
    max_sessions: int = 64
    max_concurrent_transfers: int = 16
    commissioning_attempts: int = 20
    commissioning_window: float = MAX_COMMISSIONING_WINDOW
    bdx_idle_timeout: float = MIN_BDX_IDLE_TIMEOUT
    busy_retry_base: int = 120
    busy_retry_spread: int = 600
    update_applied_timeout: float = 3600.0


@dataclass(frozen=True)
class DclConfig:
    url: str = DCL_NETWORKS["mainnet"]
    ca_bundle: Path | None = None
    refresh_interval: float = 6 * 3600.0
    cache_size: int = 1 << 30
    request_timeout: float = 30.0


@dataclass(frozen=True)
class ProviderConfig:
    """``provider.yaml``: ``channels`` lists the default channel first, then the rest in file
    order (the order in which their selectors are tried)."""

    path: Path
    node: NodeIdentity = NodeIdentity()
    network: NetworkConfig = NetworkConfig()
    state_dir: Path = Path("state")
    firmware_dir: Path = Path("firmware")
    releases_file: Path = Path("releases.yaml")
    limits: Limits = Limits()
    dcl: DclConfig = DclConfig()
    channels: tuple[Channel, ...] = (Channel(DEFAULT_CHANNEL),)

    @property
    def channel_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.channels)


@dataclass(frozen=True)
class ReleasesConfig:
    """``releases.yaml``: at most one release per (channel, product)."""

    path: Path
    releases: tuple[Release, ...] = ()
    lines: dict[ReleaseKey, int] = field(default_factory=dict, compare=False)

    def get(self, channel: str, product: Product) -> Release | None:
        for release in self.releases:
            if release.channel == channel and release.product == product:
                return release
        return None


@dataclass(frozen=True)
class Config:
    provider: ProviderConfig
    releases: ReleasesConfig


# --- provider.yaml ----------------------------------------------------------------------------

_TOP_KEYS = ("node", "network", "state_dir", "firmware_dir", "releases_file", "limits", "dcl",
             "channels")
_NODE_KEYS = ("vendor_id", "product_id", "discriminator", "passcode", "device_name",
              "vendor_name", "product_name")
_NETWORK_KEYS = ("port", "interfaces", "ipv4")
_LIMIT_KEYS = ("max_sessions", "max_concurrent_transfers", "commissioning_attempts",
               "commissioning_window", "bdx_idle_timeout", "busy_retry_base",
               "busy_retry_spread", "update_applied_timeout")
_DCL_KEYS = ("url", "ca_bundle", "refresh_interval", "cache_size", "request_timeout")
_CHANNEL_KEYS = ("node_ids", "fabrics", "vendor_ids", "products", "hardware_versions",
                 "locations")


def load_provider(path: Path) -> ProviderConfig:
    """Read and validate ``provider.yaml``; ConfigError on any problem."""
    return _provider(Doc.load(Path(path)))


def parse_provider(text: str, path: Path) -> ProviderConfig:
    """Validate provider YAML ``text`` as if read from ``path``."""
    return _provider(Doc.parse(text, Path(path)))


def _provider(doc: Doc) -> ProviderConfig:
    top = doc.mapping(doc.root, "provider config", _TOP_KEYS)
    here = doc.path.parent
    return ProviderConfig(
        path=doc.path,
        node=_node(doc, top.get("node")),
        network=_network(doc, top.get("network")),
        state_dir=doc.resolve_path(top["state_dir"], "state_dir") if "state_dir" in top
        else here / "state",
        firmware_dir=doc.resolve_path(top["firmware_dir"], "firmware_dir") if "firmware_dir" in top
        else here / "firmware",
        releases_file=doc.resolve_path(top["releases_file"], "releases_file")
        if "releases_file" in top else here / "releases.yaml",
        limits=_limits(doc, top.get("limits")),
        dcl=_dcl(doc, top.get("dcl")),
        channels=_channels(doc, top.get("channels")),
    )


def _node(doc: Doc, node: yaml.Node | None) -> NodeIdentity:
    m = doc.mapping(node, "node", _NODE_KEYS)
    d = NodeIdentity()
    passcode = d.passcode
    if "passcode" in m:
        # Matter Core 5.1.1.6: the passcode is 27 bits, 00000001..99999998.
        passcode = doc.integer(m["passcode"], "node.passcode", 1, 99999998)
        if passcode in INVALID_PASSCODES:
            doc.error(m["passcode"], f"node.passcode {passcode:08d} is not allowed by the "
                      "Matter spec (too easy to guess)", "pick another 8-digit number")
    return NodeIdentity(
        vendor_id=doc.integer(m["vendor_id"], "node.vendor_id", 1, 0xFFF4)
        if "vendor_id" in m else d.vendor_id,
        product_id=doc.integer(m["product_id"], "node.product_id", 1, 0xFFFF)
        if "product_id" in m else d.product_id,
        # Matter Core 5.1.1.5: the discriminator is 12 bits.
        discriminator=doc.integer(m["discriminator"], "node.discriminator", 0, 0xFFF)
        if "discriminator" in m else d.discriminator,
        passcode=passcode,
        # Matter Core 11.1.5 (Basic Information): names are at most 32 characters.
        device_name=doc.string(m["device_name"], "node.device_name", max_len=32)
        if "device_name" in m else d.device_name,
        vendor_name=doc.string(m["vendor_name"], "node.vendor_name", max_len=32)
        if "vendor_name" in m else d.vendor_name,
        product_name=doc.string(m["product_name"], "node.product_name", max_len=32)
        if "product_name" in m else d.product_name,
    )


def _network(doc: Doc, node: yaml.Node | None) -> NetworkConfig:
    m = doc.mapping(node, "network", _NETWORK_KEYS)
    d = NetworkConfig()
    interfaces = tuple(
        doc.string(n, "network.interfaces entry", pattern=r"[A-Za-z0-9_.:@-]{1,15}",
                   hint="an interface name such as eth0")
        for n in doc.sequence(m.get("interfaces"), "network.interfaces")
    )
    return NetworkConfig(
        port=doc.integer(m["port"], "network.port", 1, 65535) if "port" in m else d.port,
        interfaces=interfaces,
        ipv4=doc.boolean(m["ipv4"], "network.ipv4") if "ipv4" in m else d.ipv4,
    )


def _limits(doc: Doc, node: yaml.Node | None) -> Limits:
    m = doc.mapping(node, "limits", _LIMIT_KEYS)
    d = Limits()

    def count(key: str, low: int, high: int, default: int) -> int:
        return doc.integer(m[key], f"limits.{key}", low, high) if key in m else default

    def seconds(key: str, low: float, high: float, default: float) -> float:
        return doc.duration(m[key], f"limits.{key}", low, high) if key in m else default

    return Limits(
        max_sessions=count("max_sessions", 1, 10_000, d.max_sessions),
        max_concurrent_transfers=count("max_concurrent_transfers", 1, 10_000,
                                       d.max_concurrent_transfers),
        commissioning_attempts=count("commissioning_attempts", 1, 1000,
                                     d.commissioning_attempts),
        commissioning_window=seconds("commissioning_window", 180, MAX_COMMISSIONING_WINDOW,
                                     d.commissioning_window),
        bdx_idle_timeout=seconds("bdx_idle_timeout", MIN_BDX_IDLE_TIMEOUT, 86400,
                                 d.bdx_idle_timeout),
        # Matter Core 11.20.6.5.2: a Busy DelayedActionTime should be at least 120 s.
        busy_retry_base=int(seconds("busy_retry_base", 120, 86400, d.busy_retry_base)),
        busy_retry_spread=int(seconds("busy_retry_spread", 0, 86400, d.busy_retry_spread)),
        update_applied_timeout=seconds("update_applied_timeout", 60, 30 * 86400,
                                       d.update_applied_timeout),
    )


def _dcl(doc: Doc, node: yaml.Node | None) -> DclConfig:
    m = doc.mapping(node, "dcl", _DCL_KEYS)
    d = DclConfig()
    url = d.url
    if "url" in m:
        text = doc.text(m["url"], "dcl.url").strip()
        if text.lower() in DCL_NETWORKS:
            url = DCL_NETWORKS[text.lower()]
        elif re.fullmatch(r"https://[^\s/?#]+(/[^\s?#]*)?", text):
            url = text.rstrip("/")
        else:
            doc.error(m["url"], f"dcl.url {text!r} is neither mainnet, testnet nor an https URL",
                      "write mainnet, testnet or https://host[/path] (plain http is refused)")
    ca_bundle = None
    if "ca_bundle" in m and not _is_null(m["ca_bundle"]):
        ca_bundle = doc.resolve_path(m["ca_bundle"], "dcl.ca_bundle")
    return DclConfig(
        url=url,
        ca_bundle=ca_bundle,
        refresh_interval=doc.duration(m["refresh_interval"], "dcl.refresh_interval", 60,
                                      30 * 86400) if "refresh_interval" in m
        else d.refresh_interval,
        cache_size=doc.size(m["cache_size"], "dcl.cache_size") if "cache_size" in m
        else d.cache_size,
        request_timeout=doc.duration(m["request_timeout"], "dcl.request_timeout", 1, 600)
        if "request_timeout" in m else d.request_timeout,
    )


def _channels(doc: Doc, node: yaml.Node | None) -> tuple[Channel, ...]:
    channels = [Channel(DEFAULT_CHANNEL)]
    for name_node, value in doc.named_mappings(node, "channels"):
        name = str(name_node.value)
        if not valid_channel_name(name):
            doc.error(name_node, f"channel name {name!r} is not valid",
                      "use lower-case letters, digits, '_', '.', '-' (up to 63)")
        m = doc.mapping(value, f"channel {name!r}", _CHANNEL_KEYS)
        what = f"channels.{name}"
        channel = Channel(
            name=name,
            node_ids=frozenset(doc.integer(n, f"{what}.node_ids entry", 0, 2**64 - 1)
                               for n in doc.sequence(m.get("node_ids"), f"{what}.node_ids")),
            fabrics=frozenset(doc.hex_int(n, f"{what}.fabrics entry", 16)
                              for n in doc.sequence(m.get("fabrics"), f"{what}.fabrics")),
            vendor_ids=frozenset(doc.integer(n, f"{what}.vendor_ids entry", 0, 0xFFFF)
                                 for n in doc.sequence(m.get("vendor_ids"),
                                                       f"{what}.vendor_ids")),
            products=frozenset(_product(doc, n, f"{what}.products entry")
                               for n in doc.sequence(m.get("products"), f"{what}.products")),
            hardware_versions=_ranges(doc, m.get("hardware_versions"),
                                      f"{what}.hardware_versions"),
            locations=frozenset(
                doc.string(n, f"{what}.locations entry", pattern=r"[A-Z]{2}",
                           hint="an ISO 3166-1 alpha-2 code in upper case, e.g. DE or XX")
                for n in doc.sequence(m.get("locations"), f"{what}.locations")),
        )
        if name == DEFAULT_CHANNEL:
            if channel.has_selectors:
                doc.error(name_node, f"{DEFAULT_CHANNEL!r} is the default channel: it takes "
                          "every device no other channel selects and has no selectors",
                          "move the selectors to a channel of its own")
            continue
        if not channel.has_selectors:
            doc.error(name_node, f"channel {name!r} selects no device",
                      "add node_ids, fabrics, vendor_ids, products, hardware_versions or "
                      "locations")
        channels.append(channel)
    return tuple(channels)


def _product(doc: Doc, node: yaml.Node, what: str) -> Product:
    text = doc.text(node, what)
    try:
        return Product.parse(text)
    except ValueError as exc:
        doc.error(node, f"{what}: {exc}", 'quote it: "FFF1:8001"')


def _ranges(doc: Doc, node: yaml.Node | None, what: str) -> tuple[IntRange, ...]:
    ranges = []
    for item in doc.sequence(node, what):
        text = doc.text(item, f"{what} entry").strip()
        match = re.fullmatch(r"(\d+)\s*(?:-\s*(\d+))?", text)
        if match is None:
            doc.error(item, f"{what} entry {text!r} is not a version or range",
                      "write 3 or \"3-7\"")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) else low
        if high < low or high > 0xFFFF:
            doc.error(item, f"{what} entry {text!r}: ranges go low-high within 0..65535",
                      'write the lower bound first, e.g. "3-7"')
        ranges.append(IntRange(low, high))
    return tuple(ranges)


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null" \
        and node.style is None


# --- releases.yaml ----------------------------------------------------------------------------

_RELEASE_KEYS = (
    "channel", "product", "image", "version", "source", "status", "rollout_percent",
    "cohort_seed", "released_at", "allow_downgrade", "user_consent", "pinned", "excluded",
    "hardware_versions", "failure_threshold", "ramp", "percent_since", "maintenance_window",
    "stop_reason",
)
_FAILURE_KEYS = ("percent", "min_sample")
_RAMP_KEYS = ("percent", "after")
_WINDOW_KEYS = ("start", "end", "timezone", "days")
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


def load_releases(path: Path, channels: frozenset[str] | None = None) -> ReleasesConfig:
    """Read and validate ``releases.yaml``; a missing file means no releases.

    With ``channels``, every release must name one of them.
    """
    path = Path(path)
    if not path.exists():
        return ReleasesConfig(path=path)
    return _releases(Doc.load(path), channels)


def parse_releases(text: str, path: Path,
                   channels: frozenset[str] | None = None) -> ReleasesConfig:
    """Validate releases YAML ``text`` as if read from ``path``."""
    return _releases(Doc.parse(text, Path(path)), channels)


def load_config(path: Path) -> Config:
    """``provider.yaml`` and the ``releases.yaml`` it names, checked against each other."""
    provider = load_provider(path)
    return Config(provider, load_releases(provider.releases_file, provider.channel_names))


def _releases(doc: Doc, channels: frozenset[str] | None) -> ReleasesConfig:
    top = doc.mapping(doc.root, "releases file", ("releases",))
    releases: list[Release] = []
    lines: dict[ReleaseKey, int] = {}
    for item in doc.sequence(top.get("releases"), "releases"):
        release = _release(doc, item, channels)
        if release.key in lines:
            doc.error(item, f"a second release for channel {release.channel!r} and product "
                      f"{release.product} (the first is on line {lines[release.key]})",
                      "one release per channel and product: delete one")
        lines[release.key] = item.start_mark.line + 1
        releases.append(release)
    return ReleasesConfig(path=doc.path, releases=tuple(releases), lines=lines)


def _release(doc: Doc, node: yaml.Node, channels: frozenset[str] | None) -> Release:
    m = doc.mapping(node, "release", _RELEASE_KEYS,
                    required=("channel", "product", "rollout_percent", "cohort_seed",
                              "released_at"))
    channel = doc.string(m["channel"], "release channel")
    if channels is not None and channel not in channels:
        doc.error(m["channel"], f"channel {channel!r} is not defined",
                  "define it under channels: in provider.yaml, or use one of "
                  + ", ".join(sorted(channels)))
    source = Source.LOCAL
    if "source" in m:
        text = doc.text(m["source"], "source").strip().lower()
        if text not in ("local", "dcl"):
            doc.error(m["source"], f"source {text!r} is neither local nor dcl",
                      "write source: local or source: dcl")
        source = Source(text)
    image = None
    if "image" in m and not _is_null(m["image"]):
        image = doc.string(m["image"], "image", pattern=r"[^/\\\x00]+",
                           hint="a file name inside firmware_dir, without directories")
        if image in (".", ".."):
            doc.error(m["image"], "image must be a file name inside firmware_dir",
                      "write the file name only")
    if source is Source.LOCAL and image is None:
        doc.error(node, "a local release needs an image", "add image: <file in firmware_dir>")
    if source is Source.DCL and image is not None:
        doc.error(m["image"], "a DCL release takes its images from the DCL",
                  "remove image, or set source: local")
    status = ReleaseStatus.LIVE
    if "status" in m:
        text = doc.text(m["status"], "status").strip().upper()
        if text not in ("LIVE", "INACTIVE"):
            doc.error(m["status"], f"status {text!r} is neither LIVE nor INACTIVE",
                      "write status: LIVE or status: INACTIVE")
        status = ReleaseStatus(text)
    seed = doc.text(m["cohort_seed"], "cohort_seed").strip().lower()
    if not re.fullmatch(r"(?:[0-9a-f]{2}){8,64}", seed):
        doc.error(m["cohort_seed"], "cohort_seed must be 16 to 128 hex digits (even count)",
                  "quote it; a new one: python3 -c 'import secrets; "
                  "print(secrets.token_hex(16))'")
    percent = doc.integer(m["rollout_percent"], "rollout_percent", 1, 100)
    ramp = _ramp(doc, m.get("ramp"))
    return Release(
        channel=channel,
        product=_product(doc, m["product"], "product"),
        image=image,
        version=doc.integer(m["version"], "version", 0, 0xFFFFFFFF)
        if "version" in m and not _is_null(m["version"]) else None,
        source=source,
        status=status,
        rollout_percent=percent,
        cohort_seed=seed,
        released_at=doc.timestamp(m["released_at"], "released_at"),
        allow_downgrade=doc.boolean(m["allow_downgrade"], "allow_downgrade")
        if "allow_downgrade" in m else False,
        user_consent=doc.boolean(m["user_consent"], "user_consent")
        if "user_consent" in m else False,
        pinned=_devices(doc, m.get("pinned"), "pinned"),
        excluded=_devices(doc, m.get("excluded"), "excluded"),
        hardware_versions=_ranges(doc, m.get("hardware_versions"), "hardware_versions"),
        failure=_failure(doc, m.get("failure_threshold")),
        ramp=ramp,
        percent_since=doc.timestamp(m["percent_since"], "percent_since")
        if "percent_since" in m and not _is_null(m["percent_since"]) else None,
        maintenance_window=_window(doc, m.get("maintenance_window")),
        stop_reason=doc.string(m["stop_reason"], "stop_reason")
        if "stop_reason" in m and not _is_null(m["stop_reason"]) else None,
    )


def _devices(doc: Doc, node: yaml.Node | None, what: str) -> tuple[DeviceMatch, ...]:
    devices = []
    for item in doc.sequence(node, what):
        text = doc.text(item, f"{what} entry").strip()
        if ":" in text:
            fabric_text, node_text = text.split(":", 1)
            if not (re.fullmatch(r"[0-9A-Fa-f]{1,16}", fabric_text)
                    and re.fullmatch(r"[0-9A-Fa-f]{1,16}", node_text)):
                doc.error(item, f"{what} entry {text!r} is not FABRIC:NODE in hex",
                          'write a node id (0x12) or "2906C908D115D362:0000000000000012"')
            devices.append(DeviceMatch(int(node_text, 16), int(fabric_text, 16)))
        else:
            devices.append(DeviceMatch(doc.integer(item, f"{what} entry", 0, 2**64 - 1)))
    return tuple(devices)


def _failure(doc: Doc, node: yaml.Node | None) -> FailurePolicy | None:
    if node is None or _is_null(node):
        return None
    m = doc.mapping(node, "failure_threshold", _FAILURE_KEYS, required=("percent",))
    return FailurePolicy(
        threshold_percent=doc.number(m["percent"], "failure_threshold.percent", 0, 100),
        min_sample=doc.integer(m["min_sample"], "failure_threshold.min_sample", 1, 10**9)
        if "min_sample" in m else FailurePolicy(0).min_sample,
    )


def _ramp(doc: Doc, node: yaml.Node | None) -> tuple[RampStep, ...]:
    steps: list[RampStep] = []
    for item in doc.sequence(node, "ramp"):
        m = doc.mapping(item, "ramp step", _RAMP_KEYS, required=("percent", "after"))
        percent = doc.integer(m["percent"], "ramp step percent", 1, 100)
        if steps and percent <= steps[-1].percent:
            doc.error(m["percent"], f"ramp step {percent} % does not grow the rollout "
                      f"(the step before is {steps[-1].percent} %)",
                      "list the steps in increasing percent")
        steps.append(RampStep(percent, doc.duration(m["after"], "ramp step after")))
    return tuple(steps)


def _window(doc: Doc, node: yaml.Node | None) -> MaintenanceWindow | None:
    if node is None or _is_null(node):
        return None
    m = doc.mapping(node, "maintenance_window", _WINDOW_KEYS, required=("start", "end"))

    def clock(key: str) -> time:
        text = doc.text(m[key], f"maintenance_window.{key}").strip()
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
        if match is None:
            doc.error(m[key], f"maintenance_window.{key} {text!r} is not HH:MM",
                      'quote it: "01:30"')
        return time(int(match.group(1)), int(match.group(2)))

    zone = "UTC"
    if "timezone" in m:
        zone = doc.text(m["timezone"], "maintenance_window.timezone").strip()
        try:
            zoneinfo.ZoneInfo(zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            doc.error(m["timezone"], f"unknown time zone {zone!r}",
                      "use an IANA name such as Europe/Berlin or UTC")
    days = set()
    for item in doc.sequence(m.get("days"), "maintenance_window.days"):
        text = doc.text(item, "maintenance_window.days entry").strip().lower()[:3]
        if text not in _DAYS:
            doc.error(item, f"day {item.value!r} is not a weekday", "write mon, tue, ... sun")
        days.add(_DAYS[text])
    start, end = clock("start"), clock("end")
    if start == end:
        doc.error(m["end"], "maintenance_window start and end are equal (an empty window)",
                  "remove the window to allow updates at any time")
    return MaintenanceWindow(start=start, end=end, timezone=zone, days=frozenset(days))


def release_to_yaml(release: Release) -> dict[str, object]:
    """A release as the plain YAML values the CLI writes, in the canonical key order.

    Keys left at their default are omitted. Parsing the result gives the release back.
    """
    out: dict[str, object] = {
        "channel": release.channel,
        "product": str(release.product),
    }
    if release.image is not None:
        out["image"] = release.image
    if release.version is not None:
        out["version"] = release.version
    out["source"] = release.source.value
    out["status"] = release.status.value
    out["rollout_percent"] = release.rollout_percent
    out["cohort_seed"] = release.cohort_seed
    out["released_at"] = _iso(release.released_at)
    if release.allow_downgrade:
        out["allow_downgrade"] = True
    if release.user_consent:
        out["user_consent"] = True
    if release.pinned:
        out["pinned"] = [str(d) for d in release.pinned]
    if release.excluded:
        out["excluded"] = [str(d) for d in release.excluded]
    if release.hardware_versions:
        out["hardware_versions"] = [str(r) for r in release.hardware_versions]
    if release.failure is not None:
        out["failure_threshold"] = {"percent": release.failure.threshold_percent,
                                    "min_sample": release.failure.min_sample}
    if release.ramp:
        out["ramp"] = [{"percent": s.percent, "after": format_duration(s.after)}
                       for s in release.ramp]
    if release.percent_since is not None:
        out["percent_since"] = _iso(release.percent_since)
    window = release.maintenance_window
    if window is not None:
        w: dict[str, object] = {"start": window.start.strftime("%H:%M"),
                                "end": window.end.strftime("%H:%M"),
                                "timezone": window.timezone}
        if window.days:
            names = {v: k for k, v in _DAYS.items()}
            w["days"] = [names[d] for d in sorted(window.days)]
        out["maintenance_window"] = w
    if release.stop_reason is not None:
        out["stop_reason"] = release.stop_reason
    return out


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
