"""The release policy engine: pure functions from facts to decisions.

:func:`decide` answers a QueryImage; :func:`apply_update` answers an ApplyUpdateRequest;
:func:`failure_verdict` and :func:`advance_ramp` are the automatic release transitions the
daemon evaluates as outcomes arrive. Nothing here does I/O, reads a clock or mutates its
arguments: the daemon, ``matter-ota explain`` and the simulator get the same answer from the
same facts.

The rules of :func:`decide`, in order (the first that says no answers):

1. channel: the device's explicit channel, else the first channel whose selectors match,
   else ``production``;
2. a release for (channel, product) exists;
3. the device is not excluded;
4. the release is LIVE, and its failures have not crossed its threshold;
5. the device is pinned, or in the cohort (:mod:`matter_ota.policy.cohort`);
6. an image applies: right product, the device's version within the image's min/max
   applicable, never the version it runs, no downgrade unless allowed, the release's
   hardware versions when declared;
7. the requestor supports BDX synchronous;
8. a transfer slot is free, else Busy with a per-device spread DelayedActionTime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import zoneinfo
from datetime import UTC, date, datetime, timedelta

from matter_ota.policy.cohort import hash_only_selected
from matter_ota.policy.model import (
    BDX_SYNCHRONOUS,
    DEFAULT_CHANNEL,
    ApplyAction,
    ApplyDecision,
    Channel,
    Decision,
    Device,
    DeviceRef,
    ImageInfo,
    MaintenanceWindow,
    OutcomeCounts,
    Query,
    QueryStatus,
    Release,
    ReleaseState,
    ReleaseStatus,
    Source,
    in_ranges,
)

_NOT_AVAILABLE = QueryStatus.NOT_AVAILABLE
MAX_APPLY_DELAY = 86400


def channel_for(device: Device, query: Query, channels: tuple[Channel, ...]) -> str:
    """The channel a device belongs to: its explicit assignment when that channel exists,
    else the first channel (in config order) whose selectors all match, else production."""
    if device.channel is not None and any(c.name == device.channel for c in channels):
        return device.channel
    for channel in channels:
        if channel.has_selectors and _matches(channel, device, query):
            return channel.name
    return DEFAULT_CHANNEL


def _channel(device: Device, query: Query, state: ReleaseState) -> str:
    # channel_for() with the state's precomputed lists (the hot path).
    if device.channel is not None and device.channel in state.channel_names:
        return device.channel
    for channel in state.selector_channels:
        if _matches(channel, device, query):
            return channel.name
    return DEFAULT_CHANNEL


def _matches(channel: Channel, device: Device, query: Query) -> bool:
    if channel.node_ids and device.node not in channel.node_ids:
        return False
    if channel.fabrics and device.fabric not in channel.fabrics:
        return False
    if channel.vendor_ids and query.vendor_id not in channel.vendor_ids:
        return False
    if channel.products and query.product not in channel.products:
        return False
    if channel.hardware_versions:
        hardware = query.hardware_version if query.hardware_version is not None \
            else device.hardware_version
        if not in_ranges(hardware, channel.hardware_versions):
            return False
    if not channel.locations:
        return True
    location = query.location if query.location is not None else device.location
    return location in channel.locations


def decide(device: Device, query: Query, state: ReleaseState, now: float) -> Decision:
    """The answer to ``query`` from ``device``, with the reason (see the module docstring)."""
    channel = _channel(device, query, state)
    facts = state.facts.get((channel, query.vendor_id, query.product_id))
    if facts is None:
        return _decision(_NOT_AVAILABLE,
                         f"channel {channel!r} has no release for "
                         f"{query.vendor_id:04X}:{query.product_id:04X}",
                         "no_release", channel, None, None, 0, False)
    release = facts.release
    ref = DeviceRef(device.fabric, device.node)
    if release.excluded and release.is_excluded(ref):
        return _no(release, "the device is excluded from this release", "excluded")
    if release.status is not ReleaseStatus.LIVE:
        why = f" ({release.stop_reason})" if release.stop_reason else ""
        return _no(release, f"the release is stopped{why}; devices that have it keep it",
                   "stopped")
    if release.failure is not None:
        verdict = failure_verdict(release, facts.outcomes)
        if verdict is not None:
            return _no(release, f"the release is being auto-stopped: {verdict}",
                       "auto_stopped")

    pinned = bool(release.pinned) and release.is_pinned(ref)
    if pinned:
        membership = "pinned to this release"
    else:
        cohort = facts.cohort
        if cohort is not None:
            if not cohort.is_selected(ref):
                return _no(release, "not in the cohort: " + cohort.describe(ref),
                           "not_in_cohort")
            membership = f"in the {release.rollout_percent} % cohort"
        elif hash_only_selected(release.seed_bytes, release.rollout_percent, ref):
            membership = f"in the {release.rollout_percent} % cohort (hash only: no ledger)"
        else:
            return _no(release, f"not in the {release.rollout_percent} % cohort (hash only: "
                       "no ledger)", "not_in_cohort")

    image, why_not = _pick_image(release, facts.images, query)
    if image is None:
        return _no(release, why_not, "no_image")
    if BDX_SYNCHRONOUS not in query.protocols_supported:
        return _decision(
            QueryStatus.DOWNLOAD_PROTOCOL_NOT_SUPPORTED,
            f"the requestor supports protocols {sorted(query.protocols_supported)}; the "
            "provider serves BDX synchronous (0) only", "protocol", channel, release, image,
            0, False)
    busy = state.busy
    if (busy.max_transfers is not None and state.active_transfers >= busy.max_transfers
            and ref not in state.transferring):
        delay = busy_delay(ref, busy.base, busy.spread)
        return _decision(
            QueryStatus.BUSY,
            f"{state.active_transfers} transfers running, the cap is {busy.max_transfers}; "
            f"retry in {delay} s", "busy", channel, release, image, delay, False)
    return _decision(
        QueryStatus.UPDATE_AVAILABLE,
        f"{membership}; {query.software_version} -> {image.version} ({image.version_string})",
        "offer", channel, release, image, 0,
        release.user_consent and query.requestor_can_consent, pinned,
    )


def _no(release: Release, reason: str, code: str) -> Decision:
    return _decision(_NOT_AVAILABLE, reason, code, release.channel, release, None, 0, False)


def _decision(status: QueryStatus, reason: str, code: str, channel: str | None,
              release: Release | None, image: ImageInfo | None, delay: int,
              consent: bool, pinned: bool = False) -> Decision:
    # Decision(...) of a frozen dataclass sets its 8 fields one object.__setattr__ at a time,
    # which was a third of a decision's cost; filling __dict__ at once gives the same object.
    decision = object.__new__(Decision)
    decision.__dict__.update(status=status, reason=reason, code=code, channel=channel,
                             release=release, image=image, delayed_action_time=delay,
                             user_consent_needed=consent, pinned=pinned)
    return decision


def _pick_image(release: Release, images: tuple[ImageInfo, ...], query: Query
                ) -> tuple[ImageInfo | None, str]:
    """The highest-version image that applies to the requestor, or why none does."""
    if not images:
        where = (f"image {release.image!r} is not available in the firmware folder"
                 if release.source is Source.LOCAL else "the DCL lists no valid image yet")
        return None, where
    if not in_ranges(query.hardware_version, release.hardware_versions):
        wanted = ", ".join(str(r) for r in release.hardware_versions)
        return None, (f"the release is for hardware versions {wanted}, the device reports "
                      f"{query.hardware_version}")
    current = query.software_version
    best: ImageInfo | None = None
    why = ""
    for image in images:
        if image.vendor_id != query.vendor_id or image.product_id != query.product_id:
            why = f"image {image.designator!r} is for {image.product}, not {query.product}"
        elif image.version == current:
            why = f"the device already runs version {current}"
        elif image.version < current and not release.allow_downgrade:
            why = (f"version {image.version} would downgrade the device from {current} "
                   "(the release does not allow downgrades)")
        elif not image.applies_to(current):
            why = (f"version {image.version} applies to versions {image.min_applicable} to "
                   f"{image.max_applicable}, the device runs {current}")
        elif best is None or image.version > best.version:
            best = image
    return best, why


def busy_delay(ref: DeviceRef, base: int, spread: int) -> int:
    """``base`` seconds plus the device's own share of ``spread``: deterministic per device,
    uniform over the fleet, so retries after a Busy arrive spread out, not in a wave."""
    if spread <= 0:
        return base
    digest = hashlib.blake2b(ref.fabric.to_bytes(8, "big") + ref.node.to_bytes(8, "big"),
                             digest_size=8, person=b"busy-retry").digest()
    return base + int.from_bytes(digest, "big") % (spread + 1)


# --- automatic transitions -------------------------------------------------------------------


def failure_verdict(release: Release, counts: OutcomeCounts) -> str | None:
    """Why the release must stop, once enough updates finished and too many failed."""
    policy = release.failure
    if policy is None or counts.finished < policy.min_sample:
        return None
    if counts.failed * 100 <= policy.threshold_percent * counts.finished:
        return None
    share = 100 * counts.failed / counts.finished
    return (f"{counts.failed} of {counts.finished} updates failed ({share:.1f} %, the "
            f"threshold is {policy.threshold_percent:g} % over at least {policy.min_sample})")


def advance_ramp(release: Release, counts: OutcomeCounts, now: datetime) -> Release | None:
    """The release at its next ramp step when that step is due, else None.

    A step is due once the current percent has soaked for the step's ``after`` and the
    failure share so far stays within the threshold (even below the minimum sample: a ramp
    holds on any bad sign; the auto-stop needs the full sample).
    """
    if release.status is not ReleaseStatus.LIVE or not release.ramp:
        return None
    step = next((s for s in release.ramp if s.percent > release.rollout_percent), None)
    if step is None:
        return None
    since = release.percent_since or release.released_at
    if now < since + timedelta(seconds=step.after):
        return None
    policy = release.failure
    if policy is not None and counts.failed * 100 > policy.threshold_percent * counts.finished:
        return None
    return dataclasses.replace(release, rollout_percent=step.percent, percent_since=now)


# --- ApplyUpdate -----------------------------------------------------------------------------


def apply_update(release: Release | None, now: float) -> ApplyDecision:
    """The answer to an ApplyUpdateRequest for an image of ``release`` (None: unknown).

    An operator's stop lets a downloaded image apply (devices that got it keep it); an
    auto-stop discontinues, since the failures are why it stopped. A maintenance window
    delays with AwaitNextAction until it opens.
    """
    if release is None:
        return ApplyDecision(ApplyAction.DISCONTINUE, 0,
                             "no release matches this update any more")
    if release.auto_stopped:
        return ApplyDecision(ApplyAction.DISCONTINUE, 0, f"release {release.stop_reason}")
    if release.maintenance_window is not None:
        wait = window_wait(release.maintenance_window, now)
        if wait > 0:
            # Matter Core 11.20.6.5.4.2: a requestor may cap the delay at 24 h; ask for at
            # most that, the requestor asks again and hears the rest.
            delay = min(wait, MAX_APPLY_DELAY)
            return ApplyDecision(ApplyAction.AWAIT_NEXT_ACTION, delay,
                                 f"outside the maintenance window; it opens in {wait} s")
    return ApplyDecision(ApplyAction.PROCEED, 0, "apply now")


def window_wait(window: MaintenanceWindow, now: float) -> int:
    """Seconds until ``window`` is open (0: it is open now)."""
    zone = zoneinfo.ZoneInfo(window.timezone)
    local = datetime.fromtimestamp(now, UTC).astimezone(zone)
    best: float | None = None
    for offset in range(-1, 9):
        day = local.date() + timedelta(days=offset)
        if window.days and day.isoweekday() not in window.days:
            continue
        start, end = _window_bounds(window, day, zone)
        if start <= now < end:
            return 0
        if start > now and (best is None or start < best):
            best = start
    if best is None:  # days is never empty of every weekday, so a start always exists
        return 0
    return max(1, math.ceil(best - now))


def _window_bounds(window: MaintenanceWindow, day: date, zone: zoneinfo.ZoneInfo
                   ) -> tuple[float, float]:
    start = datetime.combine(day, window.start, zone)
    end_day = day if window.end > window.start else day + timedelta(days=1)
    end = datetime.combine(end_day, window.end, zone)
    return start.timestamp(), end.timestamp()

