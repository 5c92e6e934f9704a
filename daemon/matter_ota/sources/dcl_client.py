"""The DCL REST client: answers fetched over verified HTTPS, cached, refreshed, backed off.

:class:`DclClient` answers "which versions does the ledger list for vid/pid" from a cache that
is refreshed every ``refresh_interval``; when the ledger is unreachable or answers nonsense it
keeps serving the last good answer, retries with exponential backoff, and records what
happened in :class:`DclStatus` (shown by ``matter-ota releases``). Cached answers survive a
restart (``<state>/dcl/ledger.json``, replaced atomically), so a restarted daemon serves with
the ledger down.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from matter_ota.sources.dcl_ledger import (
    DclError,
    ModelVersion,
    decode_json,
    parse_model_version,
    parse_versions,
)

log = logging.getLogger("matter_ota.dcl")

MAINNET_URL = "https://on.dcl.csa-iot.org"
TESTNET_URL = "https://on.test-net.dcl.csa-iot.org"
NAMED_URLS = {"mainnet": MAINNET_URL, "testnet": TESTNET_URL}
STATUS_FILE = "status.json"  # DclStatus, for `matter-ota releases` in another process
MAX_ANSWER_BYTES = 1 << 20  # a ledger answer is a few hundred bytes; refuse anything huge


class DclUnavailable(Exception):
    """The ledger could not be asked (network, TLS, HTTP status, bad answer)."""


def resolve_base_url(url: str) -> str:
    """``mainnet`` / ``testnet`` / an ``https://`` URL -> the base URL to query."""
    named = NAMED_URLS.get(url.strip().lower())
    if named is not None:
        return named
    parsed = httpx.URL(url)
    if parsed.scheme != "https" or not parsed.host:
        raise ValueError(f"dcl.url must be mainnet, testnet or an https:// URL, not {url!r}")
    return str(parsed).rstrip("/")


@dataclass(frozen=True)
class DclSettings:
    """The ``dcl:`` section of provider.yaml, as the client needs it."""

    url: str = "mainnet"
    ca_bundle: Path | None = None
    refresh_interval: float = 3600.0
    cache_size: int = 2 << 30
    timeout: float = 15.0
    backoff_initial: float = 5.0
    backoff_max: float = 900.0

    @property
    def base_url(self) -> str:
        return resolve_base_url(self.url)


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """A verifying TLS context; with ``ca_bundle`` only that CA bundle is trusted."""
    if ca_bundle is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=os.fspath(ca_bundle))


async def _refuse_plain_http(request: httpx.Request) -> None:
    # Runs for every redirect hop too: the ledger and the images are https only.
    if request.url.scheme != "https":
        raise httpx.UnsupportedProtocol(f"refusing {request.url.scheme}:// ({request.url})")


def make_http_client(settings: DclSettings) -> httpx.AsyncClient:
    """The one HTTPS client for ledger answers and image downloads."""
    return httpx.AsyncClient(
        verify=ssl_context(settings.ca_bundle),
        timeout=httpx.Timeout(settings.timeout),
        follow_redirects=True,
        event_hooks={"request": [_refuse_plain_http]},
        headers={"Accept-Encoding": "identity", "User-Agent": "matter-ota-provider"},
    )


@dataclass
class DclStatus:
    """How talking to the ledger has gone; wall-clock seconds since the epoch."""

    base_url: str
    last_success: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    consecutive_failures: int = 0
    next_retry_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "consecutive_failures": self.consecutive_failures,
            "next_retry_at": self.next_retry_at,
        }


@dataclass
class ProductAnswer:
    """The ledger's versions of one product, as last fetched successfully."""

    vid: int
    pid: int
    fetched_at: float
    versions: tuple[ModelVersion, ...]
    raw: dict[str, Any] = field(repr=False)  # the validated JSON, kept for the cache file


class DclClient:
    """Cached, backed-off access to the ledger's model versions."""

    def __init__(
        self,
        settings: DclSettings,
        state_dir: Path,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url
        self.http = http
        self.clock = clock
        self.status = DclStatus(self.base_url)
        self._path = state_dir / "dcl" / "ledger.json"
        self._status_path = state_dir / "dcl" / STATUS_FILE
        self._answers: dict[tuple[int, int], ProductAnswer] = {}
        self._locks: dict[tuple[int, int], anyio.Lock] = {}
        self._load()

    # -- public -------------------------------------------------------------------------------

    def cached(self, vid: int, pid: int) -> ProductAnswer | None:
        return self._answers.get((vid, pid))

    async def versions(self, vid: int, pid: int) -> ProductAnswer:
        """The product's versions: cached while fresh, refreshed when due.

        Raises :class:`DclUnavailable` only when the ledger cannot be reached and nothing is
        cached for the product; otherwise a failed refresh serves the last good answer.
        """
        key = (vid, pid)
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:  # one refresh per product at a time; the others then read its result
            cached = self._answers.get(key)
            now = self.clock()
            fresh = cached is not None and now - cached.fetched_at < self.settings.refresh_interval
            backing_off = self.status.next_retry_at is not None and now < self.status.next_retry_at
            if fresh or (cached is not None and backing_off):
                assert cached is not None
                return cached
            if backing_off:
                raise DclUnavailable(
                    f"DCL unreachable ({self.status.last_error}); next try in "
                    f"{(self.status.next_retry_at or now) - now:.0f} s"
                )
            try:
                answer = await self._fetch(vid, pid)
            except DclUnavailable as exc:
                self._failed(str(exc))
                if cached is not None:
                    return cached
                raise
            self._answers[key] = answer
            self._succeeded()
            try:
                self._save()
            except OSError as exc:  # served from memory; the next success writes it again
                log.warning("event=dcl_cache_unwritable path=%s reason=%s", self._path, exc)
            return answer

    # -- fetching -----------------------------------------------------------------------------

    async def _get(self, path: str) -> Any | None:
        """GET a ledger path -> parsed JSON, None for 404; DclUnavailable for anything else."""
        url = f"{self.base_url}{path}"
        try:
            async with self.http.stream("GET", url, headers={"Accept": "application/json"}) as r:
                if r.status_code == 404:
                    return None
                if r.status_code != 200:
                    raise DclUnavailable(f"GET {path}: HTTP {r.status_code}")
                body = bytearray()
                async for chunk in r.aiter_raw():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        raise DclUnavailable(f"GET {path}: answer larger than {MAX_ANSWER_BYTES}")
        except httpx.TimeoutException:
            raise DclUnavailable(
                f"GET {path}: timed out after {self.settings.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise DclUnavailable(f"GET {path}: {type(exc).__name__}: {exc}") from None
        try:
            return decode_json(bytes(body))
        except DclError as exc:
            raise DclUnavailable(f"GET {path}: {exc}") from None

    async def _fetch(self, vid: int, pid: int) -> ProductAnswer:
        path = f"/dcl/model/versions/{vid}/{pid}"
        listing = await self._get(path)
        raw: dict[str, Any] = {"vid": vid, "pid": pid, "listing": listing, "versions": {}}
        if listing is None:
            return ProductAnswer(vid, pid, self.clock(), (), raw)
        try:
            numbers = parse_versions(listing, vid, pid)
        except DclError as exc:
            raise DclUnavailable(f"GET {path}: {exc}") from None
        versions: list[ModelVersion] = []
        for sv in numbers:
            doc = await self._get(f"{path}/{sv}")
            if doc is None:  # listed but gone: the ledger is mid-update; treat as unavailable
                raise DclUnavailable(f"GET {path}/{sv}: HTTP 404 for a listed version")
            try:
                versions.append(parse_model_version(doc, vid, pid, sv))
            except DclError as exc:
                raise DclUnavailable(f"GET {path}/{sv}: {exc}") from None
            raw["versions"][str(sv)] = doc
        return ProductAnswer(vid, pid, self.clock(), tuple(versions), raw)

    # -- status and backoff -------------------------------------------------------------------

    def _succeeded(self) -> None:
        self.status.last_success = self.clock()
        self.status.consecutive_failures = 0
        self.status.next_retry_at = None
        self._save_status()

    def _failed(self, reason: str) -> None:
        s = self.status
        now = self.clock()
        s.last_error, s.last_error_at = reason, now
        s.consecutive_failures += 1
        delay = min(
            self.settings.backoff_max,
            self.settings.backoff_initial * 2 ** (s.consecutive_failures - 1),
        )
        s.next_retry_at = now + delay
        self._save_status()
        log.warning(
            "event=dcl_unreachable url=%s failures=%d retry_in=%.0fs reason=%s",
            self.base_url,
            s.consecutive_failures,
            delay,
            reason,
        )

    # -- persistence --------------------------------------------------------------------------

    def _load(self) -> None:
        saved = read_status(self._status_path.parent.parent, self.base_url)
        if saved is not None:
            self.status = saved
        self._answers = read_answers(self._path.parent.parent, self.base_url)

    def _save(self) -> None:
        doc = {
            "base_url": self.base_url,
            "products": [
                {"vid": a.vid, "pid": a.pid, "fetched_at": a.fetched_at, "raw": a.raw}
                for a in self._answers.values()
            ],
        }
        _write_json(self._path, doc)

    def _save_status(self) -> None:
        try:
            _write_json(self._status_path, self.status.to_json())
        except OSError as exc:  # the status is informative; serving goes on
            log.warning("event=dcl_status_unwritable path=%s reason=%s", self._status_path, exc)


def read_answers(state_dir: Path, base_url: str) -> dict[tuple[int, int], ProductAnswer]:
    """The cached ledger answers for ``base_url`` (a damaged file or entry is skipped)."""
    path = state_dir / "dcl" / "ledger.json"
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("event=dcl_cache_unreadable path=%s reason=%s", path, exc)
        return {}
    if not isinstance(doc, dict) or doc.get("base_url") != base_url:
        return {}  # answers of another ledger (mainnet vs testnet) are not ours
    answers: dict[tuple[int, int], ProductAnswer] = {}
    for entry in doc.get("products", []):
        try:
            answer = _answer_from_raw(entry)
        except (DclError, KeyError, TypeError, ValueError) as exc:
            log.warning("event=dcl_cache_entry_dropped reason=%s", exc)
            continue
        answers[(answer.vid, answer.pid)] = answer
    return answers


def _answer_from_raw(entry: dict[str, Any]) -> ProductAnswer:
    vid, pid, fetched_at = int(entry["vid"]), int(entry["pid"]), float(entry["fetched_at"])
    raw = entry["raw"]
    versions: list[ModelVersion] = []
    if raw["listing"] is not None:
        for sv in parse_versions(raw["listing"], vid, pid):
            versions.append(parse_model_version(raw["versions"][str(sv)], vid, pid, sv))
    return ProductAnswer(vid, pid, fetched_at, tuple(versions), raw)


def read_status(state_dir: Path, base_url: str) -> DclStatus | None:
    """The last :class:`DclStatus` a daemon recorded for ``base_url`` (None: none)."""
    try:
        doc = json.loads((state_dir / "dcl" / STATUS_FILE).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("base_url") != base_url:
        return None
    status = DclStatus(base_url)
    for name in ("last_success", "last_error_at", "next_retry_at"):
        value = doc.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            setattr(status, name, float(value))
    if isinstance(doc.get("last_error"), str):
        status.last_error = doc["last_error"]
    if isinstance(doc.get("consecutive_failures"), int):
        status.consecutive_failures = doc["consecutive_failures"]
    return status


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
