"""The DCL source against a real HTTPS ledger on loopback (own CA, trusted via dcl.ca_bundle)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from dcl_server import FakeLedger, Route, build_ota_image, model_version

from matter_ota.ota_image import DIGESTS
from matter_ota.sources.dcl import DclSource, ImageState
from matter_ota.sources.dcl_cache import cache_key
from matter_ota.sources.dcl_client import DclSettings, DclUnavailable, resolve_base_url

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("no_leaked_threads")]

VID, PID = 0xFFF1, 0x8001


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make_source(
    ledger: FakeLedger, state: Path, clock: Clock | None = None, **kw: Any
) -> DclSource:
    settings = DclSettings(
        url=ledger.base_url,
        ca_bundle=ledger.creds.ca_pem,
        refresh_interval=kw.pop("refresh_interval", 600.0),
        cache_size=kw.pop("cache_size", 64 << 20),
        timeout=kw.pop("timeout", 2.0),
        backoff_initial=10.0,
        backoff_max=60.0,
    )
    return DclSource(
        settings,
        state,
        clock=clock or Clock(),
        download_attempts=kw.pop("download_attempts", 3),
        download_backoff=0.01,
        **kw,
    )


def publish_image(
    ledger: FakeLedger, version: int, *, image: bytes | None = None, **kw: Any
) -> dict[str, Any]:
    image = image if image is not None else build_ota_image(VID, PID, version, os.urandom(5000))
    url = ledger.serve_image(f"v{version}.ota", image, **kw.pop("route", {}))
    return model_version(VID, PID, version, url=url, image=image, **kw)


def state_files(state: Path) -> dict[str, bytes]:
    """Everything in the state dir but the status record (which is meant to change)."""
    return {
        str(p.relative_to(state)): p.read_bytes()
        for p in state.rglob("*")
        if p.is_file() and p.name != "status.json"
    }


async def test_happy_path(ledger: FakeLedger, tmp_path: Path) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(10000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image)])
    async with make_source(ledger, tmp_path / "state") as source:
        first = await source.candidate(VID, PID, 1, wait=False)
        assert first.state is ImageState.FETCHING
        assert first.version is not None and first.version.software_version == 2
        got = await source.candidate(VID, PID, 1, wait=True)
        assert got.state is ImageState.READY, got.reason
        assert got.path is not None and got.path.read_bytes() == image
        assert got.reason == "DCL version 2 applies; image verified"
        again = await source.candidate(VID, PID, 1, wait=False)
        assert again.state is ImageState.READY
    assert len(ledger.requests_for("/images/v2.ota")) == 1


async def test_versions_with_ranges_pick_newest_applicable(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    ledger.publish(
        VID,
        PID,
        [
            publish_image(ledger, 2, max_applicable=1),
            publish_image(ledger, 3, min_applicable=2, max_applicable=2),
            publish_image(ledger, 4, min_applicable=2, max_applicable=3),
        ],
    )
    async with make_source(ledger, tmp_path / "state") as source:
        for current, want in ((1, 2), (2, 4), (3, 4)):
            got = await source.candidate(VID, PID, current, wait=True)
            assert got.state is ImageState.READY
            assert got.version is not None and got.version.software_version == want
        none = await source.candidate(VID, PID, 4, wait=True)
        assert none.version is None
        assert "DCL version 4 is not newer than the device's 4" in none.reason
    # the listing was fetched once: answers are cached for refresh_interval
    assert len(ledger.requests_for(f"/dcl/model/versions/{VID}/{PID}")) == 1


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"valid": False}, "softwareVersionValid is false"),
        ({"plain_http": True}, "otaUrl is not https (http://)"),
    ],
)
async def test_unusable_versions_refused(
    ledger: FakeLedger, tmp_path: Path, kw: dict[str, Any], reason: str
) -> None:
    mv = publish_image(ledger, 2, valid=kw.get("valid", True))
    if kw.get("plain_http"):
        mv["otaUrl"] = mv["otaUrl"].replace("https://", "http://")
    ledger.publish(VID, PID, [mv])
    async with make_source(ledger, tmp_path / "state") as source:
        got = await source.candidate(VID, PID, 1, wait=True)
    assert got.version is None
    assert reason in got.reason
    assert ledger.requests_for("/images/v2.ota") == []


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("checksum", "checksum: sha-256 of the file is"),
        ("size", "size: the server sends"),
        ("vid", "image: identity_mismatch: vendor ID 0xFFF2 in the image, 0xFFF1 was asked"),
        ("version", "image: identity_mismatch: software version 3 in the image, 2 was asked"),
    ],
)
async def test_bad_images_quarantined(
    ledger: FakeLedger, tmp_path: Path, variant: str, reason: str
) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(8000))
    kw: dict[str, Any] = {}
    if variant == "checksum":
        kw["checksum"] = hashlib.sha256(b"something else").digest()
    elif variant == "size":
        kw["size"] = len(image) + 1
    elif variant == "vid":
        image = build_ota_image(VID + 1, PID, 2, os.urandom(8000))
    elif variant == "version":
        image = build_ota_image(VID, PID, 3, os.urandom(8000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image, **kw)])
    state = tmp_path / "state"
    async with make_source(ledger, state) as source:
        got = await source.candidate(VID, PID, 1, wait=True)
        assert got.state is ImageState.QUARANTINED
        assert reason in got.detail
        assert "quarantined" in got.reason
        # never served, and not downloaded again for the same ledger entry
        again = await source.candidate(VID, PID, 1, wait=False)
        assert again.state is ImageState.QUARANTINED and again.path is None
        status = source.status()
        assert [q["reason"] for q in status["quarantined"]] == [got.detail]
    assert len(ledger.requests_for("/images/v2.ota")) == 1
    assert list((state / "dcl" / "images").iterdir()) == []


async def test_quarantine_is_retried_after_a_day(ledger: FakeLedger, tmp_path: Path) -> None:
    # a passing fault of the image host: it served other bytes once, then the right ones
    image = build_ota_image(VID, PID, 2, os.urandom(8000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image)])
    ledger.serve_image("v2.ota", build_ota_image(VID, PID, 2, os.urandom(8000)))
    clock = Clock()
    async with make_source(ledger, tmp_path / "state", clock, refresh_interval=10**6) as source:
        got = await source.candidate(VID, PID, 1, wait=True)
        assert got.state is ImageState.QUARANTINED
        ledger.serve_image("v2.ota", image)
        clock.now += 3600  # still quarantined
        assert (await source.candidate(VID, PID, 1, wait=True)).state is ImageState.QUARANTINED
        clock.now += 24 * 3600
        healed = await source.candidate(VID, PID, 1, wait=True)
        assert healed.state is ImageState.READY, healed.reason
        assert source.cache.all_quarantined() == []
    assert len(ledger.requests_for("/images/v2.ota")) == 2


@pytest.mark.parametrize("checksum_type", [2, 6, 7, 8, 9, 12])
async def test_checksum_types(ledger: FakeLedger, tmp_path: Path, checksum_type: int) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(3000))
    algorithm = DIGESTS[checksum_type]
    hasher = algorithm.new()
    hasher.update(image)
    mv = publish_image(ledger, 2, image=image, checksum=algorithm.finish(hasher))
    mv["otaChecksumType"] = checksum_type
    ledger.publish(VID, PID, [mv])
    async with make_source(ledger, tmp_path / "state") as source:
        got = await source.candidate(VID, PID, 1, wait=True)
    assert got.state is ImageState.READY, got.reason


async def test_truncated_download_resumes_with_range(ledger: FakeLedger, tmp_path: Path) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(300_000))
    route = {"truncate_after": 100_000, "truncations": 2}
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image, route=route)])
    async with make_source(ledger, tmp_path / "state") as source:
        got = await source.candidate(VID, PID, 1, wait=True)
    assert got.state is ImageState.READY, got.reason
    assert got.path is not None and got.path.read_bytes() == image
    ranges = ledger.requests_for("/images/v2.ota")
    assert ranges[0] is None
    assert len(ranges) == 3
    assert all(r is not None and r.startswith("bytes=") for r in ranges[1:])
    assert int(ranges[1][6:-1]) > 0  # type: ignore[index]


@pytest.mark.parametrize("have", ["half", "all"])
async def test_partial_file_from_an_earlier_run(
    ledger: FakeLedger, tmp_path: Path, have: str
) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(200_000))
    mv = publish_image(ledger, 2, image=image)
    ledger.publish(VID, PID, [mv])
    state = tmp_path / "state"
    async with make_source(ledger, state) as source:
        answer = await source.client.versions(VID, PID)
        part = source.cache.part_path(cache_key(answer.versions[0]))
        part.write_bytes(image[: len(image) // 2] if have == "half" else image)
        got = await source.candidate(VID, PID, 1, wait=True)
    assert got.state is ImageState.READY and got.path is not None
    assert got.path.read_bytes() == image
    ranges = ledger.requests_for("/images/v2.ota")
    assert ranges == ([f"bytes={len(image) // 2}-"] if have == "half" else [])


async def test_server_ignoring_range_restarts(ledger: FakeLedger, tmp_path: Path) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(300_000))
    route = {"truncate_after": 100_000, "truncations": 1, "ignore_range": True}
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image, route=route)])
    async with make_source(ledger, tmp_path / "state") as source:
        got = await source.candidate(VID, PID, 1, wait=True)
    assert got.state is ImageState.READY and got.path is not None
    assert got.path.read_bytes() == image


async def test_many_requests_one_download(ledger: FakeLedger, tmp_path: Path) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(2_000_000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image)])
    results: list[Any] = []
    async with make_source(ledger, tmp_path / "state") as source:

        async def ask() -> None:
            results.append(await source.candidate(VID, PID, 1, wait=True))

        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(ask)
    assert len(results) == 20
    assert all(r.state is ImageState.READY for r in results)
    assert len(ledger.requests_for("/images/v2.ota")) == 1


async def test_two_sources_on_one_state_dir_download_once(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    # the daemon and `matter-ota explain` share the state dir
    image = build_ota_image(VID, PID, 2, os.urandom(3_000_000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image)])
    results: list[Any] = []
    async with (
        make_source(ledger, tmp_path / "state") as daemon,
        make_source(ledger, tmp_path / "state") as explain,
    ):

        async def ask(source: DclSource) -> None:
            results.append(await source.candidate(VID, PID, 1, wait=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, daemon)
            tg.start_soon(ask, explain)
    assert [r.state for r in results] == [ImageState.READY, ImageState.READY]
    assert results[0].path.read_bytes() == image
    assert len(ledger.requests_for("/images/v2.ota")) == 1


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        ({"status": 500}, "HTTP 500"),
        ({"status": 404}, "HTTP 404"),
        ({"delay": 3.0}, "ReadTimeout"),
    ],
)
async def test_image_server_failures_are_not_quarantine(
    ledger: FakeLedger, tmp_path: Path, route: dict[str, Any], reason: str
) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(5000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image, route=route)])
    async with make_source(ledger, tmp_path / "state", timeout=1.0) as source:
        got = await source.candidate(VID, PID, 1, wait=True)
        assert got.state is ImageState.FAILED
        assert reason in got.detail
        assert "download failed" in got.reason
        assert source.cache.all_quarantined() == []
        # the daemon does not hammer the image host: FAILED until the retry time
        again = await source.candidate(VID, PID, 1, wait=False)
        assert again.state is ImageState.FAILED
        # the image host heals; after the retry time the download succeeds
        ledger.serve_image("v2.ota", image)
        source.clock.now += 61  # type: ignore[attr-defined]
        healed = await source.candidate(VID, PID, 1, wait=True)
        assert healed.state is ImageState.READY, healed.reason


async def test_404_means_no_versions(ledger: FakeLedger, tmp_path: Path) -> None:
    async with make_source(ledger, tmp_path / "state") as source:
        got = await source.candidate(VID, PID, 1, wait=True)
        assert got.version is None
        assert got.reason == "the DCL lists no software version for this product"
        assert source.client.status.last_error is None


@pytest.mark.parametrize(
    ("route", "error"),
    [
        (Route(status=500), "HTTP 500"),
        (Route(body=b'{"modelVersions": '), "not JSON"),
        (
            Route(body=b'{"modelVersions": {"vid": 65521, "pid": 1, "softwareVersions": []}}'),
            "modelVersions.pid",
        ),
        (Route(body=b"{}", delay=3.0), "timed out"),
    ],
)
async def test_bad_answers_keep_the_previous_state(
    ledger: FakeLedger, tmp_path: Path, route: Route, error: str
) -> None:
    ledger.publish(VID, PID, [publish_image(ledger, 2)])
    state = tmp_path / "state"
    clock = Clock()
    async with make_source(ledger, state, clock, timeout=1.0) as source:
        good = await source.candidate(VID, PID, 1, wait=True)
        assert good.state is ImageState.READY
        before = state_files(state)
        ledger.route(f"/dcl/model/versions/{VID}/{PID}", route)
        clock.now += 601  # past refresh_interval
        got = await source.candidate(VID, PID, 1, wait=True)
        # the last good answer keeps serving; nothing on disk changed
        assert got.state is ImageState.READY and got.path == good.path
        assert state_files(state) == before
        status = source.client.status
        assert status.last_error is not None and error in status.last_error
        assert status.consecutive_failures == 1
        assert status.next_retry_at == clock.now + 10.0
        # backing off: the ledger is not asked again before next_retry_at
        asked = len(ledger.requests_for(f"/dcl/model/versions/{VID}/{PID}"))
        clock.now += 5
        await source.candidate(VID, PID, 1, wait=True)
        assert len(ledger.requests_for(f"/dcl/model/versions/{VID}/{PID}")) == asked
        # the ledger heals: the next try after the backoff succeeds and clears the error state
        ledger.publish(VID, PID, [publish_image(ledger, 2)])
        clock.now += 6
        await source.candidate(VID, PID, 1, wait=True)
        assert status.consecutive_failures == 0 and status.last_success == clock.now


async def test_unreachable_with_nothing_cached(ledger: FakeLedger, tmp_path: Path) -> None:
    ledger.route(f"/dcl/model/versions/{VID}/{PID}", Route(status=503))
    async with make_source(ledger, tmp_path / "state") as source:
        got = await source.candidate(VID, PID, 1, wait=True)
        assert got.version is None
        assert "HTTP 503" in got.reason
        with pytest.raises(DclUnavailable, match="next try in"):
            await source.client.versions(VID, PID)


async def test_restart_with_warm_cache_and_ledger_down(ledger: FakeLedger, tmp_path: Path) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(10000))
    ledger.publish(VID, PID, [publish_image(ledger, 2, image=image)])
    state = tmp_path / "state"
    clock = Clock()
    async with make_source(ledger, state, clock) as source:
        assert (await source.candidate(VID, PID, 1, wait=True)).state is ImageState.READY
    ledger.stop()
    clock.now += 7200  # long past refresh_interval: the restarted daemon will try the ledger
    async with make_source(ledger, state, clock) as source:
        quick = await source.candidate(VID, PID, 1, wait=False)
        assert quick.state is ImageState.READY and quick.path is not None
        assert quick.path.read_bytes() == image
        full = await source.candidate(VID, PID, 1, wait=True)
        assert full.state is ImageState.READY
        assert source.client.status.last_error is not None  # it tried, failed, kept serving
        assert "ConnectError" in source.client.status.last_error


async def test_untrusted_certificate_refused(ledger: FakeLedger, tmp_path: Path) -> None:
    ledger.publish(VID, PID, [publish_image(ledger, 2)])
    settings = DclSettings(url=ledger.base_url, ca_bundle=None, timeout=2.0)
    async with DclSource(settings, tmp_path / "state") as source:
        got = await source.candidate(VID, PID, 1, wait=True)
    assert got.version is None
    assert "CERTIFICATE_VERIFY_FAILED" in got.reason


async def test_cache_is_bounded_lru(ledger: FakeLedger, tmp_path: Path) -> None:
    images = {v: build_ota_image(VID, PID, v, os.urandom(40_000)) for v in (2, 3, 4)}
    ledger.publish(
        VID,
        PID,
        [
            publish_image(ledger, v, image=images[v], min_applicable=v - 1, max_applicable=v - 1)
            for v in images
        ],
    )
    state = tmp_path / "state"
    async with make_source(ledger, state, cache_size=100_000) as source:
        for v in (2, 3, 4):  # device on v-1 gets v; the third image evicts the oldest
            got = await source.candidate(VID, PID, v - 1, wait=True)
            assert got.state is ImageState.READY
        assert source.cache.total_bytes() <= 100_000
        kept = sorted(p.name for p in (state / "dcl" / "images").glob("*.ota"))
        assert len(kept) == 2 and not any(k.startswith(f"{VID:04x}-{PID:04x}-2-") for k in kept)


async def test_concurrent_downloads_respect_the_cache_size(
    ledger: FakeLedger, tmp_path: Path
) -> None:
    images = {v: build_ota_image(VID, PID, v, os.urandom(60_000)) for v in (2, 3)}
    ledger.publish(
        VID,
        PID,
        [
            publish_image(ledger, v, image=images[v], min_applicable=v - 1, max_applicable=v - 1)
            for v in images
        ],
    )
    results: list[Any] = []
    async with make_source(ledger, tmp_path / "state", cache_size=100_000) as source:

        async def ask(current: int) -> None:
            results.append(await source.candidate(VID, PID, current, wait=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, 1)
            tg.start_soon(ask, 2)
        assert source.cache.total_bytes() <= 100_000
    states = sorted(r.state.value for r in results)
    assert states == ["failed", "ready"]
    [failed] = [r for r in results if r.state is ImageState.FAILED]
    assert "cannot hold" in failed.detail


def test_base_url_resolution() -> None:
    assert resolve_base_url("mainnet") == "https://on.dcl.csa-iot.org"
    assert resolve_base_url("TestNet") == "https://on.test-net.dcl.csa-iot.org"
    assert resolve_base_url("https://dcl.example.com/") == "https://dcl.example.com"
    for bad in ("http://dcl.example.com", "ftp://x", "devnet"):
        with pytest.raises(ValueError, match=r"dcl\.url"):
            resolve_base_url(bad)


def test_ledger_json_is_valid_after_run(tmp_path: Path) -> None:
    # a corrupt cache file is ignored (and logged), never fatal
    state = tmp_path / "state"
    (state / "dcl").mkdir(parents=True)
    (state / "dcl" / "ledger.json").write_text("{not json")
    from matter_ota.sources.dcl_client import DclClient

    settings = DclSettings(url="testnet")
    client = DclClient(settings, state, http=None)  # type: ignore[arg-type]
    assert client.cached(VID, PID) is None
    json.dumps(client.status.to_json())
