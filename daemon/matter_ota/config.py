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
from dataclasses import dataclass
from pathlib import Path

import yaml

from matter_ota.policy.model import (
    DEFAULT_CHANNEL,
    Channel,
    valid_channel_name,
)
from matter_ota.releases_file import (
    ReleasesConfig,
    load_releases,
    parse_releases,
    release_to_yaml,
)
from matter_ota.yamlnodes import ConfigError, Doc, is_null

__all__ = [
    "AttestationFiles", "Config", "ConfigError", "DclConfig", "Limits", "LogConfig",
    "NetworkConfig", "NodeIdentity", "ProviderConfig", "ReleasesConfig", "load_config",
    "load_provider", "load_releases", "parse_provider", "parse_releases", "release_to_yaml",
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
# Matter Core 5.4.2: a commissioning window lasts at most 15 minutes.
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
    max_handshakes: int = 64  # the node's unsecured-session pool (node.DEFAULT_UNSECURED_SESSIONS)
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


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "text"


@dataclass(frozen=True)
class AttestationFiles:
    """The vendor's device attestation files (Matter Core 6.2, 6.3): DAC (with its private
    key), PAI and Certification Declaration. Unset: ``<state_dir>/attestation`` as written by
    ``matter-ota dev-credentials`` (development only)."""

    dac_cert: Path
    dac_key: Path
    pai_cert: Path
    certification_declaration: Path


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
    attestation: AttestationFiles | None = None
    channels: tuple[Channel, ...] = (Channel(DEFAULT_CHANNEL),)
    log: LogConfig = LogConfig()

    @property
    def channel_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.channels)


@dataclass(frozen=True)
class Config:
    provider: ProviderConfig
    releases: ReleasesConfig


# --- provider.yaml ----------------------------------------------------------------------------

_TOP_KEYS = ("node", "network", "state_dir", "firmware_dir", "releases_file", "limits", "dcl",
             "channels", "log", "attestation")
_ATTESTATION_KEYS = ("dac_cert", "dac_key", "pai_cert", "certification_declaration")
_NODE_KEYS = ("vendor_id", "product_id", "discriminator", "passcode", "device_name",
              "vendor_name", "product_name")
_NETWORK_KEYS = ("port", "interfaces", "ipv4")
_LIMIT_KEYS = ("max_sessions", "max_handshakes", "max_concurrent_transfers",
               "commissioning_attempts", "commissioning_window", "bdx_idle_timeout",
               "busy_retry_base", "busy_retry_spread", "update_applied_timeout")
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
        attestation=_attestation(doc, top.get("attestation")),
        channels=_channels(doc, top.get("channels")),
        log=_log(doc, top.get("log")),
    )


def _log(doc: Doc, node: yaml.Node | None) -> LogConfig:
    m = doc.mapping(node, "log", ("level", "format"))
    d = LogConfig()

    def choice(key: str, allowed: tuple[str, ...], default: str) -> str:
        if key not in m:
            return default
        value = doc.text(m[key], f"log.{key}").strip().lower()
        if value not in allowed:
            doc.error(m[key], f"log.{key} {value!r} is not one of {', '.join(allowed)}",
                      f"write one of {', '.join(allowed)}")
        return value

    return LogConfig(level=choice("level", LOG_LEVELS, d.level),
                     format=choice("format", LOG_FORMATS, d.format))


def _attestation(doc: Doc, node: yaml.Node | None) -> AttestationFiles | None:
    if node is None or is_null(node):
        return None
    m = doc.mapping(node, "attestation", _ATTESTATION_KEYS, required=_ATTESTATION_KEYS)
    return AttestationFiles(*(doc.resolve_path(m[k], f"attestation.{k}")
                              for k in _ATTESTATION_KEYS))


def _node(doc: Doc, node: yaml.Node | None) -> NodeIdentity:
    m = doc.mapping(node, "node", _NODE_KEYS)
    d = NodeIdentity()
    passcode = d.passcode
    if "passcode" in m:
        # Matter Core 5.1 (onboarding payload): the passcode is 00000001..99999998.
        passcode = doc.integer(m["passcode"], "node.passcode", 1, 99999998)
        if passcode in INVALID_PASSCODES:
            doc.error(m["passcode"], f"node.passcode {passcode:08d} is not allowed by the "
                      "Matter spec (too easy to guess)", "pick another 8-digit number")
    return NodeIdentity(
        vendor_id=doc.integer(m["vendor_id"], "node.vendor_id", 1, 0xFFF4)
        if "vendor_id" in m else d.vendor_id,
        product_id=doc.integer(m["product_id"], "node.product_id", 1, 0xFFFF)
        if "product_id" in m else d.product_id,
        # Matter Core 5.1 (onboarding payload): the discriminator is 12 bits.
        discriminator=doc.integer(m["discriminator"], "node.discriminator", 0, 0xFFF)
        if "discriminator" in m else d.discriminator,
        passcode=passcode,
        # Matter Core 11.1 (Basic Information): names are at most 32 characters.
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
        max_handshakes=count("max_handshakes", 2, 10_000, d.max_handshakes),
        max_concurrent_transfers=count("max_concurrent_transfers", 1, 10_000,
                                       d.max_concurrent_transfers),
        commissioning_attempts=count("commissioning_attempts", 1, 1000,
                                     d.commissioning_attempts),
        commissioning_window=seconds("commissioning_window", 180, MAX_COMMISSIONING_WINDOW,
                                     d.commissioning_window),
        bdx_idle_timeout=seconds("bdx_idle_timeout", MIN_BDX_IDLE_TIMEOUT, 86400,
                                 d.bdx_idle_timeout),
        # A Busy DelayedActionTime of at least 120 s (see model.BusyPolicy).
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
    if "ca_bundle" in m and not is_null(m["ca_bundle"]):
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
            products=frozenset(doc.product(n, f"{what}.products entry")
                               for n in doc.sequence(m.get("products"), f"{what}.products")),
            hardware_versions=doc.int_ranges(m.get("hardware_versions"),
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


def load_config(path: Path) -> Config:
    """``provider.yaml`` and the ``releases.yaml`` it names, checked against each other."""
    provider = load_provider(path)
    return Config(provider, load_releases(provider.releases_file, provider.channel_names))
