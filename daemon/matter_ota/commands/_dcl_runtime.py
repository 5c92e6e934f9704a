"""`matter-ota serve`: the DCL source the OTA installer answers DCL channels from.

Created before the installers (``args.dcl_source``, which :mod:`matter_ota.commands._ota` reads)
and entered in the daemon's task group (its background ledger lookups and downloads live
there); a companion keeps the products of the LIVE DCL releases fresh, reading the release
state in force at each round, so a channel switched to the DCL by a reload is fetched ahead
of its first device. Always created: a reload may add a DCL channel without a restart; no
request leaves before a DCL release exists.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import anyio

from matter_ota.config import ProviderConfig
from matter_ota.messaging.session import Address
from matter_ota.runtime.service import ProviderService
from matter_ota.sources.dcl import DclSource
from matter_ota.sources.dcl_decide import live_dcl_products, settings_from_config

log = logging.getLogger("matter_ota.serve")

PREFETCH_PERIOD = 60.0  # seconds between rounds (the ledger itself: dcl.refresh_interval)


def prepare_dcl(args: argparse.Namespace, provider: ProviderConfig) -> DclSource:
    """The daemon's DCL source on the config's ``dcl:`` section and the state directory."""
    source = DclSource(settings_from_config(provider.dcl), Path(args.state_dir))
    args.dcl_source = source
    return source


async def keep_dcl_fresh(args: argparse.Namespace, address: Address) -> None:
    """The companion: prefetch the LIVE DCL releases' products every PREFETCH_PERIOD and at
    once after each reload, until the daemon stops."""
    source: DclSource = args.dcl_source
    service: ProviderService = args.service
    wake = [anyio.Event()]
    service.subscribe(lambda _served: wake[0].set())
    log.info("event=dcl_source url=%s period_s=%.0f", source.settings.base_url, PREFETCH_PERIOD)
    while True:
        products = live_dcl_products(service.current_state())
        try:
            await source.prefetch(products)
        except Exception:  # a bug here must not stop the next rounds
            log.exception("event=dcl_prefetch_failed")
        with anyio.move_on_after(PREFETCH_PERIOD):
            await wake[0].wait()
        wake[0] = anyio.Event()
