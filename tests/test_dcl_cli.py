"""The operator's view of a DCL channel: `source`, `explain` and `releases` against a real HTTPS
ledger on loopback (own CA, trusted through dcl.ca_bundle in provider.yaml)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dcl_server import FakeLedger, build_ota_image, model_version

from matter_ota.cli import main

VID, PID = 0xFFF1, 0x8001
CFID = "1122334455667788"


class Site:
    def __init__(self, root: Path, ledger: FakeLedger, capsys: pytest.CaptureFixture[str]):
        self.root, self.ledger, self.capsys = root, ledger, capsys
        (root / "config").mkdir()
        self.provider = root / "config" / "provider.yaml"
        self.provider.write_text(
            "state_dir: ../state\nfirmware_dir: ../firmware\n"
            f"dcl:\n  url: {ledger.base_url}\n  ca_bundle: {ledger.creds.ca_pem}\n"
            "  request_timeout: 2s\n"
        )
        (root / "config" / "releases.yaml").write_text("releases:\n")
        self.state = root / "state"

    def run(self, *args: str, code: int = 0) -> tuple[str, str]:
        got = main([*args, "--config", str(self.provider), "--state-dir", str(self.state)])
        out, err = self.capsys.readouterr()
        assert got == code, f"{args} -> {got}\n{out}\n{err}"
        return out, err

    def explain(self, version: int = 1) -> dict[str, Any]:
        out, _ = self.run(
            "explain",
            "--fabric",
            CFID,
            "--node",
            "7",
            "--vendor-id",
            str(VID),
            "--product-id",
            str(PID),
            "--version",
            str(version),
            "--json",
        )
        answer: dict[str, Any] = json.loads(out)
        return answer

    def table(self) -> list[dict[str, Any]]:
        out, _ = self.run("releases", "--json")
        rows: list[dict[str, Any]] = json.loads(out)
        return rows


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Site]:
    (tmp_path / "tls").mkdir()
    ledger = FakeLedger(tmp_path / "tls").start()
    yield Site(tmp_path, ledger, capsys)
    ledger.stop()


def publish(site: Site, *, checksum: bytes | None = None) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(30_000))
    url = site.ledger.serve_image("v2.ota", image)
    site.ledger.publish(
        VID, PID, [model_version(VID, PID, 2, url=url, image=image, checksum=checksum)]
    )


def test_dcl_channel_from_the_cli(site: Site) -> None:
    publish(site)
    site.run("source", "--channel", "production", "--product", "FFF1:8001", "dcl", "--yes")
    [row] = site.table()
    assert (row["source"], row["editable"], row["version"]) == ("dcl", False, None)
    assert row["dcl"]["ledger"] == "DCL not asked yet"

    # explain consults the ledger, fetches and verifies the image: the daemon's answer
    answer = site.explain()
    assert (answer["status"], answer["version"]) == ("UpdateAvailable", 2)
    assert len(site.ledger.requests_for("/images/v2.ota")) == 1
    [row] = site.table()
    assert row["version"] == 2 and row["dcl"]["image"].startswith("dcl-fff1-8001-2-")
    assert row["dcl"]["ledger"].startswith("DCL reachable")
    out, _ = site.run("releases")
    assert "dcl-fff1-8001-2-" in out and "no (dcl)" in out

    # a device already on the newest version: the ledger's reason
    assert "not newer than the device's 2" in site.explain(version=2)["reason"]

    # DCL rows are read-only; switching back to local stops the release
    _, err = site.run("increase", "--channel", "production", "--percent", "50", code=1)
    assert "read-only" in err
    site.run("source", "--channel", "production", "--product", "FFF1:8001", "local", "--yes")
    assert site.table()[0]["status"] == "INACTIVE"
    answer = site.explain()
    assert answer["status"] == "NotAvailable" and "source switched to local" in answer["reason"]
    # ... and back to the DCL: the cached image serves, no new download
    site.run("source", "--channel", "production", "--product", "FFF1:8001", "dcl", "--yes")
    assert site.explain()["status"] == "UpdateAvailable"
    assert len(site.ledger.requests_for("/images/v2.ota")) == 1


def test_quarantine_shows_in_explain_and_releases(site: Site) -> None:
    publish(site, checksum=hashlib.sha256(b"not this image").digest())
    site.run("source", "--channel", "production", "--product", "FFF1:8001", "dcl", "--yes")
    answer = site.explain()
    assert (answer["status"], answer["version"]) == ("NotAvailable", None)
    assert "quarantined: checksum: sha-256 of the file is" in answer["reason"]
    [row] = site.table()
    assert row["dcl"]["quarantined"][0].startswith("version 2: checksum:")
    out, _ = site.run("releases")
    assert "quarantined version 2: checksum" in out


def test_ledger_down_is_visible(site: Site) -> None:
    publish(site)
    site.run("source", "--channel", "production", "--product", "FFF1:8001", "dcl", "--yes")
    assert site.explain()["status"] == "UpdateAvailable"
    site.ledger.stop()
    # refresh_interval has not passed: the cached answer serves, nothing is asked
    assert site.explain()["status"] == "UpdateAvailable"
    status = site.state / "dcl" / "status.json"
    doc = json.loads(status.read_text())
    doc["last_success"] -= 7 * 86400  # make the cache stale: the next explain asks the ledger
    status.write_text(json.dumps(doc))
    ledger_json = site.state / "dcl" / "ledger.json"
    cached = json.loads(ledger_json.read_text())
    for product in cached["products"]:
        product["fetched_at"] -= 7 * 86400
    ledger_json.write_text(json.dumps(cached))
    assert site.explain()["status"] == "UpdateAvailable"  # served from the cache
    [row] = site.table()
    assert row["dcl"]["ledger"].startswith("DCL unreachable (1 failures")
    assert "serving the answers of" in row["dcl"]["ledger"]


def test_dcl_status_and_clear_quarantine(site: Site) -> None:
    image = build_ota_image(VID, PID, 2, os.urandom(30_000))
    url = site.ledger.serve_image("v2.ota", build_ota_image(VID, PID, 2, os.urandom(30_000)))
    site.ledger.publish(VID, PID, [model_version(VID, PID, 2, url=url, image=image)])
    site.run("source", "--channel", "production", "--product", "FFF1:8001", "dcl", "--yes")
    assert site.explain()["status"] == "NotAvailable"  # the host served other bytes
    out, _ = site.run("dcl", "status", "--json")
    doc = json.loads(out)
    assert doc["ledger"].startswith("DCL reachable")
    assert doc["products"][0]["product"] == "FFF1:8001"
    assert [v["version"] for v in doc["products"][0]["versions"]] == [2]
    [quarantined] = doc["quarantined"]
    assert quarantined["reason"].startswith("checksum:")
    out, _ = site.run("dcl", "status")
    assert f"quarantined {quarantined['key']}" in out
    _, err = site.run("dcl", "clear-quarantine", "nope", code=1)
    assert "not quarantined: nope" in err
    # the host is fixed; the operator clears the quarantine; explain downloads again
    site.ledger.serve_image("v2.ota", image)
    out, _ = site.run("dcl", "clear-quarantine", quarantined["key"])
    assert "cleared" in out
    assert site.explain()["status"] == "UpdateAvailable"
    doc = json.loads(site.run("dcl", "status", "--json")[0])
    assert doc["quarantined"] == [] and len(doc["images"]) == 1


def test_explain_many_devices_asks_the_ledger_once(site: Site) -> None:
    publish(site)
    site.run("source", "--channel", "production", "--product", "FFF1:8001", "dcl", "--yes")
    listing = site.root / "nodes.jsonl"
    listing.write_text(
        "".join(json.dumps({"node": n, "version": n % 3}) + "\n" for n in range(300))
    )
    out, _ = site.run(
        "explain",
        "--fabric",
        CFID,
        "--vendor-id",
        str(VID),
        "--product-id",
        str(PID),
        "--nodes-from",
        str(listing),
    )
    answers = [json.loads(line) for line in out.splitlines()]
    assert len(answers) == 300
    by_version = {n % 3: set() for n in range(3)}  # type: dict[int, set[str]]
    for a in answers:
        by_version[a["node"] % 3].add(a["status"])
    assert by_version == {0: {"UpdateAvailable"}, 1: {"UpdateAvailable"}, 2: {"NotAvailable"}}
    assert len(site.ledger.requests_for(f"/dcl/model/versions/{VID}/{PID}")) == 1
    assert len(site.ledger.requests_for("/images/v2.ota")) == 1
