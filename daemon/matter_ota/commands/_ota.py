"""`matter-ota serve`: the OTA provider (QueryImage from the policy engine, images over BDX).

Runs after the CASE installer and before the IM installer, and hands the IM server the provider
(``args.update_decider``). The provider works on the node's one fabric table and ACL
(:func:`~matter_ota.commands._node_state.node_state`, shared with CASE, IM and commissioning);
every node of a ``--fabric-file`` fabric may invoke the OTA Provider cluster (what an
administrator writes when it commissions a provider; a commissioned fabric's ACL is what its
administrator wrote, kept in the store). BDX transfer events reach the provider through
``args.on_event`` (the UDP transport's callback). Without the runtime service (tools, tests)
the provider serves the config as it is at start; only the daemon's reload watcher re-reads it.
"""

from __future__ import annotations

import argparse
import logging
import time
from functools import partial
from pathlib import Path

from matter_ota.bdx.sender import SenderConfig
from matter_ota.cli import EXIT_USAGE, CliError
from matter_ota.commands._common import default_config_path
from matter_ota.commands._node_state import node_state
from matter_ota.config import load_config
from matter_ota.node import Node
from matter_ota.operations import Console
from matter_ota.policy.model import ReleaseKey
from matter_ota.provider.core import OtaProvider, ProviderSettings
from matter_ota.provider.images import ImageFiles
from matter_ota.provider.node import attach_bdx, requestor_access
from matter_ota.runtime.service import ProviderService
from matter_ota.sources.dcl import DclSource
from matter_ota.sources.dcl_decide import decide_with_dcl_now, resolve_designator
from matter_ota.store import Store, StoreError
from matter_ota.yamlnodes import ConfigError

log = logging.getLogger("matter_ota.serve")

def install_ota(node: Node, args: argparse.Namespace) -> None:
    """Serve installer: the OTA provider on the node.

    In the daemon the runtime service (``args.service``) holds the config and release state,
    swapped on reload (the reload watcher is the one place that re-reads the files); without
    one (tools, tests) a service is made from the config as it is now.
    """
    service: ProviderService | None = getattr(args, "service", None)
    if service is None:
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
        service = ProviderService(config, store)
    config = service.current_config()
    store = service.store
    shared = node_state(node, args)
    fabrics = shared.fabrics
    limits = config.provider.limits  # restart-only: sized once at start
    offset = time.time() - time.monotonic()

    def auto_stop(key: ReleaseKey, reason: str) -> None:
        provider_config = service.current_config().provider
        Console(provider_config, store, actor="daemon").auto_stop(key, reason)

    # DCL channels: the runtime's DCL source (args.dcl_source, entered in its task group)
    # answers from its cache and fetches in the background; without one they offer nothing.
    source: DclSource | None = getattr(args, "dcl_source", None)
    provider = OtaProvider(
        store, service.current_state, fabrics,
        ImageFiles(config.provider.firmware_dir,
                   partial(resolve_designator, source) if source is not None else None),
        decide=partial(decide_with_dcl_now, source),
        wall=lambda now: now + offset, auto_stop=auto_stop,
        settings=ProviderSettings(notify_timeout=limits.update_applied_timeout),
    )
    # The engine answers Busy at max_concurrent_transfers; the BDX table's hard bound leaves
    # headroom for devices offered just before the cap was reached, so they are not refused.
    bdx = attach_bdx(node, provider, SenderConfig(
        idle_timeout=limits.bdx_idle_timeout,
        max_transfers=2 * limits.max_concurrent_transfers,
    ))
    service.at_stop(bdx.shutdown)  # transfers failed and the devices told, sessions last
    for index in sorted(shared.provisioned):
        shared.access.set_entries(index, requestor_access(index))
    args.update_decider = provider
    args.on_event = provider.handle_event
    log.info("event=ota_enabled releases=%d fabrics=%d firmware=%s", len(config.releases.releases),
             len(fabrics), config.provider.firmware_dir)
