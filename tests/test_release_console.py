"""The release console end to end: the seed's whole walk through the real CLI, every refusal,
comments kept, invalid YAML keeping the last valid config, concurrency with a store writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from matter_ota.cli import main
from matter_ota.config import load_config
from matter_ota.ota_image import build_image
from matter_ota.reload import ConfigWatcher, Invalid, Reloaded
from matter_ota.store import DeviceRecord, Store
from matter_ota.yamlnodes import ConfigError

CFID = "2906C908D115D362"
FLEET = 200
DAEMON_DIR = Path(__file__).resolve().parent.parent / "daemon"

PROVIDER = """\
# Test provider: a production channel (implicit) and a beta channel for one node.
state_dir: ../state
firmware_dir: ../firmware
dcl:
  url: https://127.0.0.1:9   # loopback, nothing listens: tests never reach the real ledger
channels:
  production: {}
  beta:
    node_ids: [0x9999]   # the lab device
"""

RELEASES = """\
# Kitchen lights. Reviewed in git; the CLI edits this file too.
#
# Ask the release manager before changing production.
releases:   # the CLI appends below
# end of file: keep this comment
"""


@dataclass
class Site:
    root: Path
    provider: Path
    releases: Path
    state: Path
    images: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str, code: int = 0) -> tuple[str, str]:
        """Run `matter-ota ARGS --config ... --state-dir ...`; check the exit code."""
        argv = [*args, "--config", str(self.provider), "--state-dir", str(self.state)]
        try:
            got = main(argv)
        except SystemExit as exc:  # argparse usage errors
            got = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        assert got == code, f"matter-ota {' '.join(args)} -> {got}, want {code}\n{out}\n{err}"
        if code:
            assert "Traceback" not in err
            assert err.strip(), "a refusal says why"
        return out, err

    def image(self, version: int, product_id: int = 0x8001) -> Path:
        path = self.images / f"light-{version}-{product_id:04x}.ota"
        if not path.exists():
            path.write_bytes(build_image(
                b"payload %d " % version * 50, vendor_id=0xFFF1, product_id=product_id,
                software_version=version, software_version_string=f"{version}.0"))
        return path

    def yaml(self) -> dict[str, Any]:
        data = yaml.safe_load(self.releases.read_text())
        assert isinstance(data, dict)
        return data

    def row(self) -> dict[str, Any]:
        rows = self.yaml()["releases"]
        assert len(rows) == 1
        return dict(rows[0])

    def table(self) -> list[dict[str, Any]]:
        out, _ = self.run("releases", "--json")
        rows = json.loads(out)
        assert isinstance(rows, list)
        return rows

    def explain(self, nodes: range = range(1, FLEET + 1), version: int = 1
                ) -> dict[int, dict[str, Any]]:
        listing = self.root / "nodes.jsonl"
        listing.write_text("".join(json.dumps({"node": n}) + "\n" for n in nodes))
        out, _ = self.run("explain", "--fabric", CFID, "--vendor-id", "0xFFF1",
                          "--product-id", "0x8001", "--version", str(version),
                          "--nodes-from", str(listing))
        answers = [json.loads(line) for line in out.splitlines()]
        assert all(set(a) == {"node", "status", "version", "reason"} for a in answers)
        return {a["node"]: a for a in answers}

    def offered(self, version: int | None = None) -> set[int]:
        answers = self.explain()
        chosen = {n for n, a in answers.items() if a["status"] == "UpdateAvailable"}
        if version is not None:
            assert {answers[n]["version"] for n in chosen} <= {version}
        return chosen


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Site]:
    config = tmp_path / "config"
    config.mkdir()
    (tmp_path / "images").mkdir()
    provider = config / "provider.yaml"
    provider.write_text(PROVIDER)
    releases = config / "releases.yaml"
    releases.write_text(RELEASES)
    s = Site(tmp_path, provider, releases, tmp_path / "state", tmp_path / "images", capsys)
    # The daemon has seen the fleet: FLEET devices on production running version 1.
    with Store.open(s.state) as store:
        store.import_devices(
            DeviceRecord(CFID, node, 0xFFF1, 0x8001, 1, None, "production", 1000.0, 1000.0,
                         "NotAvailable")
            for node in range(1, FLEET + 1))
    yield s


def _comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")
            or "  # " in line]


def _within_one(count: int, percent: int, fleet: int = FLEET) -> bool:
    return abs(count - percent * fleet / 100) <= 1


TABLE_KEYS = {"channel", "product", "image", "version", "source", "status", "rollout_percent",
              "released_at", "editable", "offered", "downloading", "applied", "failed"}


def test_the_seed_walk(site: Site) -> None:
    """release 10 % -> stop -> resume -> increase -> overwrite same set -> new set ->
    source dcl -> back to local, checking the YAML, the table, explain and history."""
    original_comments = _comments(RELEASES)

    # 1. Release version 2 to a new 10 % set.
    out, _ = site.run("release", "--channel", "production", "--image", str(site.image(2)),
                      "--percent", "10", "--new-set")
    assert "LIVE, 10 %" in out
    row = site.row()
    assert (row["status"], row["rollout_percent"], row["version"], row["source"]) == (
        "LIVE", 10, 2, "local")
    assert (site.root / "firmware" / row["image"]).exists()  # copied into firmware_dir
    seed = row["cohort_seed"]
    [entry] = site.table()
    assert set(entry) == TABLE_KEYS
    assert entry["released_at"].endswith("Z") and entry["editable"] is True
    assert (entry["channel"], entry["product"], entry["status"], entry["rollout_percent"]) == (
        "production", "FFF1:8001", "LIVE", 10)
    first = site.offered(version=2)
    assert _within_one(len(first), 10)

    # 2. Stop: nobody new gets it.
    site.run("stop", "--channel", "production")
    assert site.row()["status"] == "INACTIVE"
    assert site.table()[0]["status"] == "INACTIVE"
    answers = site.explain()
    assert all(a["status"] == "NotAvailable" for a in answers.values())
    assert "stopped" in answers[1]["reason"]

    # 3. Resume: exactly the same devices, same percent, same seed.
    site.run("resume", "--channel", "production")
    assert site.row()["cohort_seed"] == seed and site.row()["rollout_percent"] == 10
    assert site.offered(version=2) == first

    # 4. Increase: a superset.
    site.run("increase", "--channel", "production", "--percent", "30")
    assert site.row()["rollout_percent"] == 30
    grown = site.offered(version=2)
    assert first <= grown and _within_one(len(grown), 30)

    # 5. Overwrite the image on the same set: same devices, new version.
    site.run("release", "--channel", "production", "--image", str(site.image(3)), "--same-set")
    row = site.row()
    assert (row["cohort_seed"], row["rollout_percent"], row["version"]) == (seed, 30, 3)
    assert site.offered(version=3) == grown

    # 6. Release to a new set: new seed, new percent.
    site.run("release", "--channel", "production", "--image", str(site.image(4)), "--new-set",
             "--percent", "10")
    row = site.row()
    assert row["cohort_seed"] != seed and row["rollout_percent"] == 10 and row["version"] == 4
    fresh = site.offered(version=4)
    assert _within_one(len(fresh), 10)
    assert fresh != first  # a new random draw (equal only with negligible probability)

    # 7. Source DCL: the row follows the ledger and is read-only.
    site.run("source", "--channel", "production", "dcl", "--yes")
    row = site.row()
    assert row["source"] == "dcl" and "image" not in row and row["status"] == "LIVE"
    [entry] = site.table()
    assert (entry["source"], entry["editable"], entry["image"], entry["version"]) == (
        "dcl", False, None, None)
    answers = site.explain()
    assert all(a["status"] == "NotAvailable" for a in answers.values())
    assert "DCL" in answers[1]["reason"]
    for edit in (("stop",), ("resume",), ("increase", "--percent", "50")):
        _, err = site.run(*edit, "--channel", "production", code=1)
        assert "read-only" in err and "source --channel production local" in err
    _, err = site.run("release", "--channel", "production", "--image", str(site.image(5)),
                      "--same-set", code=1)
    assert "read-only" in err
    assert not (site.root / "firmware" / site.image(5).name).exists()  # refused: not copied

    # 8. Back to local: the DCL release stops.
    site.run("source", "--channel", "production", "local", "--yes")
    row = site.row()
    assert row["source"] == "dcl" and row["status"] == "INACTIVE"
    assert site.table()[0]["status"] == "INACTIVE"
    assert site.offered() == set()

    # History: every transition, in order, with before -> after.
    out, _ = site.run("history", "--json")
    entries = [json.loads(line) for line in out.splitlines()]
    assert [e["action"] for e in entries] == [
        "release --new-set", "stop", "resume", "increase", "release --same-set",
        "release --new-set", "source dcl", "source local"]
    assert entries[0]["before"] is None and entries[0]["after"]["rollout_percent"] == 10
    assert entries[1]["before"]["status"] == "LIVE" and entries[1]["after"]["status"] == "INACTIVE"
    assert entries[3]["before"]["rollout_percent"] == 10
    assert entries[3]["after"]["rollout_percent"] == 30
    assert all(e["actor"].startswith("cli") and e["product"] == "FFF1:8001" for e in entries)
    out, _ = site.run("history")
    assert "rollout_percent: 10 -> 30" in out and "status: LIVE -> INACTIVE" in out

    # The operator's comments all survived eight edits.
    final = site.releases.read_text()
    for comment in original_comments:
        assert comment in final
    assert final.startswith("# Kitchen lights.")


def test_table_for_people_and_counts(site: Site) -> None:
    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "50")
    with Store.open(site.state) as store:
        for node, state in ((1, "offered"), (2, "downloading"), (3, "applied"), (4, "failed")):
            store.set_outcome(channel="production", vendor_id=0xFFF1, product_id=0x8001,
                              software_version=2, compressed_fabric_id=CFID, node_id=node,
                              state=state, now=2000.0)
    [entry] = site.table()
    assert [entry[k] for k in ("offered", "downloading", "applied", "failed")] == [1, 1, 1, 1]
    out, _ = site.run("releases")
    header, line = out.splitlines()
    assert header.split()[:3] == ["IMAGE", "CHANNEL", "PRODUCT"]
    assert "production" in line and "FFF1:8001" in line and "50%" in line and "LIVE" in line


@pytest.mark.parametrize("percent", ["0", "101", "10.5", "ten", "-5", "10%", "", "1e2"])
def test_bad_percent_refused(site: Site, percent: str) -> None:
    _, err = site.run("release", "--channel", "production", "--image", str(site.image(2)),
                      "--percent", percent, code=2)
    assert "integer from 1 to 100" in err
    assert not site.yaml().get("releases")


def test_refusals(site: Site) -> None:
    image = str(site.image(2))
    base = ("release", "--channel", "production", "--image")
    # Nothing to stop, resume or increase yet; same set needs a release.
    _, err = site.run("stop", "--channel", "production", code=1)
    assert "no release yet" in err
    _, err = site.run(*base, image, "--same-set", code=1)
    assert "no release yet" in err
    _, err = site.run(*base, image, code=1)
    assert "--percent" in err
    # Unknown channel.
    _, err = site.run("release", "--channel", "nightly", "--image", image, "--percent", "5",
                      code=1)
    assert "unknown channel 'nightly'" in err and "beta, production" in err
    # Bad images: garbage, truncated, missing.
    garbage = site.images / "garbage.ota"
    garbage.write_bytes(b"\x00" * 64)
    _, err = site.run(*base, str(garbage), "--percent", "5", code=1)
    assert "not a valid OTA image" in err
    truncated = site.images / "truncated.ota"
    truncated.write_bytes(Path(image).read_bytes()[:-10])
    _, err = site.run(*base, str(truncated), "--percent", "5", code=1)
    assert "not a valid OTA image" in err
    _, err = site.run(*base, str(site.images / "nope.ota"), "--percent", "5", code=1)
    assert "cannot read" in err
    # Bad VID:PID, and a product that is not the image's.
    for bad in ("XYZ", "FFF1", "FFF1:8001:1", "10000:1"):
        _, err = site.run(*base, image, "--percent", "5", "--product", bad, code=2)
        assert "--product" in err
    _, err = site.run(*base, image, "--percent", "5", "--product", "FFF1:9999", code=1)
    assert "is an image for FFF1:8001, not FFF1:9999" in err
    assert not site.yaml().get("releases")  # none of that wrote anything
    firmware = site.root / "firmware"
    assert not firmware.exists() or not any(firmware.iterdir())  # nor copied an image

    # With a release: decrease, repeat stop/resume, missing --new-set/--same-set.
    site.run(*base, image, "--percent", "20")
    _, err = site.run("increase", "--channel", "production", "--percent", "10", code=1)
    assert "larger percent" in err
    _, err = site.run("increase", "--channel", "production", "--percent", "20", code=1)
    assert "larger percent" in err
    _, err = site.run("resume", "--channel", "production", code=1)
    assert "already LIVE" in err
    _, err = site.run(*base, str(site.image(3)), "--percent", "5", code=1)
    assert "--same-set" in err and "--new-set" in err
    _, err = site.run(*base, str(site.image(3)), "--same-set", "--percent", "5", code=1)
    assert "would drop devices" in err
    site.run("stop", "--channel", "production")
    _, err = site.run("stop", "--channel", "production", code=1)
    assert "already stopped" in err
    _, err = site.run("increase", "--channel", "production", "--percent", "50", code=1)
    assert "resume it first" in err
    # source needs --yes without a terminal.
    _, err = site.run("source", "--channel", "production", "dcl", code=2)
    assert "--yes" in err
    assert site.row()["source"] == "local"
    # Several products on one channel: which one must be said.
    site.run(*base, str(site.image(2, product_id=0x8002)), "--percent", "5")
    _, err = site.run("stop", "--channel", "production", code=1)
    assert "--product" in err and "FFF1:8001" in err and "FFF1:8002" in err
    site.run("resume", "--channel", "production", "--product", "FFF1:8001")
    # Only the refused commands wrote nothing: four transitions in the log.
    out, _ = site.run("history", "--json")
    assert [json.loads(x)["action"] for x in out.splitlines()] == [
        "release --new-set", "stop", "release --new-set", "resume"]


def test_image_name_too_long_for_the_image_uri(site: Site) -> None:
    # The file name is the BDX designator: an ImageURI carries at most 256 characters.
    long = site.images / ("x" * 230 + ".ota")
    long.write_bytes(site.image(2).read_bytes())
    _, err = site.run("release", "--channel", "production", "--image", str(long),
                      "--percent", "10", code=1)
    assert "at most 233 fit" in err and "shorter name" in err
    assert not site.yaml().get("releases")
    firmware = site.root / "firmware"
    assert not firmware.exists() or not any(firmware.iterdir())


def test_image_name_clash_in_firmware_dir(site: Site) -> None:
    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "10")
    other = site.root / "elsewhere"
    other.mkdir()
    clash = other / site.image(2).name
    clash.write_bytes(build_image(b"other", vendor_id=0xFFF1, product_id=0x8001,
                                  software_version=7, software_version_string="7"))
    _, err = site.run("release", "--channel", "production", "--image", str(clash),
                      "--same-set", code=1)
    assert "exists with different content" in err
    # The identical file is fine (already there), and so is one inside firmware_dir.
    site.run("release", "--channel", "production", "--image", str(site.image(2)), "--same-set")
    inside = site.root / "firmware" / site.image(2).name
    site.run("release", "--channel", "production", "--image", str(inside), "--same-set")


def test_invalid_yaml_keeps_last_valid(site: Site) -> None:
    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "10")
    valid = site.releases.read_text()
    broken = valid.replace("rollout_percent: 10", "rollout_percent: 500")
    site.releases.write_text(broken)
    # The table still shows what serves, with the file:line warning.
    out, err = site.run("releases", "--json")
    assert json.loads(out)[0]["rollout_percent"] == 10
    line = broken.splitlines().index("    rollout_percent: 500") + 1
    assert f"releases.yaml:{line}" in err and "last valid" in err
    # Edits are refused and the broken file is left as the operator wrote it.
    _, err = site.run("stop", "--channel", "production", code=1)
    assert f"releases.yaml:{line}" in err and "fix it by hand" in err
    assert site.releases.read_text() == broken
    # explain answers from the last valid config too.
    assert len(site.offered(version=2)) in (19, 20, 21)

    # The daemon's watcher: the invalid edit is reported with its line, the config stays.
    site.releases.write_text(valid)
    watcher = ConfigWatcher(load_config(site.provider), lambda: load_config(site.provider),
                            lambda c: [c.provider.path, c.provider.releases_file],
                            errors=(ConfigError,))
    site.releases.write_text(broken)
    events = [watcher.check(4.0 + t * 0.5) for t in range(1, 8)]
    invalid = [e for e in events if isinstance(e, Invalid)]
    assert len(invalid) == 1 and invalid[0].line == line and "rollout_percent" in invalid[0].reason
    assert watcher.current.releases.releases[0].rollout_percent == 10
    # A CLI edit on the repaired file is picked up by the watcher (the daemon's reload).
    site.releases.write_text(valid)
    site.run("increase", "--channel", "production", "--percent", "40")
    events = [watcher.check(8.0 + t * 0.5) for t in range(1, 8)]
    assert any(isinstance(e, Reloaded) for e in events)
    assert watcher.current.releases.releases[0].rollout_percent == 40


def test_explain_single_device_and_fabric_lookup(site: Site) -> None:
    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "100")
    args = ("explain", "--node", "7", "--vendor-id", "0xFFF1", "--product-id", "0x8001",
            "--version", "1")
    out, _ = site.run(*args, "--fabric", CFID, "--json")
    assert json.loads(out) == {"node": 7, "status": "UpdateAvailable", "version": 2,
                               "reason": json.loads(out)["reason"]}
    out, _ = site.run(*args, "--fabric", CFID)
    assert "UpdateAvailable version 2" in out and "channel production" in out
    _, err = site.run(*args, "--fabric", "home", code=2)
    assert "joined none yet" in err
    from matter_ota.store import Fabric

    with Store.open(site.state) as store:
        store.put_fabric(Fabric(1, CFID, "home", None, 0x1234), now=1.0)
    for fabric in ("home", "1", CFID.lower(), "0x" + CFID):
        out, _ = site.run(*args, "--fabric", fabric, "--json")
        assert json.loads(out)["status"] == "UpdateAvailable"
    # The device already on version 2: nothing to offer, and the reason says so.
    out, _ = site.run("explain", "--node", "7", "--vendor-id", "0xFFF1", "--product-id",
                      "0x8001", "--version", "2", "--fabric", CFID, "--json")
    assert json.loads(out)["status"] == "NotAvailable"
    assert "already runs version 2" in json.loads(out)["reason"]
    # The beta channel's node has no release there.
    out, _ = site.run("explain", "--node", "0x9999", "--vendor-id", "0xFFF1", "--product-id",
                      "0x8001", "--version", "1", "--fabric", CFID, "--json")
    assert "channel 'beta' has no release" in json.loads(out)["reason"]
    _, err = site.run("explain", "--fabric", CFID, "--node", "7", code=2)
    assert "--vendor-id" in err
    for option, value in (("--node", str(1 << 64)), ("--vendor-id", "0x10000"),
                          ("--version", "-1"), ("--hardware-version", "x")):
        bad = dict(zip(args[1::2], args[2::2], strict=True))
        bad[option] = value
        _, err = site.run("explain", "--fabric", CFID,
                          *[x for kv in bad.items() for x in kv], code=2)
        assert option in err


_STORE_WRITER = """
import sys
import time
from pathlib import Path
from matter_ota.store import DeviceRecord, Store
s = Store.open(Path(sys.argv[1]))
i = 0
print("ready", flush=True)
while True:
    s.record_query(compressed_fabric_id="00000000000000AA", node_id=i % 500, vendor_id=1,
                   product_id=2, software_version=i, hardware_version=None,
                   channel="production", result="x", now=float(i))
    s.audit(actor="daemon", action="tick", now=float(i))
    i += 1
    time.sleep(0.001)
"""


def test_cli_and_daemon_writer_share_the_store(site: Site) -> None:
    """A process hammering the store (as the daemon would) never makes the CLI fail."""
    env = {**os.environ, "PYTHONPATH": str(DAEMON_DIR)}
    with subprocess.Popen([sys.executable, "-c", _STORE_WRITER, str(site.state)],
                          stdout=subprocess.PIPE, env=env, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            site.run("release", "--channel", "production", "--image", str(site.image(2)),
                     "--percent", "10")
            for _ in range(2):
                site.run("stop", "--channel", "production")
                site.run("resume", "--channel", "production")
                site.table()
            site.run("increase", "--channel", "production", "--percent", "20")
            time.sleep(0.2)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
    with Store.open(site.state) as store:
        assert store.integrity_check() == []
        cli_rows = [e for e in store.history() if e.actor.startswith("cli")]
        assert len(cli_rows) == 6
        assert sum(1 for e in store.history() if e.actor == "daemon") > 0
    assert site.row()["rollout_percent"] == 20


def test_daemon_reload_loop_with_store_reporting(site: Site) -> None:
    """The daemon's wiring on the real clock: a CLI edit is live within 2 s; a bad hand edit
    is logged, recorded in the store and shown by `releases`; repairing it clears that."""
    import anyio

    from matter_ota.reload import config_watcher, store_reporting, watch

    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "10")
    applied: list[tuple[float, int]] = []

    async def daemon() -> None:
        with Store.open(site.state) as store:
            watcher = config_watcher(site.provider, time.monotonic())
            on_invalid, on_valid = store_reporting(store, watcher)

            def apply(config: Any) -> None:
                applied.append((time.monotonic(), config.releases.releases[0].rollout_percent))

            async def wait_for(condition: Any) -> None:
                with anyio.fail_after(2.0):
                    while not condition():
                        await anyio.sleep(0.05)

            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: watch(watcher, apply, on_invalid=on_invalid,
                                            on_valid=on_valid))
                await anyio.sleep(0.2)
                t0 = time.monotonic()
                await anyio.to_thread.run_sync(
                    lambda: site.run("increase", "--channel", "production", "--percent", "25"))
                await wait_for(lambda: applied)
                assert applied[-1][1] == 25 and applied[-1][0] - t0 < 2.0
                good = site.releases.read_text()
                site.releases.write_text(good.replace("rollout_percent: 25", "rollout_percent: x"))
                await wait_for(lambda: store.config_warnings())
                _, err = await anyio.to_thread.run_sync(lambda: site.run("releases"))
                assert "seen by the daemon" in err and "rollout_percent" in err
                assert store.last_valid_config(str(site.releases)) == good
                site.releases.write_text(good)
                await wait_for(lambda: not store.config_warnings())
                tg.cancel_scope.cancel()

    anyio.run(daemon)


def test_explain_uses_ledger_hardware_version(site: Site) -> None:
    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "100")
    text = site.releases.read_text().replace("    rollout_percent: 100",
                                             "    rollout_percent: 100\n    hardware_versions: [5]")
    site.releases.write_text(text)
    with Store.open(site.state) as store:
        store.record_query(compressed_fabric_id=CFID, node_id=3, vendor_id=0xFFF1,
                           product_id=0x8001, software_version=1, hardware_version=3,
                           channel="production", result="", now=1.0)
    args = ("explain", "--fabric", CFID, "--node", "3", "--vendor-id", "0xFFF1",
            "--product-id", "0x8001", "--version", "1", "--json")
    out, _ = site.run(*args)
    assert "reports 3" in json.loads(out)["reason"]
    out, _ = site.run(*args, "--hardware-version", "5")
    assert json.loads(out)["status"] == "UpdateAvailable"


@pytest.mark.parametrize(("answer", "switched"), [("y\n", True), ("n\n", False), ("\n", False)])
def test_source_asks_on_a_terminal(site: Site, answer: str, switched: bool) -> None:
    """On a TTY, `source` asks; only yes switches. (The real CLI in a child on a pty.)"""
    import pty

    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "10")
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(DAEMON_DIR)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "matter_ota.cli", "source", "--channel", "production", "dcl",
         "--config", str(site.provider), "--state-dir", str(site.state)],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    os.close(slave)
    try:
        os.write(master, answer.encode())
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert "Switch channel 'production' to dcl?" in err
    assert (proc.returncode == 0) is switched
    assert (site.row()["source"] == "dcl") is switched
    if switched:
        assert "source dcl: production/FFF1:8001: LIVE" in out
    else:
        assert "not confirmed" in err and out == ""


def _daemon_console(site: Site, clock: float | None = None) -> Any:
    from matter_ota.config import load_provider
    from matter_ota.operations import Console

    store = Store.open(site.state)
    return Console(load_provider(site.provider), store, actor="daemon",
                   **({"clock": lambda: clock} if clock is not None else {}))


def test_daemon_auto_stop_shows_in_table_history_and_explain(site: Site) -> None:
    from matter_ota.policy.model import Product, ReleaseKey

    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "50")
    console = _daemon_console(site)
    try:
        console.auto_stop(ReleaseKey("production", Product(0xFFF1, 0x8001)),
                          "6 of 20 updates failed")
    finally:
        console.store.close()
    assert site.row()["status"] == "INACTIVE"
    out, _ = site.run("releases")
    assert "auto-stop: 6 of 20 updates failed" in out
    out, _ = site.run("history", "--json")
    last = json.loads(out.splitlines()[-1])
    assert (last["actor"], last["action"], last["reason"]) == (
        "daemon", "auto-stop", "6 of 20 updates failed")
    answers = site.explain()
    assert "auto-stop: 6 of 20 updates failed" in answers[1]["reason"]
    # An operator's resume brings the same devices back.
    site.run("resume", "--channel", "production")
    assert site.row()["status"] == "LIVE"


def test_daemon_ramp_step(site: Site) -> None:
    from matter_ota.policy.model import OutcomeCounts, Product, ReleaseKey

    site.run("release", "--channel", "production", "--image", str(site.image(2)),
             "--percent", "10")
    text = site.releases.read_text().replace(
        "    rollout_percent: 10",
        "    rollout_percent: 10\n    ramp:   # staged\n      - {percent: 50, after: 1h}")
    site.releases.write_text(text)
    released = time.time()
    key = ReleaseKey("production", Product(0xFFF1, 0x8001))
    early = _daemon_console(site, clock=released + 60)
    try:
        assert early.advance_ramp(key, OutcomeCounts()) is None
    finally:
        early.store.close()
    late = _daemon_console(site, clock=released + 3700)
    try:
        change = late.advance_ramp(key, OutcomeCounts(offered=20, applied=20))
    finally:
        late.store.close()
    assert change is not None and change.after.rollout_percent == 50
    assert site.row()["rollout_percent"] == 50 and "# staged" in site.releases.read_text()
    out, _ = site.run("history", "--json")
    assert json.loads(out.splitlines()[-1])["action"] == "ramp"


def test_concurrent_cli_edits_all_land(site: Site) -> None:
    """Several `matter-ota release` processes at once: the lock and the re-read on change
    serialise them; every release lands, no edit is lost."""
    env = {**os.environ, "PYTHONPATH": str(DAEMON_DIR)}
    jobs = [("production", site.image(2, product_id=pid)) for pid in (0x8001, 0x8002, 0x8003)]
    jobs.append(("beta", site.image(2, product_id=0x8001)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "matter_ota.cli", "release", "--channel", channel,
             "--image", str(image), "--percent", "10", "--config", str(site.provider),
             "--state-dir", str(site.state)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for channel, image in jobs
    ]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    rows = site.yaml()["releases"]
    assert sorted((r["channel"], r["product"]) for r in rows) == [
        ("beta", "FFF1:8001"), ("production", "FFF1:8001"), ("production", "FFF1:8002"),
        ("production", "FFF1:8003")]
    assert site.releases.read_text().startswith("# Kitchen lights.")
    out, _ = site.run("history", "--json")
    assert len(out.splitlines()) == 4


def test_source_on_a_channel_without_releases(site: Site) -> None:
    _, err = site.run("source", "--channel", "beta", "dcl", "--yes", code=1)
    assert "no release yet" in err and "--product" in err
    out, _ = site.run("source", "--channel", "beta", "dcl", "--yes", "--product", "FFF1:8001",
                      "--percent", "25")
    assert "LIVE, 25 %" in out and "images from the DCL" in out
    row = site.row()
    assert (row["channel"], row["source"], row["rollout_percent"]) == ("beta", "dcl", 25)
    _, err = site.run("source", "--channel", "beta", "dcl", "--yes", code=1)
    assert "follows the DCL" in err
    _, err = site.run("source", "--channel", "nightly", "dcl", "--yes", code=1)
    assert "unknown channel" in err


def test_channel_wide_source_switch_skips_rows_already_there(site: Site) -> None:
    for pid in (0x8001, 0x8002):
        site.run("release", "--channel", "production", "--image",
                 str(site.image(2, product_id=pid)), "--percent", "10")
    site.run("source", "--channel", "production", "dcl", "--yes", "--product", "FFF1:8002")
    out, _ = site.run("source", "--channel", "production", "dcl", "--yes")
    assert out.count("source dcl:") == 1 and "FFF1:8001" in out
    assert {r["source"] for r in site.yaml()["releases"]} == {"dcl"}
    _, err = site.run("source", "--channel", "production", "dcl", "--yes", code=1)
    assert "follows the DCL" in err
    out, _ = site.run("source", "--channel", "production", "local", "--yes")
    assert out.count("source local:") == 2
    assert {r["status"] for r in site.yaml()["releases"]} == {"INACTIVE"}
    out, _ = site.run("history", "--json")
    assert [json.loads(x)["action"] for x in out.splitlines()] == [
        "release --new-set", "release --new-set", "source dcl", "source dcl", "source local",
        "source local"]
