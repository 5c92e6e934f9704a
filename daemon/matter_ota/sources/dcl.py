"""The DCL as an image source: ledger lookups + verified, cached, single-flight downloads.

:class:`DclSource` is what the daemon and ``matter-ota explain`` hold. For a device (vid, pid,
running version) it answers with a :class:`DclCandidate`: the ledger's choice and the state of
its image (ready on disk, being fetched, quarantined, failed). The daemon never waits for a
download while answering a QueryImage: an image not yet on disk starts (or joins) the one
download for it and the device is told to come back (Busy). ``explain`` waits for it.

Run it inside a task group (``async with DclSource(...) as source``): downloads and background
ledger refreshes live there, not in the task of whoever asked first, so a requestor giving up
does not cancel a download the others are waiting for.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import anyio
import httpx
from anyio.abc import TaskGroup

from matter_ota.sources.dcl_cache import ImageCache, cache_key
from matter_ota.sources.dcl_client import (
    DclClient,
    DclSettings,
    DclUnavailable,
    ProductAnswer,
    make_http_client,
)
from matter_ota.sources.dcl_download import DownloadFailed, download_image
from matter_ota.sources.dcl_ledger import ModelVersion, Selection, select_version

log = logging.getLogger("matter_ota.dcl")

FAILED_RETRY_AFTER = 60.0  # seconds before a failed (not quarantined) download is tried again
QUERY_LEDGER_WAIT = 2.0  # a first QueryImage for a product waits this long for the ledger


class LedgerPending(DclUnavailable):
    """The first ledger lookup for a product is still running."""


class ImageState(enum.Enum):
    READY = "ready"
    FETCHING = "fetching"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    ABSENT = "absent"


@dataclass(frozen=True)
class DclCandidate:
    """The ledger's answer for one device and where its image stands."""

    selection: Selection
    state: ImageState
    path: Path | None = None
    detail: str = ""  # quarantine / failure reason, or ledger trouble

    @property
    def version(self) -> ModelVersion | None:
        return self.selection.chosen

    @property
    def reason(self) -> str:
        mv = self.selection.chosen
        if mv is None and self.state is ImageState.FETCHING:
            return self.detail
        if mv is None and self.state is ImageState.FAILED:
            return f"the DCL could not be asked and nothing is cached: {self.detail}"
        if mv is None:
            return self.selection.reason + (f" ({self.detail})" if self.detail else "")
        v = mv.software_version
        if self.state is ImageState.READY:
            return f"DCL version {v} applies; image verified"
        if self.state is ImageState.FETCHING:
            return f"DCL version {v} applies; image download in progress"
        if self.state is ImageState.QUARANTINED:
            return f"DCL version {v} applies but its image is quarantined: {self.detail}"
        if self.state is ImageState.FAILED:
            return f"DCL version {v} applies but its image download failed: {self.detail}"
        return f"DCL version {v} applies; image not fetched yet"


class _Flight:
    """One download that any number of callers wait on."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.path: Path | None = None
        self.error: DownloadFailed | None = None


class DclSource:
    """Ledger lookups and image downloads for DCL channels; see the module docstring."""

    def __init__(
        self,
        settings: DclSettings,
        state_dir: Path,
        *,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        progress_stream: TextIO | None = None,
        download_attempts: int = 5,
        download_backoff: float = 0.5,
    ) -> None:
        self.settings = settings
        self._own_http = http is None
        self.http = http if http is not None else make_http_client(settings)
        self.client = DclClient(settings, state_dir, self.http, clock)
        self.cache = ImageCache(state_dir / "dcl", settings.cache_size, clock)
        self.clock = clock
        self.progress_stream = progress_stream
        self.download_attempts = download_attempts
        self.download_backoff = download_backoff
        self._flights: dict[str, _Flight] = {}
        self._failed: dict[str, tuple[float, str]] = {}  # key -> (when, reason)
        self._refreshing: dict[tuple[int, int], anyio.Event] = {}
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> DclSource:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()  # pending downloads stop; their partial files stay
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            if self._own_http:
                await self.http.aclose()

    # -- ledger -------------------------------------------------------------------------------

    async def ledger(self, vid: int, pid: int, *, wait: bool) -> ProductAnswer:
        """The product's ledger answer.

        ``wait=True`` (explain) refreshes first when due. ``wait=False`` (the daemon's query
        path) serves a stale cached answer at once and refreshes in the background; with
        nothing cached it waits at most ``QUERY_LEDGER_WAIT`` for the first lookup, then
        raises :class:`LedgerPending` (the lookup goes on). Raises :class:`DclUnavailable`
        when nothing is cached and the ledger cannot be asked.
        """
        cached = self.client.cached(vid, pid)
        if wait:
            return await self.client.versions(vid, pid)
        if cached is not None:
            if self.clock() - cached.fetched_at >= self.settings.refresh_interval:
                self._refresh_in_background(vid, pid)
            return cached
        done = self._refresh_in_background(vid, pid)
        with anyio.move_on_after(QUERY_LEDGER_WAIT):
            await done.wait()
        answer = self.client.cached(vid, pid)
        if answer is not None:
            return answer
        if not done.is_set():
            raise LedgerPending("DCL lookup in progress")
        raise DclUnavailable(self.client.status.last_error or "DCL lookup failed")

    def _refresh_in_background(self, vid: int, pid: int) -> anyio.Event:
        done = self._refreshing.get((vid, pid))
        if done is None:
            if self._tg is None:
                raise RuntimeError("DclSource used outside 'async with'")
            done = self._refreshing[(vid, pid)] = anyio.Event()
            self._tg.start_soon(self._refresh, vid, pid, done)
        return done

    async def _refresh(self, vid: int, pid: int, done: anyio.Event) -> None:
        try:
            await self.client.versions(vid, pid)
        except DclUnavailable:
            pass  # recorded in the client's status; the cached answer keeps serving
        except Exception:  # a bug must not take the daemon's task group down
            log.exception("event=dcl_refresh_error vid=0x%04X pid=0x%04X", vid, pid)
        finally:
            del self._refreshing[(vid, pid)]
            done.set()

    # -- images -------------------------------------------------------------------------------

    def image_state(self, mv: ModelVersion) -> tuple[ImageState, Path | None, str]:
        key = cache_key(mv)
        path = self.cache.get(key)
        if path is not None:
            return ImageState.READY, path, ""
        if key in self._flights:
            return ImageState.FETCHING, None, ""
        q = self.cache.blocking_quarantine(key)
        if q is not None:
            return ImageState.QUARANTINED, None, q.reason
        failed = self._failed.get(key)
        if failed is not None and self.clock() - failed[0] < FAILED_RETRY_AFTER:
            return ImageState.FAILED, None, failed[1]
        return ImageState.ABSENT, None, ""

    def start_download(self, mv: ModelVersion) -> _Flight:
        """Start the download of ``mv`` in the background, or join the running one."""
        key = cache_key(mv)
        flight = self._flights.get(key)
        if flight is None:
            if self._tg is None:
                raise RuntimeError("DclSource used outside 'async with'")
            flight = self._flights[key] = _Flight()
            self._tg.start_soon(self._download, mv, key, flight)
        return flight

    async def _download(self, mv: ModelVersion, key: str, flight: _Flight) -> None:
        self.cache.pin(key)
        try:
            flight.path = await download_image(
                self.http,
                mv,
                key,
                self.cache,
                attempts=self.download_attempts,
                backoff=self.download_backoff,
                progress_stream=self.progress_stream,
            )
            self._failed.pop(key, None)
        except DownloadFailed as exc:
            flight.error = exc
            if not exc.quarantined:
                self._failed[key] = (self.clock(), exc.reason)
                log.warning("event=dcl_download_failed key=%s reason=%s", key, exc.reason)
        except OSError as exc:  # disk full, permissions: not the image's fault
            flight.error = DownloadFailed(f"state dir: {exc}")
            self._failed[key] = (self.clock(), flight.error.reason)
            log.error("event=dcl_download_failed key=%s reason=%s", key, flight.error.reason)
        except Exception as exc:  # a bug must not take the daemon's task group down
            flight.error = DownloadFailed(f"internal error: {type(exc).__name__}: {exc}")
            self._failed[key] = (self.clock(), flight.error.reason)
            log.exception("event=dcl_download_error key=%s", key)
        finally:
            self.cache.unpin(key)
            del self._flights[key]
            flight.done.set()

    async def downloads_idle(self) -> None:
        """Return once no download is running (tests, benchmarks, shutdown)."""
        while self._flights:
            await next(iter(self._flights.values())).done.wait()

    async def fetch(self, mv: ModelVersion) -> Path:
        """The verified image of ``mv``, downloading it (once, shared) when needed."""
        state, path, detail = self.image_state(mv)
        if path is not None:
            return path
        if state is ImageState.QUARANTINED:
            raise DownloadFailed(detail, quarantined=True)
        flight = self.start_download(mv)
        await flight.done.wait()
        if flight.error is not None:
            raise flight.error
        assert flight.path is not None
        return flight.path

    # -- the question the daemon asks ---------------------------------------------------------

    async def candidate(
        self, vid: int, pid: int, current: int, *, wait: bool, fetch: bool = True
    ) -> DclCandidate:
        """The ledger's choice for a device and the state of its image.

        ``wait=False``: never waits for a download (starts it, with ``fetch``, and reports
        FETCHING); a first lookup still running reports FETCHING with no version.
        ``wait=True``: refreshes the ledger when due and, with ``fetch``, waits for the image.
        """
        try:
            answer = await self.ledger(vid, pid, wait=wait)
        except LedgerPending as exc:
            return DclCandidate(Selection(None, ()), ImageState.FETCHING, detail=str(exc))
        except DclUnavailable as exc:
            return DclCandidate(Selection(None, ()), ImageState.FAILED, detail=str(exc))
        selection = select_version(answer.versions, current)
        mv = selection.chosen
        if mv is None:
            return DclCandidate(selection, ImageState.ABSENT)
        if wait and fetch:
            try:
                fetched = await self.fetch(mv)
            except DownloadFailed as exc:
                state = ImageState.QUARANTINED if exc.quarantined else ImageState.FAILED
                return DclCandidate(selection, state, detail=exc.reason)
            return DclCandidate(selection, ImageState.READY, fetched)
        state, path, detail = self.image_state(mv)
        if state is ImageState.ABSENT and fetch:
            self.start_download(mv)
            state = ImageState.FETCHING
        return DclCandidate(selection, state, path, detail)

    def candidate_now(
        self, vid: int, pid: int, current: int, *, fetch: bool = True
    ) -> DclCandidate:
        """:meth:`candidate` for synchronous callers (the protocol core's QueryImage handler,
        running on the event loop): answers from what is cached right now and starts, in the
        source's task group, the ledger lookup or the download that is missing."""
        answer = self.client.cached(vid, pid)
        if answer is None:
            if self.client.status.next_retry_at is not None and (
                self.clock() < self.client.status.next_retry_at
            ):
                detail = self.client.status.last_error or "DCL unreachable"
                return DclCandidate(Selection(None, ()), ImageState.FAILED, detail=detail)
            self._refresh_in_background(vid, pid)
            return DclCandidate(
                Selection(None, ()), ImageState.FETCHING, detail="DCL lookup in progress"
            )
        if self.clock() - answer.fetched_at >= self.settings.refresh_interval:
            self._refresh_in_background(vid, pid)
        selection = select_version(answer.versions, current)
        mv = selection.chosen
        if mv is None:
            return DclCandidate(selection, ImageState.ABSENT)
        state, path, detail = self.image_state(mv)
        if state is ImageState.ABSENT and fetch:
            self.start_download(mv)
            state = ImageState.FETCHING
        return DclCandidate(selection, state, path, detail)

    # -- ahead of the devices -----------------------------------------------------------------

    async def prefetch(self, products: Iterable[tuple[int, int]]) -> None:
        """Refresh the ledger answers of ``products`` when due and start downloading each
        product's newest usable version, so the first device asking is not told Busy."""
        for vid, pid in products:
            try:
                answer = await self.client.versions(vid, pid)
            except DclUnavailable:
                continue  # recorded in the status; the next round tries again
            usable = [mv for mv in answer.versions if mv.unusable_reason() is None]
            if not usable:
                continue
            newest = max(usable, key=lambda mv: mv.software_version)
            if self.image_state(newest)[0] is ImageState.ABSENT:
                self.start_download(newest)

    async def keep_fresh(
        self, products: Callable[[], Iterable[tuple[int, int]]], period: float = 60.0
    ) -> None:
        """Daemon task: :meth:`prefetch` the products of the LIVE DCL releases every
        ``period`` seconds (the ledger itself is asked only every ``refresh_interval``)."""
        while True:
            await self.prefetch(products())
            await anyio.sleep(period)

    def status(self) -> dict[str, Any]:
        """Ledger reachability and cache facts, for ``matter-ota releases``."""
        return {
            **self.client.status.to_json(),
            "cache_bytes": self.cache.total_bytes(),
            "cache_limit": self.cache.max_bytes,
            "downloading": sorted(self._flights),
            "quarantined": [
                {"key": q.key, "reason": q.reason, "at": q.at, "url": q.url}
                for q in self.cache.all_quarantined()
            ],
        }
