"""The provider daemon: the config it serves, and the task group that runs it.

:class:`ProviderService` holds what the OTA handlers consult: the config in force and the
:class:`~matter_ota.policy.model.ReleaseState` built from it, the state store and the firmware
folder (:func:`matter_ota.facts.build_state`). A reload builds the new state completely and then
swaps one reference, so a handler sees either the old config or the new one, never a mix:
handlers call :meth:`ProviderService.current_state` (or :meth:`~ProviderService.current`) once
per request and use what they got for the whole request.

:class:`Daemon` is the runtime shell around it (DESIGN.md "The runtime shell"): one anyio task
group with the UDP transport, the config watcher, the systemd watchdog, a heartbeat in the
state store and the companions the serve command adds (mDNS, ...); signals: SIGHUP re-reads the
config at once, SIGTERM / SIGINT stop cleanly (CloseSession to every peer, ``STOPPING=1``,
store closed by the caller).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from matter_ota.config import Config, ProviderConfig, load_config, load_provider, parse_provider
from matter_ota.facts import build_state
from matter_ota.messaging.session import Address
from matter_ota.node import Node
from matter_ota.policy.model import ReleaseState
from matter_ota.releases_file import load_releases, parse_releases
from matter_ota.reload import (
    Fingerprint,
    Invalid,
    combined_digest,
    config_watcher,
    describe_error,
    fingerprint,
    store_reporting,
    watch,
)
from matter_ota.runtime import logs
from matter_ota.runtime.systemd import Notifier
from matter_ota.runtime.udp import UdpTransport
from matter_ota.store import Store, StoreError
from matter_ota.yamlnodes import ConfigError

log = logging.getLogger("matter_ota.service")

HEARTBEAT_INTERVAL = 15.0  # seconds between the daemon's "still alive" writes in the store

# provider.yaml keys a running daemon cannot change (socket, identity, state, the DCL client;
# also log.format): a change is logged as needing a restart; the rest (channels, limits,
# firmware_dir, log level) applies.
RESTART_KEYS = ("node", "network", "state_dir", "dcl")

Companion = Callable[[Address], Coroutine[Any, Any, None]]
"""A long-running task started once the UDP socket is bound (e.g. the mDNS advertiser)."""


# -- loading -------------------------------------------------------------------------------


def load_provider_or_defaults(path: Path, explicit: bool) -> ProviderConfig:
    """``provider.yaml`` at ``path``; when no file exists there and none was asked for, the
    embedded defaults with directories relative to the current directory."""
    if path.exists() or explicit:
        if not path.exists():
            raise ConfigError(path, None, None, "no such file",
                              "give an existing --config, or leave it out for the defaults")
        return load_provider(path)
    here = parse_provider("", Path.cwd() / "provider.yaml")
    return dataclasses.replace(here, path=path)


def load_startup_config(
    provider: ProviderConfig, store: Store
) -> tuple[Config, Invalid | None, str | None]:
    """The config to start with: the releases file on disk, or, when it is invalid, its last
    valid version from the store (a restart must not stop every rollout over a typo).

    Returns the config, the refusal to report (or None), and the text served instead of the
    file's (or None). Raises ConfigError when the file is invalid and no valid version is
    known."""
    path = provider.releases_file
    try:
        return Config(provider, load_releases(path, provider.channel_names)), None, None
    except ConfigError as exc:
        text = store.last_valid_config(str(path))
        if text is None:
            raise
        try:
            releases = parse_releases(text, path, provider.channel_names)
        except ConfigError:
            raise exc from None
        return Config(provider, releases), describe_error(exc, path), text


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process (the daemon runs as its own user)
    return True


def another_daemon(store: Store, now: float | None = None) -> int | None:
    """The pid of a live daemon already serving this state directory, if any (its
    heartbeat is recent and its process exists)."""
    status = store.daemon_status()
    if status is None or status.state == "stopped" or status.pid == os.getpid():
        return None
    now = time.time() if now is None else now
    if now - status.heartbeat_at > 3 * HEARTBEAT_INTERVAL or not pid_alive(status.pid):
        return None
    return status.pid


# -- what the handlers read ----------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """One applied config and the facts built from it (replaced whole on reload)."""

    config: Config
    state: ReleaseState
    generation: int
    digest: str
    applied_at: float


class ProviderService:
    """The config and release state the OTA provider consults, swapped atomically on reload."""

    def __init__(self, config: Config, store: Store, *, digest: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self._served = self._build(config, 1, digest)
        self.log_level_fixed = False  # True when --log-level overrides the config's
        self._listeners: list[Callable[[Served], None]] = []
        self._stop_hooks: list[Callable[[float], None]] = []

    def at_stop(self, hook: Callable[[float], None]) -> None:
        """Call ``hook(now)`` (the node's monotonic clock) when the daemon stops, before the
        sessions close: e.g. the BDX server failing its transfers and telling the devices."""
        self._stop_hooks.append(hook)

    def stopping(self, now: float) -> None:
        """Run the stop hooks, each on its own (one failing does not skip the others)."""
        for hook in self._stop_hooks:
            try:
                hook(now)
            except Exception:
                log.exception("event=stop_hook_failed hook=%s",
                              getattr(hook, "__qualname__", hook))

    def subscribe(self, listener: Callable[[Served], None]) -> None:
        """Call ``listener`` with each newly applied config (after the swap), e.g. the BDX
        sender's released-images table; read :meth:`current` for the one in force now."""
        self._listeners.append(listener)

    def current(self) -> Served:
        return self._served

    def current_state(self) -> ReleaseState:
        """The state :func:`~matter_ota.policy.engine.decide` takes, for one request."""
        return self._served.state

    def current_config(self) -> Config:
        return self._served.config

    def _build(self, config: Config, generation: int, digest: str,
               previous: ReleaseState | None = None) -> Served:
        state = build_state(config.provider, config.releases, self.store, previous=previous)
        return Served(config, state, generation, digest, self._clock())

    def apply(self, config: Config, digest: str) -> Served:
        """Serve ``config`` from now on; records the generation in the store and logs it."""
        old = self._served
        started = time.perf_counter()
        same = digest == old.digest and config == old.config  # e.g. a bad edit undone
        served = self._build(config, old.generation if same else old.generation + 1, digest,
                             previous=old.state)
        build_ms = (time.perf_counter() - started) * 1000
        self._served = served  # the swap: one reference
        self.record()
        for listener in self._listeners:
            try:
                listener(served)
            except Exception:  # one consumer's bug must not stop the reload for the others
                log.exception("event=config_listener_failed listener=%s",
                              getattr(listener, "__qualname__", listener))
        restart = restart_needed(old.config.provider, config.provider)
        if restart:
            log.warning("event=config_restart_needed keys=%s reason=%s", ",".join(restart),
                        logs.quote("these settings apply at the next start"))
        if not self.log_level_fixed and config.provider.log.level != old.config.provider.log.level:
            logs.set_level(config.provider.log.level)
        log.info(
            "event=config_applied generation=%d digest=%s releases=%d channels=%d build_ms=%.1f",
            served.generation, served.digest[:16], len(config.releases.releases),
            len(config.provider.channels), build_ms,
        )
        return served

    def record(self) -> None:
        s = self._served
        files = (str(s.config.provider.path), str(s.config.provider.releases_file))
        self.store.config_applied(s.generation, s.digest, files, self._clock())


def restart_needed(old: ProviderConfig, new: ProviderConfig) -> list[str]:
    """The provider.yaml keys that changed but apply only at the next start."""
    keys = [key for key in RESTART_KEYS if getattr(old, key) != getattr(new, key)]
    if old.log.format != new.log.format:
        keys.append("log.format")  # the level applies live
    return keys


def startup_digest(config: Config, served_text: str | None) -> str:
    """The digest of what is served at start: the files on disk, or, when the releases file
    is replaced by its last valid version, that version's text in its place."""
    provider, releases = config.provider.path, config.provider.releases_file
    prints = {provider: fingerprint(provider), releases: fingerprint(releases)}
    if served_text is not None:
        prints[releases] = Fingerprint(0, 0, hashlib.sha256(served_text.encode()).hexdigest())
    return combined_digest(prints)


def config_loader(path: Path, explicit: bool) -> Callable[[], Config]:
    def load() -> Config:
        if path.exists() or explicit:
            return load_config(path)
        provider = load_provider_or_defaults(path, explicit)
        return Config(provider, load_releases(provider.releases_file, provider.channel_names))

    return load


# -- the daemon ----------------------------------------------------------------------------


class Daemon:
    """Runs the provider until SIGTERM / SIGINT; see the module docstring."""

    def __init__(
        self,
        service: ProviderService,
        node: Node,
        transport: UdpTransport,
        *,
        config_path: Path,
        config_explicit: bool,
        notifier: Notifier | None = None,
        companions: Sequence[Companion] = (),
        contexts: Sequence[contextlib.AbstractAsyncContextManager[Any]] = (),
        on_ready: Callable[[Address], None] | None = None,
        startup_error: Invalid | None = None,
    ) -> None:
        self.service = service
        self.node = node
        self.transport = transport
        self.notifier = notifier if notifier is not None else Notifier.from_environ()
        self.companions = list(companions)
        self.contexts = list(contexts)
        self.on_ready = on_ready
        self.watcher = config_watcher(
            config_path, time.monotonic(), initial=service.current_config(),
            load=config_loader(config_path, config_explicit),
        )
        self.watcher.last_error = startup_error
        self._startup_error = startup_error
        self.address: Address | None = None
        self._stop: anyio.Event | None = None
        self._requests: MemoryObjectSendStream[str] | None = None

    def _apply(self, config: Config) -> None:
        try:
            self.service.apply(config, self.watcher.digest)
        except (StoreError, OSError) as exc:
            # The facts could not be read: the previous state keeps serving; SIGHUP retries.
            log.error("event=config_apply_failed reason=%s kept=previous", logs.quote(exc))
        self._status()

    def _status(self, text: str | None = None) -> None:
        served = self.service.current()
        where = "-" if self.address is None else f"[{self.address[0]}]:{self.address[1]}"
        self.notifier.status(text or f"serving on {where}, config generation {served.generation}"
                             + (" (last edit refused)" if self.watcher.last_error else ""))

    def stop(self, reason: str) -> None:
        """End :meth:`run` cleanly (what SIGTERM / SIGINT do)."""
        log.info("event=stop_requested reason=%s", reason)
        if self._stop is not None:
            self._stop.set()

    def reload(self, reason: str) -> None:
        """Re-read the config now (what SIGHUP does)."""
        if self._requests is not None:
            with contextlib.suppress(anyio.WouldBlock):  # a re-read is already pending
                self._requests.send_nowait(reason)

    async def run(self) -> None:
        """Serve until :meth:`stop` or a stop signal; returns after a clean shutdown."""
        store = self.service.store
        store.daemon_started(os.getpid(), time.time())
        self.service.record()
        on_invalid, on_valid = store_reporting(store, self.watcher)
        if self._startup_error is not None:
            on_invalid(self._startup_error)

        def invalid(event: Invalid) -> None:
            on_invalid(event)
            self._status()

        self._stop = anyio.Event()
        self._requests, requests = anyio.create_memory_object_stream[str](4)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for context in self.contexts:  # e.g. the DCL source's background tasks
                    await stack.enter_async_context(context)
                signals = stack.enter_context(anyio.open_signal_receiver(
                    signal.SIGHUP, signal.SIGINT, signal.SIGTERM))
                async with anyio.create_task_group() as tg:
                    self.address = await tg.start(self.transport.run)
                    where = f"[{self.address[0]}]:{self.address[1]}"
                    store.daemon_running(where, time.time())
                    served = self.service.current()
                    log.info("event=ready address=%s generation=%d digest=%s", where,
                             served.generation, served.digest[:16])
                    self.notifier.ready(f"serving on {where}, config generation "
                                        f"{served.generation}")
                    if self.on_ready is not None:
                        self.on_ready(self.address)
                    tg.start_soon(functools.partial(watch, self.watcher, self._apply,
                                                    on_invalid=invalid, on_valid=on_valid,
                                                    requests=requests))
                    tg.start_soon(self._signals, signals)
                    tg.start_soon(self.notifier.run_watchdog)
                    tg.start_soon(self._heartbeat)
                    for companion in self.companions:
                        tg.start_soon(self._companion, companion, self.address)
                    if self._startup_error is None and self.watcher.digest != served.digest:
                        self.reload("changed_during_start")  # edited since it was loaded
                    await self._stop.wait()
                    self.notifier.stopping()
                    self._close_sessions()
                    tg.cancel_scope.cancel()
        finally:
            self._requests.close()
            requests.close()
            self._requests = None
            store.daemon_stopped(time.time())
            self.notifier.close()

    async def _companion(self, companion: Companion, address: Address) -> None:
        """Run one companion; its failure is logged and the node keeps serving."""
        try:
            await companion(address)
        except Exception:
            log.exception("event=companion_failed companion=%s",
                          getattr(companion, "__qualname__", None)
                          or getattr(getattr(companion, "func", None), "__qualname__", companion))

    async def _signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            log.info("event=signal signal=%s", name)
            if signum == signal.SIGHUP:
                self.reload(name)
            else:
                self.stop(name)

    def _close_sessions(self) -> None:
        """Run the stop hooks, then tell every peer its session ends (CloseSession,
        4.11.1.4); the transport sends these last datagrams as it closes."""
        now = time.monotonic()
        self.service.stopping(now)
        sessions = list(self.node.sessions)
        for session in sessions:
            try:
                self.node.close_session(session, now)
            except Exception:  # one broken session must not keep the others open
                log.exception("event=close_session_failed session=%d", session.local_session_id)
        log.info("event=sessions_closed count=%d", len(sessions))

    async def _heartbeat(self) -> None:
        while True:
            await anyio.sleep(HEARTBEAT_INTERVAL)
            self.service.store.daemon_heartbeat(time.time())
