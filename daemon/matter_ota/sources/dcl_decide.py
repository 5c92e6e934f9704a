"""DCL channels answered through the same policy engine as local ones.

For a device on a channel whose release has ``source: dcl``, the ledger's choice for that
device (newest valid https version whose min/max applicable range holds its version) is put
into the engine's :attr:`ReleaseState.images` and :func:`matter_ota.policy.engine.decide`
answers as for any release: channel, LIVE / stopped, cohort, applicability, protocol, cap.
Only when the engine would offer the image does its file matter:

- verified in the cache: the engine's UpdateAvailable stands;
- not downloaded yet: the daemon starts (or joins) the one download and answers Busy with a
  DelayedActionTime; ``explain`` (``wait=True``) waits for it and gives the answer after;
- quarantined: NotAvailable, the reason naming the failed check;
- download failed (network): Busy, tried again later.

:func:`explain_dcl` is the entry point for ``matter-ota explain``: it opens a source on the
config's ``dcl:`` section and state dir and answers a batch of devices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path
from typing import TextIO

import anyio
from anyio.from_thread import start_blocking_portal

from matter_ota.bdx.image_source import FileImage
from matter_ota.config import DclConfig
from matter_ota.ota_image import OtaImageError, read_header
from matter_ota.policy.engine import channel_for, decide
from matter_ota.policy.model import (
    Decision,
    Device,
    ImageInfo,
    Query,
    QueryStatus,
    ReleaseKey,
    ReleaseState,
    Source,
)
from matter_ota.sources.dcl import DclCandidate, DclSource, ImageState
from matter_ota.sources.dcl_cache import cache_key
from matter_ota.sources.dcl_client import DclSettings
from matter_ota.sources.dcl_ledger import ModelVersion

DESIGNATOR_PREFIX = "dcl-"


def settings_from_config(config: DclConfig) -> DclSettings:
    """The client's settings from provider.yaml's ``dcl:`` section."""
    return DclSettings(
        url=config.url,
        ca_bundle=config.ca_bundle,
        refresh_interval=config.refresh_interval,
        cache_size=config.cache_size,
        timeout=config.request_timeout,
    )


def live_dcl_products(state: ReleaseState) -> set[tuple[int, int]]:
    """(vid, pid) of every LIVE release that follows the DCL: what the daemon prefetches
    (``source.keep_fresh(lambda: live_dcl_products(current_state()))``)."""
    return {
        (r.product.vendor_id, r.product.product_id)
        for r in state.releases.values()
        if r.source is Source.DCL and r.live
    }


def designator(mv: ModelVersion) -> str:
    """The BDX file designator of a DCL image (resolved by :func:`resolve_designator`)."""
    return DESIGNATOR_PREFIX + cache_key(mv)


def dcl_image_lookup(source: DclSource) -> Callable[[str], FileImage | None]:
    """The BDX sender's ``designator -> ImageSource`` lookup for DCL images (verified, cached
    files only); the daemon tries it after the local ``ReleasedImages``."""

    def lookup(name: str) -> FileImage | None:
        path = resolve_designator(source, name)
        if path is None:
            return None
        try:
            return FileImage(path)
        except OSError:  # evicted between the lookup and the open
            return None

    return lookup


def resolve_designator(source: DclSource, name: str) -> Path | None:
    """The verified cached file a DCL designator names, or None (unknown, evicted, bad)."""
    if not name.startswith(DESIGNATOR_PREFIX):
        return None
    key = name[len(DESIGNATOR_PREFIX) :]
    if not key or "/" in key or key.startswith("."):
        return None
    return source.cache.get(key)


@lru_cache(maxsize=256)
def image_info(mv: ModelVersion, path: Path | None) -> ImageInfo:
    """The engine's view of a DCL version: the ledger's facts, the header's when on disk."""
    info = ImageInfo(
        vendor_id=mv.vid,
        product_id=mv.pid,
        version=mv.software_version,
        version_string=mv.software_version_string or str(mv.software_version),
        size=mv.ota_file_size,
        digest=mv.ota_checksum,
        designator=designator(mv),
        min_applicable=mv.min_applicable,
        max_applicable=mv.max_applicable,
        digest_type=mv.ota_checksum_type,
    )
    if path is None:
        return info
    try:
        header = read_header(path)
    except (OSError, OtaImageError):
        return info  # verified at download; a vanished file is caught by the caller's state
    return dataclasses.replace(
        info,
        version_string=header.software_version_string,
        digest=header.digest,
        digest_type=header.digest_type,
    )


async def decide_with_dcl(
    source: DclSource | None,
    device: Device,
    query: Query,
    state: ReleaseState,
    now: float,
    *,
    wait: bool,
) -> Decision:
    """:func:`decide`, with the DCL's candidate for this device when its release is DCL's.

    ``wait=False`` is the daemon (never blocks on a download); ``wait=True`` is explain.
    """
    key = ReleaseKey(channel_for(device, query, state.channels), query.product)
    release = state.releases.get(key)
    if release is None or release.source is not Source.DCL:
        return decide(device, query, state, now)
    if source is None:
        return decide(device, query, _with_images(state, key, ()), now)

    # Ask the engine first with the ledger's facts only: a device the release does not
    # select (stopped, not in the cohort, ...) costs no download.
    vid, pid, current = query.vendor_id, query.product_id, query.software_version
    selection = await source.candidate(vid, pid, current, wait=wait, fetch=False)
    decision, final = _from_ledger(selection, device, query, state, now, key)
    if final:
        return decision
    got = await source.candidate(vid, pid, current, wait=wait)
    return _with_image_state(decision, got, state, key, device, query, now)


def decide_with_dcl_now(
    source: DclSource | None,
    device: Device,
    query: Query,
    state: ReleaseState,
    now: float,
) -> Decision:
    """:func:`decide_with_dcl` (``wait=False``) for the synchronous QueryImage handler.

    Call it on the event loop that runs ``source``: it never blocks, answers from the cached
    ledger and images, and starts in the background what is missing (Busy meanwhile).
    """
    key = ReleaseKey(channel_for(device, query, state.channels), query.product)
    release = state.releases.get(key)
    if release is None or release.source is not Source.DCL:
        return decide(device, query, state, now)
    if source is None:
        return decide(device, query, _with_images(state, key, ()), now)
    vid, pid, current = query.vendor_id, query.product_id, query.software_version
    selection = source.candidate_now(vid, pid, current, fetch=False)
    decision, final = _from_ledger(selection, device, query, state, now, key)
    if final:
        return decision
    got = source.candidate_now(vid, pid, current)
    return _with_image_state(decision, got, state, key, device, query, now)


def _from_ledger(
    selection: DclCandidate,
    device: Device,
    query: Query,
    state: ReleaseState,
    now: float,
    key: ReleaseKey,
) -> tuple[Decision, bool]:
    """The engine's answer from the ledger's facts; True when the image's state cannot
    change it (nothing to offer, or the engine says no for another reason)."""
    mv = selection.version
    if mv is None:
        decision = decide(device, query, _with_images(state, key, ()), now)
        if decision.code == "no_image" and selection.state is ImageState.FETCHING:
            delay = state.busy.base
            return dataclasses.replace(
                decision,
                status=QueryStatus.BUSY,
                reason=f"{selection.reason}; retry in {delay} s",
                code="dcl_lookup",
                delayed_action_time=delay,
            ), True
        if decision.code == "no_image":
            code = "dcl_unreachable" if selection.state is ImageState.FAILED else "dcl_none"
            decision = dataclasses.replace(decision, reason=selection.reason, code=code)
        return decision, True
    decision = decide(device, query, _with_images(state, key, (image_info(mv, None),)), now)
    return decision, decision.status not in (QueryStatus.UPDATE_AVAILABLE, QueryStatus.BUSY)


def _with_image_state(
    decision: Decision,
    got: DclCandidate,
    state: ReleaseState,
    key: ReleaseKey,
    device: Device,
    query: Query,
    now: float,
) -> Decision:
    mv = got.version
    if mv is None:  # the ledger changed between the two looks: answer from the new facts
        return decide(device, query, _with_images(state, key, ()), now)
    if got.state is ImageState.READY:
        return decide(device, query, _with_images(state, key, (image_info(mv, got.path),)), now)
    if got.state is ImageState.QUARANTINED:
        return dataclasses.replace(
            decision,
            status=QueryStatus.NOT_AVAILABLE,
            reason=got.reason,
            code="dcl_quarantined",
            image=None,
            delayed_action_time=0,
        )
    delay = max(decision.delayed_action_time, state.busy.base)
    code = "dcl_fetching" if got.state is ImageState.FETCHING else "dcl_download_failed"
    return dataclasses.replace(
        decision,
        status=QueryStatus.BUSY,
        reason=f"{got.reason}; retry in {delay} s",
        code=code,
        delayed_action_time=delay,
    )


def _with_images(
    state: ReleaseState, key: ReleaseKey, images: tuple[ImageInfo, ...]
) -> ReleaseState:
    return dataclasses.replace(state, images={**state.images, key: images})


Decider = Callable[[Device, Query, ReleaseState, float], Decision]


@contextmanager
def open_dcl_decider(
    config: DclConfig, state_dir: Path, *, progress_stream: TextIO | None = None
) -> Iterator[Decider]:
    """For synchronous callers (``matter-ota explain``): a ``decide`` that consults the DCL.

    Inside the ``with``, the returned function answers like :func:`decide_with_dcl` with
    ``wait=True`` (ledger refreshed when due, image fetched and verified when not cached);
    releases that are not DCL's are answered by the engine alone, with no network. One
    source (one HTTPS client, one cache) serves every call, on an event loop in a thread.
    """
    settings = settings_from_config(config)
    with start_blocking_portal() as portal:
        source = DclSource(settings, state_dir, progress_stream=progress_stream)
        with portal.wrap_async_context_manager(source):
            # explain answers for one moment: the ledger's facts per (vid, pid, version) are
            # looked up once, so thousands of devices cost thousands of engine calls only.
            looked: dict[tuple[int, int, int, bool], DclCandidate] = {}

            def look(query: Query, fetch: bool) -> DclCandidate:
                memo = (query.vendor_id, query.product_id, query.software_version, fetch)
                got = looked.get(memo)
                if got is None:
                    got = looked[memo] = portal.call(
                        partial(
                            source.candidate,
                            query.vendor_id,
                            query.product_id,
                            query.software_version,
                            wait=True,
                            fetch=fetch,
                        )
                    )
                return got

            def decide_fn(
                device: Device, query: Query, state: ReleaseState, now: float
            ) -> Decision:
                key = ReleaseKey(channel_for(device, query, state.channels), query.product)
                release = state.releases.get(key)
                if release is None or release.source is not Source.DCL:
                    return decide(device, query, state, now)
                decision, final = _from_ledger(look(query, False), device, query, state, now, key)
                if final:
                    return decision
                got = look(query, True)
                return _with_image_state(decision, got, state, key, device, query, now)

            yield decide_fn


def explain_dcl(
    config: DclConfig,
    state_dir: Path,
    devices: Sequence[tuple[Device, Query]],
    state: ReleaseState,
    now: float,
    *,
    progress_stream: TextIO | None = None,
) -> list[Decision]:
    """The daemon's answers for ``devices``, consulting the ledger for DCL releases.

    Fetches and verifies an image that is not cached yet (so the answer is what the daemon
    gives once it has the image, or why it refuses). Synchronous: for the CLI.
    """

    async def run() -> list[Decision]:
        settings = settings_from_config(config)
        async with DclSource(settings, state_dir, progress_stream=progress_stream) as source:
            return [
                await decide_with_dcl(source, device, query, state, now, wait=True)
                for device, query in devices
            ]

    return anyio.run(run)
