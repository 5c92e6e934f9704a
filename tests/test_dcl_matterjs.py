"""Interop: matter.js's DCL OTA client (an implementation we did not write) and ours, asked the
same questions about the same ledger on loopback, choose the same version and accept or refuse
the same images.

matter.js (@matter/protocol DclOtaUpdateService) fetches ``/dcl/model/versions/...`` from our
test ledger (so it also confirms the ledger's JSON has the shape a real client expects), picks
the version for a device, then downloads and verifies the image (size, checksum, OTA header).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from dcl_server import FakeLedger, build_ota_image, model_version
from matterjs_support import matterjs_dir, results, run_node

from matter_ota.ota_image import DIGESTS
from matter_ota.sources.dcl import DclSource, ImageState
from matter_ota.sources.dcl_client import DclSettings

pytestmark = pytest.mark.interop

VID = 0xFFF1


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[FakeLedger]:
    (tmp_path / "tls").mkdir()
    server = FakeLedger(tmp_path / "tls").start()
    yield server
    server.stop()


def entry(
    ledger: FakeLedger, pid: int, version: int, *, header_vid: int = VID, **kw: Any
) -> dict[str, Any]:
    """A ledger entry with its image served; ``kw`` overrides model_version's fields."""
    image = build_ota_image(header_vid, pid, version, os.urandom(2000 + version))
    url = ledger.serve_image(f"{pid:04x}-{version}.ota", image)
    checksum_type = kw.pop("checksum_type", 1)
    algorithm = DIGESTS[checksum_type]
    hasher = algorithm.new()
    hasher.update(image)
    doc = model_version(VID, pid, version, url=url, image=image, checksum=algorithm.finish(hasher))
    doc["otaChecksumType"] = checksum_type
    for key, value in kw.items():
        doc[key] = value
    return doc


def both_answers(
    ledger: FakeLedger,
    tmp_path: Path,
    queries: list[tuple[int, int]],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[tuple[int | None, bool]], list[tuple[int | None, bool]]]:
    """(version, image accepted) for each (pid, current): ours and matter.js's."""
    prefix = matterjs_dir()
    monkeypatch.setenv("NODE_EXTRA_CA_CERTS", str(ledger.creds.ca_pem))
    lines = "".join(
        json.dumps({"vid": VID, "pid": pid, "current": current, "download": True}) + "\n"
        for pid, current in queries
    )
    theirs = [
        (r["version"], r.get("download") == "ok")
        for r in results(run_node("dcl.cjs", prefix, ledger.base_url, stdin=lines))
    ]

    async def ask() -> list[tuple[int | None, bool]]:
        settings = DclSettings(url=ledger.base_url, ca_bundle=ledger.creds.ca_pem, timeout=5.0)
        out: list[tuple[int | None, bool]] = []
        async with DclSource(settings, tmp_path / "state", download_attempts=1) as source:
            for pid, current in queries:
                got = await source.candidate(VID, pid, current, wait=True)
                version = None if got.version is None else got.version.software_version
                out.append((version, got.state is ImageState.READY))
        return out

    return anyio.run(ask), theirs


def test_named_cases_agree(
    ledger: FakeLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cases: dict[int, list[dict[str, Any]]] = {
        # ranges: 2 for devices on 1, 3 for 2 only, 4 for 2..3
        0x8001: [
            entry(ledger, 0x8001, 2, maxApplicableSoftwareVersion=1),
            entry(
                ledger, 0x8001, 3, minApplicableSoftwareVersion=2, maxApplicableSoftwareVersion=2
            ),
            entry(
                ledger, 0x8001, 4, minApplicableSoftwareVersion=2, maxApplicableSoftwareVersion=3
            ),
        ],
        0x8002: [entry(ledger, 0x8002, 2), entry(ledger, 0x8002, 3, softwareVersionValid=False)],
        0x8003: [entry(ledger, 0x8003, 2, checksum_type=8), entry(ledger, 0x8003, 1)],
        0x8005: [
            entry(ledger, 0x8005, 2, otaChecksum="qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=")
        ],
        0x8006: [entry(ledger, 0x8006, 2, header_vid=VID + 1)],
        0x8007: [entry(ledger, 0x8007, 2, checksum_type=7)],
    }
    wrong_size = entry(ledger, 0x8009, 2)
    wrong_size["otaFileSize"] = str(int(wrong_size["otaFileSize"]) + 1)
    cases[0x8009] = [wrong_size]
    http = entry(ledger, 0x8008, 2)
    http["otaUrl"] = http["otaUrl"].replace("https://", "http://")
    cases[0x8008] = [http]
    for pid, versions in cases.items():
        ledger.publish(VID, pid, versions)
    queries = [(0x8001, c) for c in (0, 1, 2, 3, 4)]
    queries += [(pid, 1) for pid in range(0x8002, 0x800A)]
    ours, theirs = both_answers(ledger, tmp_path, queries, monkeypatch)
    # One deliberate difference: matter.js 0.17.9 does not compare the download with the
    # ledger's otaFileSize; we do (issue 5), so a wrong size is quarantined here only.
    at = queries.index((0x8009, 1))
    assert (ours[at], theirs[at]) == ((2, False), (2, True))
    assert ours[:at] + ours[at + 1 :] == theirs[:at] + theirs[at + 1 :]
    # and the answers are the ones the cases are about
    assert dict(zip(queries, ours, strict=True)) == {
        (0x8001, 0): (2, True),
        (0x8001, 1): (2, True),
        (0x8001, 2): (4, True),
        (0x8001, 3): (4, True),
        (0x8001, 4): (None, False),
        (0x8002, 1): (2, True),
        (0x8003, 1): (2, True),
        (0x8004, 1): (None, False),
        (0x8005, 1): (2, False),
        (0x8006, 1): (2, False),
        (0x8007, 1): (2, True),
        (0x8008, 1): (None, False),
        (0x8009, 1): (2, False),
    }


def test_random_ledgers_agree(
    ledger: FakeLedger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(0xDC1)
    queries: list[tuple[int, int]] = []
    for pid in range(0x9000, 0x9000 + 25):
        versions = []
        for version in sorted(rng.sample(range(1, 12), rng.randint(0, 4))):
            low = rng.randint(0, version - 1)
            high = rng.randint(low, version - 1)
            versions.append(
                entry(
                    ledger,
                    pid,
                    version,
                    softwareVersionValid=rng.random() > 0.2,
                    minApplicableSoftwareVersion=low,
                    maxApplicableSoftwareVersion=high,
                    checksum_type=rng.choice([1, 7, 8]),
                )
            )
        if versions:
            ledger.publish(VID, pid, versions)
        queries += [(pid, rng.randint(0, 11)) for _ in range(3)]
    ours, theirs = both_answers(ledger, tmp_path, queries, monkeypatch)
    assert ours == theirs
    offered = [v for v, _ in ours if v is not None]
    assert len(offered) >= 10  # the draw exercises real choices, not only "nothing"
