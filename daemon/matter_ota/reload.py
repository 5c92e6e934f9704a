"""Config reload: notice edits of provider.yaml / releases.yaml and apply valid ones.

The core, :class:`ConfigWatcher`, is driven by ``check(now)`` (time passed in, as everywhere in
the daemon) and returns an event; :func:`watch` is the thin anyio loop the daemon runs. Files
are polled (stat, then a SHA-256 of the contents), not watched with inotify: polling works the
same on every filesystem, sees atomic renames and in-place writes alike, and costs a few
microseconds per file every half second.

A change is applied only once the file has been stable for one poll, so an editor writing in
several steps is not caught half way. With the default 0.5 s poll, a valid edit takes effect
within about 1 s (the promise is 2 s). An invalid edit keeps the last valid config serving; it
is reported once per distinct bad content (log line ``event=config_invalid``) and recorded in
the state store, where ``matter-ota releases`` shows it until a valid version loads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

from matter_ota.config import Config, load_config, parse_releases
from matter_ota.store import Store
from matter_ota.yamlnodes import ConfigError

T = TypeVar("T")

POLL_INTERVAL = 0.5
# Even when mtime and size look unchanged, re-hash now and then: some filesystems keep mtime
# at one-second granularity and an edit may keep the size.
REHASH_EVERY = 2.0

log = logging.getLogger("matter_ota.reload")


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What identifies one version of a file (``None`` digest: the file is missing)."""

    mtime_ns: int
    size: int
    digest: str | None


def fingerprint(path: Path, previous: Fingerprint | None = None, rehash: bool = True
                ) -> Fingerprint:
    """The file's fingerprint; the contents are hashed only when stat changed or ``rehash``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Fingerprint(0, -1, None)
    if (
        previous is not None
        and not rehash
        and (previous.mtime_ns, previous.size) == (st.st_mtime_ns, st.st_size)
    ):
        return previous
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return Fingerprint(0, -1, None)
    return Fingerprint(st.st_mtime_ns, st.st_size, digest)


@dataclass(frozen=True, slots=True)
class Reloaded(Generic[T]):
    """A valid new config, loaded from the changed files."""

    config: T
    files: tuple[Path, ...]


@dataclass(frozen=True, slots=True)
class Invalid:
    """A changed file that does not load; the previous config stays in force."""

    file: str
    line: int | None
    reason: str


def describe_error(exc: BaseException, default_file: Path) -> Invalid:
    """File, line and reason of a loader error (the config loader's error carries them)."""
    file = getattr(exc, "file", None) or getattr(exc, "path", None) or default_file
    line = getattr(exc, "line", None)
    reason = getattr(exc, "reason", None) or getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    if hint:
        reason = f"{reason}; {hint}"
    return Invalid(str(file), line if isinstance(line, int) else None, str(reason))


class ConfigWatcher(Generic[T]):
    """Polls the config files and reloads when they change (sans-IO apart from reading them).

    ``load()`` builds a fresh config from disk or raises one of ``errors``; ``paths(config)``
    names the files a config depends on (provider.yaml names releases.yaml, so the set can
    change with a reload).
    """

    def __init__(
        self,
        current: T,
        load: Callable[[], T],
        paths: Callable[[T], Sequence[Path]],
        *,
        errors: tuple[type[BaseException], ...] = (ValueError, OSError),
        interval: float = POLL_INTERVAL,
        now: float = 0.0,
    ) -> None:
        self.current = current
        self._load = load
        self._paths = paths
        self._errors = errors
        self.interval = interval
        self._seen = self._snapshot(rehash=True)
        self._pending: dict[Path, Fingerprint] | None = None
        self._reported: dict[Path, Fingerprint] | None = None
        self._next = now + interval
        self._last_hash = now
        self.last_error: Invalid | None = None

    def _snapshot(
        self, rehash: bool, previous: dict[Path, Fingerprint] | None = None
    ) -> dict[Path, Fingerprint]:
        previous = previous or {}
        return {
            p: fingerprint(p, previous.get(p), rehash) for p in self._paths(self.current)
        }

    def next_deadline(self) -> float:
        return self._next

    def check(self, now: float) -> Reloaded[T] | Invalid | None:
        """Poll once; a new config, an error to report, or nothing new."""
        if now < self._next:
            return None
        self._next = now + self.interval
        rehash = now - self._last_hash >= REHASH_EVERY
        if rehash:
            self._last_hash = now
        current = self._snapshot(rehash, self._pending or self._seen)
        if current == self._seen:
            self._pending = None
            if self._reported is None:
                return None
            # The bad edit was undone: the config in force is the file's content again.
            self._reported = None
            self.last_error = None
            return Reloaded(self.current, ())
        if current != self._pending:
            self._pending = current  # changed: wait until it holds still for one poll
            return None
        self._pending = None
        if current == self._reported:
            return None  # the same bad content as last time: already reported
        return self._load_from(current)

    def reload(self, now: float) -> Reloaded[T] | Invalid:
        """Load now, whatever the files look like (the operator asked: SIGHUP); an error is
        reported again even if this content was reported before."""
        self._next = now + self.interval
        self._last_hash = now
        self._pending = None
        return self._load_from(self._snapshot(rehash=True))

    def _load_from(self, current: dict[Path, Fingerprint]) -> Reloaded[T] | Invalid:
        changed = tuple(p for p in current if current[p] != self._seen.get(p))
        try:
            config = self._load()
        except self._errors as exc:
            self._reported = current
            self.last_error = describe_error(exc, changed[0] if changed else next(iter(current)))
            return self.last_error
        self.current = config
        # What was seen before the load, not after: an edit landing during the load then
        # shows as a change at the next poll instead of being taken for the loaded version.
        self._seen = {p: current[p] if p in current else fingerprint(p)
                      for p in self._paths(config)}
        self._reported = None
        self.last_error = None
        return Reloaded(config, changed)

    @property
    def digest(self) -> str:
        """One digest of the files the config in force was loaded from (see :func:`digest`)."""
        return combined_digest(self._seen)


def combined_digest(fingerprints: Mapping[Path, Fingerprint]) -> str:
    """SHA-256 over the content digests of the files in order (provider.yaml, then the
    releases file); ``missing`` stands for an absent file. Paths are left out, so the daemon
    and the CLI agree however each spells them."""
    h = hashlib.sha256()
    for fp in fingerprints.values():
        h.update(f"{fp.digest or 'missing'}\n".encode())
    return h.hexdigest()


def files_digest(paths: Sequence[Path]) -> str:
    """:func:`combined_digest` of the files as they are on disk now (what `matter-ota status`
    compares with the digest the daemon recorded)."""
    return combined_digest({p: fingerprint(p) for p in paths})


async def watch(
    watcher: ConfigWatcher[T],
    apply: Callable[[T], Awaitable[None] | None],
    *,
    on_invalid: Callable[[Invalid], None] | None = None,
    on_valid: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    requests: ObjectReceiveStream[str] | None = None,
) -> None:
    """Run the watcher forever (cancel the task to stop): log and apply each event.

    Each item received from ``requests`` (e.g. ``"SIGHUP"``) forces a re-read at once."""
    forced: str | None = None
    while True:
        if forced is not None:
            log.info("event=config_reread reason=%s", forced)
            event: Reloaded[T] | Invalid | None = watcher.reload(clock())
        else:
            event = watcher.check(clock())
        if isinstance(event, Reloaded):
            log.info(
                "event=config_reloaded files=%s",
                ",".join(str(p) for p in event.files) or "-",
            )
            result = apply(event.config)
            if result is not None:
                await result
            if on_valid is not None:
                on_valid()
        elif isinstance(event, Invalid):
            log.warning(
                "event=config_invalid file=%s line=%s reason=%s kept=last_valid",
                event.file, event.line if event.line is not None else "-", event.reason,
            )
            if on_invalid is not None:
                on_invalid(event)
        forced = None
        delay = max(0.0, watcher.next_deadline() - clock())
        if requests is None:
            await anyio.sleep(delay)
            continue
        with anyio.move_on_after(delay):
            forced = await requests.receive()


# -- the daemon's wiring ---------------------------------------------------------------------


def config_watcher(
    provider_path: Path,
    now: float,
    *,
    initial: Config | None = None,
    load: Callable[[], Config] | None = None,
) -> ConfigWatcher[Config]:
    """The daemon's watcher: provider.yaml and the releases file it names, loaded with the
    same loader as at start-up (ConfigError on anything invalid). ``initial`` is the config
    already being served (default: loaded now); ``load`` replaces plain ``load_config``."""
    loader = load if load is not None else (lambda: load_config(provider_path))
    return ConfigWatcher(
        initial if initial is not None else loader(),
        loader,
        lambda config: (config.provider.path, config.provider.releases_file),
        errors=(ConfigError,),
        now=now,
    )


def store_reporting(
    store: Store, watcher: ConfigWatcher[Config], clock: Callable[[], float] = time.time
) -> tuple[Callable[[Invalid], None], Callable[[], None]]:
    """``on_invalid`` / ``on_valid`` for :func:`watch` that keep the state store current: the
    warning `matter-ota releases` shows, and the text of the releases file now serving."""

    def on_invalid(event: Invalid) -> None:
        store.set_config_warning(event.file, event.line, event.reason, clock())

    def on_valid() -> None:
        store.clear_config_warnings()
        path = watcher.current.provider.releases_file
        try:
            text = path.read_text(encoding="utf-8")
            same = parse_releases(text, path, watcher.current.provider.channel_names)
        except (OSError, UnicodeDecodeError, ConfigError):
            return  # changed again since the load: the next poll sees it
        if same == watcher.current.releases:
            store.save_valid_config(str(path), text, clock())

    return on_invalid, on_valid
