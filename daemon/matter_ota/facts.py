"""The facts the policy engine reads, gathered from the config, the image files and the store.

:func:`build_state` makes the :class:`~matter_ota.policy.model.ReleaseState` that
:func:`matter_ota.policy.engine.decide` takes: releases and channels from the YAML, image
headers from the firmware folder, cohort ledgers (known and already-offered devices per
release seed), open transfers and outcome counts from the state store. ``matter-ota explain``
builds it once per run; the daemon keeps one up to date. Either way the engine gets the same
facts for the same state, so it gives the same answer.
"""

from __future__ import annotations

from pathlib import Path

from matter_ota.config import ProviderConfig, ReleasesConfig
from matter_ota.ota_image import OtaImageError, read_header
from matter_ota.policy.cohort import CohortIndex
from matter_ota.policy.model import (
    BusyPolicy,
    DeviceRef,
    ImageInfo,
    OutcomeCounts,
    Release,
    ReleaseKey,
    ReleaseState,
)
from matter_ota.store import Store


def local_image(firmware_dir: Path, name: str) -> ImageInfo | None:
    """The header facts of a firmware file, or None when it is missing or not an image."""
    try:
        header = read_header(firmware_dir / name)
    except (OtaImageError, OSError):
        return None
    return ImageInfo(
        vendor_id=header.vendor_id,
        product_id=header.product_id,
        version=header.software_version,
        version_string=header.software_version_string,
        size=header.total_size,
        digest=header.digest,
        designator=name,
        min_applicable=header.min_applicable_version,
        max_applicable=header.max_applicable_version,
        digest_type=header.digest_type,
    )


def ref(cfid: str, node: int) -> DeviceRef:
    return DeviceRef(int(cfid, 16), node)


def cohort(store: Store, release: Release) -> CohortIndex:
    """The release's cohort over the ledger: known devices of its channel and product, and
    those its seed has already offered to (they stay selected)."""
    known, offered = store.cohort_devices(
        release.channel, release.product.vendor_id, release.product.product_id,
        release.cohort_seed,
    )
    return CohortIndex(
        release.cohort_seed, release.rollout_percent,
        known=(ref(c, n) for c, n in known), offered=(ref(c, n) for c, n in offered),
    )


def outcomes(store: Store, release: Release) -> OutcomeCounts:
    counts = store.outcome_counts(
        release.channel, release.product.vendor_id, release.product.product_id,
        release.version,
        since=None if release.version is not None else release.released_at.timestamp(),
    )
    return OutcomeCounts(offered=counts.offered + counts.downloading + counts.applied
                         + counts.failed, applied=counts.applied, failed=counts.failed)


def build_state(
    provider: ProviderConfig,
    releases: ReleasesConfig,
    store: Store,
    dcl_images: dict[ReleaseKey, tuple[ImageInfo, ...]] | None = None,
    *,
    previous: ReleaseState | None = None,
) -> ReleaseState:
    """Everything decide() reads. DCL releases take their candidates from ``dcl_images``
    (the DCL source's cache); without it they have none and offer nothing.

    With ``previous`` (a reload in the daemon), a release whose cohort seed is unchanged keeps
    its cohort index (kept current in place by the daemon), moved to the new percent: a
    reload then costs no ledger read and no hashing (140 ms for 10,000 devices otherwise).
    The indexes are touched only once everything else is built, so a failed build leaves
    ``previous`` as it was."""
    reused: dict[ReleaseKey, CohortIndex] = {}
    if previous is not None:
        for release in releases.releases:
            old = previous.cohorts.get(release.key)
            if old is not None and old.seed == release.seed_bytes:
                reused[release.key] = old
    images: dict[ReleaseKey, tuple[ImageInfo, ...]] = {}
    for release in releases.releases:
        if release.image is not None:
            info = local_image(provider.firmware_dir, release.image)
            images[release.key] = (info,) if info is not None else ()
        elif dcl_images is not None:
            images[release.key] = dcl_images.get(release.key, ())
    transferring = frozenset(ref(c, n) for c, n in store.active_transfer_devices())
    limits = provider.limits
    cohorts = {r.key: reused[r.key] if r.key in reused else cohort(store, r)
               for r in releases.releases}
    outcome_counts = {r.key: outcomes(store, r) for r in releases.releases}
    active = store.active_transfers()
    for release in releases.releases:
        index = reused.get(release.key)
        if index is not None and index.percent != release.rollout_percent:
            index.set_percent(release.rollout_percent)
    return ReleaseState(
        channels=provider.channels,
        releases={r.key: r for r in releases.releases},
        images=images,
        cohorts=cohorts,
        active_transfers=active,
        transferring=transferring,
        outcomes=outcome_counts,
        busy=BusyPolicy(max_transfers=limits.max_concurrent_transfers,
                        base=limits.busy_retry_base, spread=limits.busy_retry_spread),
    )
