"""The rows the state store hands out: frozen values, no database handle inside."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Fabric:
    """A fabric the provider node has joined (filled in by the node's commissioning)."""

    fabric_index: int
    compressed_fabric_id: str  # 16 upper-case hex digits
    label: str
    root_public_key: bytes | None
    node_id: int
    # The node's whole fabric row as it persists it (FabricInfo.to_dict: certificates,
    # operational key, IPK): JSON-safe values. The database file is private (mode 0600).
    record: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One OTA requestor as the provider last saw it."""

    compressed_fabric_id: str
    node_id: int
    vendor_id: int
    product_id: int
    software_version: int
    hardware_version: int | None
    channel: str | None
    first_seen: float
    last_seen: float
    last_result: str


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An UpdateToken handed out in a QueryImageResponse, bound to one device."""

    token: bytes
    compressed_fabric_id: str
    node_id: int
    software_version: int
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Transfer:
    """One BDX transfer of an image to a device."""

    id: int
    compressed_fabric_id: str
    node_id: int
    channel: str
    vendor_id: int
    product_id: int
    software_version: int
    state: str
    offset_bytes: int
    total_bytes: int
    started_at: float
    ended_at: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One row of the audit log: who changed what, with the state before and after."""

    id: int
    at: float
    actor: str
    action: str
    channel: str
    product: str
    before: Any
    after: Any
    reason: str


@dataclass(frozen=True, slots=True)
class OutcomeCounts:
    """How many devices are at each stage of one release."""

    offered: int = 0
    downloading: int = 0
    applied: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """The last refused edit of a config file (cleared when the file loads again)."""

    file: str
    at: float
    line: int | None
    reason: str


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    """What the daemon last said about itself: who it is, where it listens, and which
    version of the config it serves (``config_digest``: see :func:`matter_ota.reload.digest`).
    """

    pid: int
    state: str  # starting, running, stopped
    address: str
    started_at: float
    heartbeat_at: float
    config_generation: int
    config_digest: str
    config_applied_at: float | None
    config_files: tuple[str, ...]


def format_cfid(value: int) -> str:
    """A compressed fabric id as the 16 upper-case hex digits used everywhere."""
    return f"{value:016X}"
