"""`matter-ota serve`: the OTA provider (QueryImage from the policy engine, images over BDX).

Runs before the IM installer and hands it the provider (``args.update_decider``) and an ACL
(``args.access``) that lets every node of a ``--fabric-file`` fabric invoke the OTA Provider
cluster (what an administrator writes when it commissions a provider; commissioning writes
its own). BDX transfer events reach the provider through ``args.on_event`` (the UDP
transport's callback). Until the runtime service keeps the release state, the state is
rebuilt from provider.yaml, releases.yaml and the store when one of the files changed,
checked at most once a second.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from matter_ota.bdx.sender import SenderConfig
from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._case import load_fabric_files
from matter_ota.commands._common import default_config_path
from matter_ota.config import Config, load_config
from matter_ota.facts import build_state
from matter_ota.im.acl import AccessControl
from matter_ota.node import Node
from matter_ota.operations import Console
from matter_ota.policy.model import ReleaseKey, ReleaseState
from matter_ota.provider.core import OtaProvider
from matter_ota.provider.images import ImageFiles
from matter_ota.provider.node import attach_bdx, requestor_access
from matter_ota.runtime.service import ProviderService
from matter_ota.sources.dcl import DclSource
from matter_ota.sources.dcl_decide import decide_with_dcl_now, resolve_designator
from matter_ota.store import Store, StoreError
from matter_ota.yamlnodes import ConfigError

log = logging.getLogger("matter_ota.serve")

RECHECK_EVERY = 1.0


class FileState:
    """The engine's state from the config files and the store, rebuilt when a file changes."""

    def __init__(self, config_path: Path, store: Store, config: Config) -> None:
        self.config_path = config_path
        self.store = store
        self.config = config
        self._state: ReleaseState | None = None
        self._stamp: tuple[int, ...] = ()
        self._checked = 0.0

    def _files(self) -> list[Path]:
        return [self.config_path, self.config.provider.releases_file]

    def __call__(self) -> ReleaseState:
        now = time.monotonic()
        if self._state is not None and now - self._checked < RECHECK_EVERY:
            return self._state
        self._checked = now
        stamp = tuple(_mtime(p) for p in self._files())
        if self._state is None or stamp != self._stamp:
            try:
                self.config = load_config(self.config_path)
            except ConfigError as exc:  # keep serving the last valid config
                log.warning("event=config_invalid error=%s", exc)
            self._state = build_state(self.config.provider, self.config.releases, self.store)
            self._stamp = stamp
        return self._state


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def install_ota(node: Node, args: argparse.Namespace) -> None:
    """Serve installer: the OTA provider on the node.

    In the daemon the runtime service (``args.service``) holds the config and release state,
    swapped on reload; without one (tools, older callers) the state is rebuilt from the files.
    """
    service: ProviderService | None = getattr(args, "service", None)
    if service is not None:
        config = service.current_config()
        store = service.store
        state: Callable[[], ReleaseState] = service.current_state
    else:
        explicit: Path | None = getattr(args, "config", None)
        path = explicit or default_config_path()
        if not path.exists():
            if explicit is not None:
                raise CliError(f"--config {path}: no such file", EXIT_USAGE)
            log.info("event=ota_disabled reason=no_config")
            return
        try:
            config = load_config(path)
        except ConfigError as exc:
            raise CliError(str(exc), EXIT_USAGE) from None
        state_dir = getattr(args, "state_dir", None) or config.provider.state_dir
        try:
            store = Store.open(state_dir)
        except StoreError as exc:
            raise CliError(str(exc)) from None
        state = FileState(path, store, config)
    fabrics = load_fabric_files(list(getattr(args, "fabric_file", None) or []))
    offset = time.time() - time.monotonic()

    def auto_stop(key: ReleaseKey, reason: str) -> None:
        provider_config = service.current_config().provider if service else config.provider
        Console(provider_config, store, actor="daemon").auto_stop(key, reason)

    # DCL channels: the runtime's DCL source (args.dcl_source, entered in its task group)
    # answers from its cache and fetches in the background; without one they offer nothing.
    source: DclSource | None = getattr(args, "dcl_source", None)
    provider = OtaProvider(
        store, state, fabrics,
        ImageFiles(config.provider.firmware_dir,
                   partial(resolve_designator, source) if source is not None else None),
        decide=partial(decide_with_dcl_now, source),
        wall=lambda now: now + offset, auto_stop=auto_stop,
    )
    limits = config.provider.limits
    # The policy's transfer cap answers Busy with a DelayedActionTime (spreading the fleet); the
    # BDX table's own cap, a refusal mid-update, is only a backstop above it.
    bdx = attach_bdx(node, provider, SenderConfig(
        max_transfers=2 * limits.max_concurrent_transfers, idle_timeout=limits.bdx_idle_timeout))
    if service is not None:
        service.at_stop(bdx.shutdown)  # transfers failed and the devices told, sessions last
    access = AccessControl()
    for fabric in fabrics:
        access.set_entries(fabric.fabric_index, requestor_access(fabric.fabric_index))
    args.update_decider = provider
    args.access = access
    args.on_event = provider.handle_event
    log.info("event=ota_enabled releases=%d fabrics=%d firmware=%s", len(config.releases.releases),
             len(fabrics), config.provider.firmware_dir)
