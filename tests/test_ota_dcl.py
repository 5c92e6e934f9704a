"""A DCL channel end to end: the provider answers QueryImage through the DCL source
(``decide_with_dcl_now``: cached ledger, background lookups and downloads, Busy meanwhile) and
serves the verified cached image over BDX; the ledger is a real HTTPS server on loopback."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import anyio
import pytest
from dcl_server import FakeLedger, build_ota_image
from ota_world import PID, PRODUCT, VID, World, sha256
from test_dcl_source import make_source, publish_image

from matter_ota.clusters.ota_provider import QueryStatus
from matter_ota.emulator.requestor import Stage
from matter_ota.policy.model import Source
from matter_ota.sources.dcl_decide import decide_with_dcl_now, resolve_designator

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_leaked_threads")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_dcl_channel_offer_download_apply(ledger: FakeLedger, tmp_path: Path) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(30_000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image)])
    async with make_source(ledger, tmp_path / "dcl-state") as source:
        (tmp_path / "site").mkdir()
        world = World(tmp_path / "site", decide=partial(decide_with_dcl_now, source),
                      dcl=partial(resolve_designator, source))
        try:
            world.console.switch_source("production", Source.DCL, PRODUCT, percent=100)
            world.reload()
            r = world.requestor(1)
            world.start(r)
            fleet = world.fleet
            fleet.run(until=fleet.now + 1, settled=False)
            # first query: the ledger lookup runs in the background, the device hears Busy
            assert [a.status for a in r.responses] == [QueryStatus.BUSY]
            with anyio.fail_after(10):
                while source.client.cached(VID, PID) is None:
                    await anyio.sleep(0.02)
            assert r.wait_until is not None
            fleet.run(until=r.wait_until + 1, settled=False)
            # second: the ledger names version 2, its image is being fetched: Busy again
            assert [a.status for a in r.responses] == [QueryStatus.BUSY] * 2
            with anyio.fail_after(10):
                await source.downloads_idle()
            fleet.run()
            assert r.stage is Stage.DONE and r.result == "updated", r.error
            answer = r.responses[-1]
            assert answer.status == QueryStatus.UPDATE_AVAILABLE
            assert (answer.image_uri or "").split("/")[-1].startswith("dcl-fff1-8001-2-")
            assert r.image_sha256 == sha256(image) and r.version == 2
            counts = world.store.outcome_counts("production", VID, PID, 2)
            assert counts.applied == 1
        finally:
            world.close()
