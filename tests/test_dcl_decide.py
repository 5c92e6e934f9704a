"""DCL channels through the policy engine, against a real HTTPS ledger on loopback."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from dcl_server import FakeLedger, build_ota_image, model_version

from matter_ota.config import DclConfig
from matter_ota.policy import transitions
from matter_ota.policy.model import (
    Channel,
    Device,
    ImageInfo,
    Product,
    Query,
    QueryStatus,
    Release,
    ReleaseKey,
    ReleaseState,
    Source,
)
from matter_ota.sources.dcl import DclSource
from matter_ota.sources.dcl_client import DclSettings
from matter_ota.sources.dcl_decide import (
    dcl_image_lookup,
    decide_with_dcl,
    decide_with_dcl_now,
    explain_dcl,
    live_dcl_products,
    resolve_designator,
)
from matter_ota.sources.dcl_status import dcl_row_facts

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_leaked_threads")]

VID, PID = 0xFFF1, 0x8001
PRODUCT = Product(VID, PID)
KEY = ReleaseKey("production", PRODUCT)
NOW = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
DEVICE = Device(fabric=0x1234, node=0x55, vendor_id=VID, product_id=PID, current_version=1)
QUERY = Query(vendor_id=VID, product_id=PID, software_version=1)
IMAGE_PATH = "/images/v2.ota"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def publish(ledger: FakeLedger, *, valid: bool = True, checksum: bytes | None = None) -> bytes:
    image = build_ota_image(VID, PID, 2, os.urandom(20_000))
    url = ledger.serve_image("v2.ota", image)
    ledger.publish(
        VID, PID, [model_version(VID, PID, 2, url=url, image=image, valid=valid, checksum=checksum)]
    )
    return image


def dcl_state(percent: int = 100) -> ReleaseState:
    release = transitions.switch_source(
        None, channel="production", product=PRODUCT, to=Source.DCL, now=NOW, percent=percent
    )
    return ReleaseState(channels=(Channel("production"),), releases={KEY: release})


def source_for(ledger: FakeLedger, state_dir: Path) -> DclSource:
    settings = DclSettings(url=ledger.base_url, ca_bundle=ledger.creds.ca_pem, timeout=2.0)
    return DclSource(settings, state_dir, download_attempts=2)


async def test_daemon_busy_while_fetching_then_update_available(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    image = publish(ledger)
    state = dcl_state()
    async with source_for(ledger, tmp_path / "state") as source:
        first = await decide_with_dcl(source, DEVICE, QUERY, state, 0.0, wait=False)
        assert first.status is QueryStatus.BUSY, first.reason
        assert first.code == "dcl_fetching"
        assert first.delayed_action_time >= 120
        assert "DCL version 2 applies; image download in progress" in first.reason
        assert first.image is not None and first.image.version == 2
        await source.fetch(source.client.cached(VID, PID).versions[0])  # type: ignore[union-attr]
        second = await decide_with_dcl(source, DEVICE, QUERY, state, 0.0, wait=False)
        assert second.status is QueryStatus.UPDATE_AVAILABLE, second.reason
        assert second.image is not None and second.image.version == 2
        assert second.image.designator.startswith("dcl-")
        path = resolve_designator(source, second.image.designator)
        assert path is not None and path.read_bytes() == image
        assert resolve_designator(source, "dcl-../../etc/passwd") is None
    assert len(ledger.requests_for(IMAGE_PATH)) == 1


async def test_explain_waits_and_gives_the_daemons_answer(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    publish(ledger)
    async with source_for(ledger, tmp_path / "state") as source:
        got = await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=True)
        assert got.status is QueryStatus.UPDATE_AVAILABLE
        assert got.reason.endswith("1 -> 2 (v2)")
        # the daemon, asking now, gives the same answer without waiting
        daemon = await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=False)
        assert (daemon.status, daemon.image) == (got.status, got.image)


async def test_quarantined_image_refused_with_the_failed_check(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    publish(ledger, checksum=hashlib.sha256(b"other").digest())
    async with source_for(ledger, tmp_path / "state") as source:
        got = await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=True)
        assert got.status is QueryStatus.NOT_AVAILABLE
        assert got.code == "dcl_quarantined"
        assert "quarantined: checksum: sha-256 of the file is" in got.reason
        daemon = await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=False)
        assert (daemon.status, daemon.reason) == (got.status, got.reason)
    assert len(ledger.requests_for(IMAGE_PATH)) == 1


async def test_no_valid_version_names_why(ledger: FakeLedger, tmp_path: Path) -> None:
    publish(ledger, valid=False)
    async with source_for(ledger, tmp_path / "state") as source:
        got = await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=True)
    assert got.status is QueryStatus.NOT_AVAILABLE
    assert got.code == "dcl_none"
    assert "softwareVersionValid is false" in got.reason
    assert ledger.requests_for(IMAGE_PATH) == []


async def test_device_outside_the_cohort_costs_no_download(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    publish(ledger)
    state = dcl_state(percent=1)
    devices = [dataclasses.replace(DEVICE, node=n) for n in range(1, 40)]
    async with source_for(ledger, tmp_path / "state") as source:
        answers = [await decide_with_dcl(source, d, QUERY, state, 0.0, wait=False) for d in devices]
    outside = [a for a in answers if a.code == "not_in_cohort"]
    assert outside and all(a.status is QueryStatus.NOT_AVAILABLE for a in outside)
    if len(outside) == len(answers):
        assert ledger.requests_for(IMAGE_PATH) == []


async def test_source_switching_back_and_forth(ledger: FakeLedger, tmp_path: Path) -> None:
    publish(ledger)
    local = ImageInfo(
        vendor_id=VID,
        product_id=PID,
        version=3,
        version_string="v3-local",
        size=100,
        digest=b"\0" * 32,
        designator="local-v3.ota",
    )
    state = dcl_state()
    async with source_for(ledger, tmp_path / "state") as source:

        async def ask(release: Release) -> tuple[QueryStatus, str | None, str]:
            s = dataclasses.replace(
                state, releases={KEY: release}, images={KEY: (local,)} if release.image else {}
            )
            d = await decide_with_dcl(source, DEVICE, QUERY, s, 0.0, wait=True)
            return d.status, d.image.designator if d.image else None, d.reason

        dcl = state.releases[KEY]
        status, designator, _ = await ask(dcl)
        assert status is QueryStatus.UPDATE_AVAILABLE and designator is not None
        assert designator.startswith("dcl-")
        # back to local: the DCL row stops, nothing is offered from the ledger
        stopped = transitions.switch_source(
            dcl, channel="production", product=PRODUCT, to=Source.LOCAL, now=NOW
        )
        status, designator, reason = await ask(stopped)
        assert status is QueryStatus.NOT_AVAILABLE and "source switched to local" in reason
        # a local release on the same (channel, product) answers from the firmware folder
        mine = transitions.release_new_set(
            stopped,
            channel="production",
            product=PRODUCT,
            image="local-v3.ota",
            version=3,
            percent=100,
            now=NOW,
        )
        status, designator, _ = await ask(mine)
        assert (status, designator) == (QueryStatus.UPDATE_AVAILABLE, "local-v3.ota")
        # and to the DCL again: the cached, verified image is offered without a new download
        again = transitions.switch_source(
            mine, channel="production", product=PRODUCT, to=Source.DCL, now=NOW
        )
        status, designator, _ = await ask(again)
        assert status is QueryStatus.UPDATE_AVAILABLE and designator is not None
        assert designator.startswith("dcl-")
    assert len(ledger.requests_for(IMAGE_PATH)) == 1


def test_explain_dcl_entry_point(ledger: FakeLedger, tmp_path: Path) -> None:
    publish(ledger)
    config = DclConfig(url=ledger.base_url, ca_bundle=ledger.creds.ca_pem, request_timeout=2.0)
    other = dataclasses.replace(DEVICE, current_version=2)
    answers = explain_dcl(
        config,
        tmp_path / "state",
        [(DEVICE, QUERY), (other, dataclasses.replace(QUERY, software_version=2))],
        dcl_state(),
        0.0,
    )
    assert [a.status for a in answers] == [QueryStatus.UPDATE_AVAILABLE, QueryStatus.NOT_AVAILABLE]
    assert "not newer than the device's 2" in answers[1].reason


async def test_releases_row_facts(ledger: FakeLedger, tmp_path: Path) -> None:
    publish(ledger, checksum=hashlib.sha256(b"other").digest())
    state_dir = tmp_path / "state"
    config = DclConfig(url=ledger.base_url, ca_bundle=ledger.creds.ca_pem)
    assert dcl_row_facts(config, state_dir, [PRODUCT])[PRODUCT].ledger == "DCL not asked yet"
    async with source_for(ledger, state_dir) as source:
        await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=True)
    facts = dcl_row_facts(config, state_dir, [PRODUCT])[PRODUCT]
    assert facts.version == 2 and facts.image is None
    assert len(facts.quarantined) == 1
    assert facts.quarantined[0].startswith("version 2: checksum: sha-256 of the file is")
    assert facts.ledger.startswith("DCL reachable")
    # the ledger goes down: a refresh fails, the row says so and what is being served
    ledger.stop()
    settings = DclSettings(
        url=ledger.base_url, ca_bundle=ledger.creds.ca_pem, timeout=1.0, refresh_interval=0
    )
    async with DclSource(settings, state_dir) as source:
        await source.candidate(VID, PID, 1, wait=True)
    facts = dcl_row_facts(config, state_dir, [PRODUCT])[PRODUCT]
    assert facts.ledger.startswith("DCL unreachable (1 failures, last: GET /dcl/model/versions")
    assert "serving the answers of" in facts.ledger
    assert facts.version == 2
    assert facts.to_json()["dcl_quarantined"] == list(facts.quarantined)


async def test_version_withdrawn_from_the_ledger_is_no_longer_offered(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    image = publish(ledger)
    settings = DclSettings(
        url=ledger.base_url, ca_bundle=ledger.creds.ca_pem, timeout=2.0, refresh_interval=0
    )
    async with DclSource(settings, tmp_path / "state") as source:
        got = await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=True)
        assert got.status is QueryStatus.UPDATE_AVAILABLE
        # the vendor marks the version invalid; the image is still cached but not offered
        url = ledger.image_url("v2.ota")
        ledger.publish(VID, PID, [model_version(VID, PID, 2, url=url, image=image, valid=False)])
        got = await decide_with_dcl(source, DEVICE, QUERY, dcl_state(), 0.0, wait=True)
        assert got.status is QueryStatus.NOT_AVAILABLE
        assert "softwareVersionValid is false" in got.reason


async def test_prefetch_means_no_busy_for_the_first_device(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    publish(ledger)
    state = dcl_state()
    assert live_dcl_products(state) == {(VID, PID)}
    stopped = transitions.switch_source(
        state.releases[KEY], channel="production", product=PRODUCT, to=Source.LOCAL, now=NOW
    )
    assert live_dcl_products(dataclasses.replace(state, releases={KEY: stopped})) == set()
    async with source_for(ledger, tmp_path / "state") as source:
        await source.prefetch(live_dcl_products(state))
        await source.downloads_idle()
        first = await decide_with_dcl(source, DEVICE, QUERY, state, 0.0, wait=False)
    assert first.status is QueryStatus.UPDATE_AVAILABLE, first.reason


async def test_the_sync_query_handler_path(ledger: FakeLedger, tmp_path: Path) -> None:
    image = publish(ledger)
    state = dcl_state()
    async with source_for(ledger, tmp_path / "state") as source:
        first = decide_with_dcl_now(source, DEVICE, QUERY, state, 0.0)
        assert (first.status, first.code) == (QueryStatus.BUSY, "dcl_lookup")
        assert first.delayed_action_time >= 120
        with anyio.fail_after(10):
            while source.client.cached(VID, PID) is None:
                await anyio.sleep(0.01)
        second = decide_with_dcl_now(source, DEVICE, QUERY, state, 0.0)
        assert (second.status, second.code) == (QueryStatus.BUSY, "dcl_fetching")
        await source.downloads_idle()
        third = decide_with_dcl_now(source, DEVICE, QUERY, state, 0.0)
        assert third.status is QueryStatus.UPDATE_AVAILABLE, third.reason
        assert third.image is not None
        lookup = dcl_image_lookup(source)
        served = lookup(third.image.designator)
        assert served is not None
        try:
            assert served.size == len(image)
        finally:
            served.close()
        assert lookup("dcl-fff1-8001-9-0000000000000000") is None
        assert lookup("local.ota") is None
