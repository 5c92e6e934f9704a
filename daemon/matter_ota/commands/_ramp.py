"""Serve companion: staged ramps advance by themselves while failures stay low.

A release with a ``ramp`` (e.g. 1 -> 10 -> 50 -> 100 % with soak times) moves to its next
step once the current percent has soaked for the step's ``after`` and the failure share is
within the release's threshold (:func:`matter_ota.policy.engine.advance_ramp`). The step is an
ordinary audited edit of releases.yaml (``Console.advance_ramp``), which the reload watcher
then applies like an operator's ``increase``.
"""

from __future__ import annotations

import argparse
import logging

import anyio

from matter_ota.facts import outcomes
from matter_ota.messaging.session import Address
from matter_ota.operations import Console, OperationError
from matter_ota.policy.model import ReleaseStatus
from matter_ota.runtime.service import ProviderService

log = logging.getLogger("matter_ota.serve")

#: How often due ramp steps are looked for; a step is due after minutes or hours of soak.
RAMP_PERIOD = 30.0


def advance_due_ramps(service: ProviderService) -> int:
    """Take every due ramp step once; returns how many releases moved."""
    config = service.current_config()
    console = Console(config.provider, service.store, actor="daemon")
    moved = 0
    for release in config.releases.releases:
        if release.status is not ReleaseStatus.LIVE or not release.ramp:
            continue
        try:
            change = console.advance_ramp(release.key, outcomes(service.store, release))
        except OperationError as exc:  # the file changed meanwhile: next round decides again
            log.info("event=ramp_skipped release=%s reason=%s", release.key, exc)
            continue
        if change is not None:
            moved += 1
            log.info("event=ramp_step release=%s percent=%d->%d", release.key,
                     change.before.rollout_percent if change.before else 0,
                     change.after.rollout_percent)
    return moved


async def advance_ramps(args: argparse.Namespace, address: Address) -> None:
    """The companion: look for due ramp steps every RAMP_PERIOD until the daemon stops."""
    service: ProviderService = args.service
    while True:
        try:
            advance_due_ramps(service)
        except Exception:  # a bug here must not stop the daemon or the next rounds
            log.exception("event=ramp_failed")
        await anyio.sleep(RAMP_PERIOD)
