"""The release policy domain: channels, releases, images, devices, queries and decisions.

Every type here is a frozen dataclass: a value an operator wrote (``config/releases.yaml``), a
fact the daemon observed (a device, a query) or an answer (a :class:`Decision`). The release
state machine lives in :mod:`matter_ota.policy.transitions`; selection in
:mod:`matter_ota.policy.cohort`; the rules in :mod:`matter_ota.policy.engine`.

Time: the engine takes ``now`` as POSIX seconds (float), like the protocol core; the
timestamps an operator reads in YAML (``released_at``) are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from matter_ota.policy.cohort import CohortIndex

DEFAULT_CHANNEL = "production"

# Matter Core 11.20.6.4.3 DownloadProtocolEnum: BDXSynchronous 0, BDXAsynchronous 1, HTTPS 2,
# VendorSpecific 3. The provider serves BDX synchronous only.
BDX_SYNCHRONOUS = 0
BDX_ASYNCHRONOUS = 1
HTTPS = 2
VENDOR_SPECIFIC = 3

_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class ReleaseStatus(enum.Enum):
    """Whether a release makes new offers (LIVE) or not (INACTIVE)."""

    LIVE = "LIVE"
    INACTIVE = "INACTIVE"


class Source(enum.Enum):
    """Where a release's image comes from: the local firmware folder or the CSA DCL."""

    LOCAL = "local"
    DCL = "dcl"


class QueryStatus(enum.IntEnum):
    """Matter Core 11.20.6.4.1 StatusEnum of QueryImageResponse."""

    UPDATE_AVAILABLE = 0
    BUSY = 1
    NOT_AVAILABLE = 2
    DOWNLOAD_PROTOCOL_NOT_SUPPORTED = 3

    @property
    def label(self) -> str:
        """The spec's name, as `explain --json` prints it ("UpdateAvailable", ...)."""
        return _STATUS_LABELS[self]


_STATUS_LABELS = {
    QueryStatus.UPDATE_AVAILABLE: "UpdateAvailable",
    QueryStatus.BUSY: "Busy",
    QueryStatus.NOT_AVAILABLE: "NotAvailable",
    QueryStatus.DOWNLOAD_PROTOCOL_NOT_SUPPORTED: "DownloadProtocolNotSupported",
}


class ApplyAction(enum.IntEnum):
    """Matter Core 11.20.6.4.2 ApplyUpdateActionEnum of ApplyUpdateResponse."""

    PROCEED = 0
    AWAIT_NEXT_ACTION = 1
    DISCONTINUE = 2


def valid_channel_name(name: str) -> bool:
    """Channel names: lower case letters, digits, ``_ . -``; 1 to 63 characters."""
    return bool(_CHANNEL_NAME.match(name))


@dataclass(frozen=True, order=True)
class Product:
    """A (vendor id, product id) pair, written ``FFF1:8001`` (upper-case hex)."""

    vendor_id: int
    product_id: int

    def __post_init__(self) -> None:
        if not (0 <= self.vendor_id <= 0xFFFF and 0 <= self.product_id <= 0xFFFF):
            raise ValueError(f"vendor and product ids are 16-bit: {self.vendor_id:#x}:"
                             f"{self.product_id:#x}")

    def __str__(self) -> str:
        return f"{self.vendor_id:04X}:{self.product_id:04X}"

    @classmethod
    def parse(cls, text: str) -> Product:
        """Parse ``VID:PID`` in hex (``FFF1:8001``, ``0xFFF1:0x8001``); ValueError otherwise."""
        parts = text.strip().split(":")
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not VID:PID (e.g. FFF1:8001)")
        try:
            vid, pid = (int(p, 16) for p in parts)
        except ValueError:
            raise ValueError(f"{text!r} is not VID:PID in hex (e.g. FFF1:8001)") from None
        return cls(vid, pid)


class DeviceRef(NamedTuple):
    """A device's identity on one fabric: (compressed fabric id, operational node id).

    A named tuple, not a dataclass: it is the key of every ledger lookup, and tuples hash
    and compare in C.
    """

    fabric: int
    node: int

    def __str__(self) -> str:
        return f"{self.fabric:016X}:{self.node:016X}"


@dataclass(frozen=True)
class DeviceMatch:
    """A device named by an operator (pinned / excluded): a node id, on one fabric or any."""

    node: int
    fabric: int | None = None

    def matches(self, ref: DeviceRef) -> bool:
        """True for this node id, on this fabric (or on any when none is given)."""
        return self.node == ref.node and (self.fabric is None or self.fabric == ref.fabric)

    def __str__(self) -> str:
        if self.fabric is None:
            return f"0x{self.node:X}"
        return f"{self.fabric:016X}:{self.node:016X}"


@dataclass(frozen=True)
class IntRange:
    """An inclusive range of integers (hardware versions), written ``3`` or ``3-7``."""

    low: int
    high: int

    def __contains__(self, value: object) -> bool:
        return isinstance(value, int) and self.low <= value <= self.high

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


def in_ranges(value: int | None, ranges: tuple[IntRange, ...]) -> bool:
    """True when no range is declared, else when ``value`` is known and inside one."""
    if not ranges:
        return True
    return value is not None and any(value in r for r in ranges)


@dataclass(frozen=True)
class Channel:
    """A named group of devices. Selectors of different kinds must all match (AND); values
    within one kind are alternatives (OR). ``production`` is the default channel and takes
    every device no other channel selects; it has no selectors."""

    name: str
    node_ids: frozenset[int] = frozenset()
    fabrics: frozenset[int] = frozenset()
    vendor_ids: frozenset[int] = frozenset()
    products: frozenset[Product] = frozenset()
    hardware_versions: tuple[IntRange, ...] = ()
    locations: frozenset[str] = frozenset()

    @property
    def has_selectors(self) -> bool:
        return bool(
            self.node_ids or self.fabrics or self.vendor_ids or self.products
            or self.hardware_versions or self.locations
        )


@dataclass(frozen=True)
class RampStep:
    """One step of a staged ramp: after ``after`` seconds at the previous percent with
    failures under the threshold, the rollout grows to ``percent``."""

    percent: int
    after: float


@dataclass(frozen=True)
class MaintenanceWindow:
    """When devices may apply an update: daily from ``start`` to ``end`` local time in
    ``timezone`` (an IANA name); ``end`` before ``start`` wraps past midnight. ``days`` are
    ISO weekdays (1 = Monday) on which a window opens; empty means every day."""

    start: time
    end: time
    timezone: str = "UTC"
    days: frozenset[int] = frozenset()


@dataclass(frozen=True)
class FailurePolicy:
    """Auto-stop: once ``min_sample`` updates finished (applied + failed), a failure share
    above ``threshold_percent`` stops the release."""

    threshold_percent: float
    min_sample: int = 20


@dataclass(frozen=True)
class Release:
    """One release: what image a (channel, product) gets, to which share of its devices.

    ``image`` is a file name in the firmware folder for a local release and ``None`` for a
    DCL release (the channel follows the ledger; candidates arrive in
    :attr:`ReleaseState.images`). ``version`` is the image's software version when known.
    ``cohort_seed`` (hex) keys the selection: the same seed selects the same devices.
    """

    channel: str
    product: Product
    image: str | None
    version: int | None
    source: Source
    status: ReleaseStatus
    rollout_percent: int
    cohort_seed: str
    released_at: datetime
    allow_downgrade: bool = False
    user_consent: bool = False
    pinned: tuple[DeviceMatch, ...] = ()
    excluded: tuple[DeviceMatch, ...] = ()
    hardware_versions: tuple[IntRange, ...] = ()
    failure: FailurePolicy | None = None
    ramp: tuple[RampStep, ...] = ()
    percent_since: datetime | None = None
    maintenance_window: MaintenanceWindow | None = None
    stop_reason: str | None = None

    @cached_property
    def key(self) -> ReleaseKey:
        """(channel, product): one release per key."""
        return ReleaseKey(self.channel, self.product)

    @property
    def live(self) -> bool:
        """True while the release makes new offers."""
        return self.status is ReleaseStatus.LIVE

    @property
    def editable(self) -> bool:
        """DCL releases are read-only: the operator switches the source instead."""
        return self.source is Source.LOCAL

    @cached_property
    def seed_bytes(self) -> bytes:
        """The cohort seed as the key of the cohort hash."""
        return bytes.fromhex(self.cohort_seed)

    @property
    def auto_stopped(self) -> bool:
        """True when failure detection, not an operator, stopped the release."""
        return self.stop_reason is not None and self.stop_reason.startswith(AUTO_STOP_PREFIX)

    def is_pinned(self, ref: DeviceRef) -> bool:
        """True when the operator pinned the device to this release (the cohort does not decide)."""
        return bool(self.pinned) and any(m.matches(ref) for m in self.pinned)

    def is_excluded(self, ref: DeviceRef) -> bool:
        """True when the operator excluded the device: never offered."""
        return bool(self.excluded) and any(m.matches(ref) for m in self.excluded)


AUTO_STOP_PREFIX = "auto-stop: "


@dataclass(frozen=True, order=True)
class ReleaseKey:
    """At most one release per (channel, product)."""

    channel: str
    product: Product

    def __str__(self) -> str:
        return f"{self.channel}/{self.product}"


@dataclass(frozen=True)
class ImageInfo:
    """The facts of one OTA image the engine needs (from its header, or the DCL record).

    ``designator`` is the BDX file designator the ImageURI names. ``min_applicable`` and
    ``max_applicable`` bound the device's current software version (Matter Core 11.21,
    OTA image header tags 5 and 6); ``None`` means unbounded.
    """

    vendor_id: int
    product_id: int
    version: int
    version_string: str
    size: int
    digest: bytes
    designator: str
    min_applicable: int | None = None
    max_applicable: int | None = None
    digest_type: int = 1  # IANA Named Information id; 1 = sha-256

    @property
    def product(self) -> Product:
        return Product(self.vendor_id, self.product_id)

    def applies_to(self, current_version: int) -> bool:
        """True when a device on ``current_version`` is within the image's min/max applicable."""
        if self.min_applicable is not None and current_version < self.min_applicable:
            return False
        return self.max_applicable is None or current_version <= self.max_applicable


@dataclass(frozen=True)
class Device:
    """A device as the ledger knows it. ``channel`` is an operator's explicit assignment;
    ``None`` means the channel's selectors decide."""

    fabric: int
    node: int
    vendor_id: int
    product_id: int
    current_version: int
    hardware_version: int | None = None
    location: str | None = None
    channel: str | None = None

    @property
    def ref(self) -> DeviceRef:
        return DeviceRef(self.fabric, self.node)

    @property
    def product(self) -> Product:
        return Product(self.vendor_id, self.product_id)


@dataclass(frozen=True)
class Query:
    """The fields of a QueryImage command (Matter Core 11.20.6.5.1)."""

    vendor_id: int
    product_id: int
    software_version: int
    protocols_supported: tuple[int, ...] = (BDX_SYNCHRONOUS,)
    hardware_version: int | None = None
    location: str | None = None
    requestor_can_consent: bool = False
    metadata_for_provider: bytes | None = None

    @property
    def product(self) -> Product:
        return Product(self.vendor_id, self.product_id)


@dataclass(frozen=True)
class OutcomeCounts:
    """How the updates of one release ended so far: offered, applied (NotifyUpdateApplied
    with the new version) and failed (aborted transfer, no NotifyUpdateApplied in time, or
    the device back on its old version)."""

    offered: int = 0
    applied: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        return self.applied + self.failed


@dataclass(frozen=True)
class BusyPolicy:
    """The cap on concurrent transfers and how Busy spreads the retries: a device waits
    ``base`` seconds plus its own deterministic share of ``spread`` seconds."""

    max_transfers: int | None = None
    # Matter Core 11.20.3.2 / 11.20.6.5.2.2; connectedhomeip's example provider never asks
    # for less than 120 s ("the spec mentions ... at least 120 seconds").
    base: int = 120
    spread: int = 600


@dataclass(frozen=True)
class ReleaseState:
    """Everything :func:`matter_ota.policy.engine.decide` reads: the configured channels and
    releases plus the runtime facts (resolved images, cohort ledgers, transfers, outcomes).

    ``images`` maps a release to its candidate images: the one local file, or the DCL
    source's valid versions for the product. ``cohorts`` maps a release to the ledger of its
    channel+product's known devices; the engine only reads it (the daemon updates it).
    ``transferring`` are the devices with a transfer open now (they may re-query without
    counting twice against the cap).
    """

    channels: tuple[Channel, ...] = ()
    releases: Mapping[ReleaseKey, Release] = field(default_factory=dict)
    images: Mapping[ReleaseKey, tuple[ImageInfo, ...]] = field(default_factory=dict)
    cohorts: Mapping[ReleaseKey, CohortIndex] = field(default_factory=dict)
    active_transfers: int = 0
    transferring: frozenset[DeviceRef] = frozenset()
    outcomes: Mapping[ReleaseKey, OutcomeCounts] = field(default_factory=dict)
    busy: BusyPolicy = BusyPolicy()

    # Lookups the engine makes per decision, resolved once per state. Treat a ReleaseState
    # as immutable (make a new one with dataclasses.replace); only the CohortIndex objects
    # inside may be updated in place.

    @cached_property
    def facts(self) -> dict[tuple[str, int, int], ReleaseFacts]:
        """(channel, vendor id, product id) -> the release and its facts."""
        table = {}
        for key, release in self.releases.items():
            cohort = self.cohorts.get(key)
            if cohort is not None and cohort.seed != release.seed_bytes:
                cohort = None  # built for an earlier seed: not this release's cohort
            table[(key.channel, key.product.vendor_id, key.product.product_id)] = ReleaseFacts(
                release, tuple(self.images.get(key, ())), cohort,
                self.outcomes.get(key, _NO_OUTCOMES),
            )
        return table

    @cached_property
    def selector_channels(self) -> tuple[Channel, ...]:
        """The channels that select devices, in config order (production excluded)."""
        return tuple(c for c in self.channels if c.has_selectors)

    @cached_property
    def channel_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.channels)


_NO_OUTCOMES = OutcomeCounts()


@dataclass(frozen=True)
class ReleaseFacts:
    """One release with the runtime facts about it, as :attr:`ReleaseState.facts` holds."""

    release: Release
    images: tuple[ImageInfo, ...]
    cohort: CohortIndex | None
    outcomes: OutcomeCounts


@dataclass(frozen=True)
class Decision:
    """The answer to one QueryImage, with the rule that produced it.

    ``code`` is a stable machine word for logs (``offer``, ``no_release``, ``not_in_cohort``,
    ...); ``reason`` is the sentence an operator reads in ``explain``.
    """

    status: QueryStatus
    reason: str
    code: str
    channel: str | None = None
    release: Release | None = None
    image: ImageInfo | None = None
    delayed_action_time: int = 0
    user_consent_needed: bool = False
    pinned: bool = False  # offered because pinned, not by the cohort: not a cohort offer

    @property
    def version(self) -> int | None:
        """The software version offered, if any."""
        return None if self.image is None else self.image.version

    @property
    def offered(self) -> bool:
        """True when the answer is UpdateAvailable."""
        return self.status is QueryStatus.UPDATE_AVAILABLE


@dataclass(frozen=True)
class ApplyDecision:
    """The answer to one ApplyUpdateRequest."""

    action: ApplyAction
    delayed_action_time: int
    reason: str
